import Foundation
import Glibc
import Synchronization
import Testing
@testable import Shared

/// Routes used by the socket tests.
final class ServerTestHandler: HTTPRequestHandler {
    let slowStarted = Atomic<Int>(0)
    let largestRead = Atomic<Int>(0)

    func handle(_ head: HTTPRequestHead, body: RequestBody, response: ResponseWriter, context: RequestContext) throws {
        switch head.rawPath {
        case "/echo":
            let data = try body.readAll(limit: 1 << 20)
            try response.respond(status: 200, headers: ["X-Method": head.method], body: data)
        case "/sum":
            // Streams the body through a digest in 64 KiB reads; nothing accumulates.
            var digest = Digest(.sha256)
            var total = 0
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
            defer { buf.deallocate() }
            while true {
                let n = try body.read(into: buf)
                if n == 0 { break }
                largestRead.store(max(largestRead.load(ordering: .relaxed), n), ordering: .relaxed)
                digest.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
                total += n
            }
            try response.respond(status: 200, body: Array("\(total) \(Encoding.hex(digest.finalize()))".utf8))
        case "/slow":
            slowStarted.add(1, ordering: .sequentiallyConsistent)
            usleep(800_000)
            try response.respond(status: 200, body: Array("done".utf8))
        case "/stall-body":
            // Blocks reading a body the client never finishes sending.
            slowStarted.add(1, ordering: .sequentiallyConsistent)
            _ = try body.readAll(limit: 1 << 20)
            try response.respond(status: 200)
        case "/hello":
            try response.respond(status: 200, headers: ["Content-Type": "text/plain"], body: Array("hello".utf8))
        case "/big-head":
            // A head larger than the worker's coalescing buffer (256 KiB): it gets its own array.
            try response.respond(status: 200, headers: ["X-Big": String(repeating: "b", count: 300 * 1024)],
                                 body: Array("big".utf8))
        case "/stream":
            try response.writeHead(HTTPResponseHead(status: 200, contentLength: nil))
            for part in ["one,", "two,", "three"] { try response.write(Array(part.utf8)) }
            try response.finish()
        case "/fail-after-head":
            try response.writeHead(HTTPResponseHead(status: 200, contentLength: 100))
            try response.write(Array(repeating: 0x61, count: 10))
            struct Boom: Error {}
            throw Boom()
        case "/throw":
            struct Boom: Error {}
            throw Boom()
        case "/no-read":
            try response.respond(status: 403, body: Array("denied".utf8))
        default:
            try response.respond(status: 404)
        }
    }
}

final class ServerTestObserver: HTTPServerObserver {
    let finished = Mutex<[RequestSummary]>([])
    let rejections = Mutex<[ConnectionRejection]>([])
    let opened = Atomic<Int>(0)
    let closed = Atomic<Int>(0)
    func requestFinished(_ summary: RequestSummary) { finished.withLock { $0.append(summary) } }
    func connectionOpened(remoteAddress: String) { opened.add(1, ordering: .sequentiallyConsistent) }
    func connectionClosed(remoteAddress: String) { closed.add(1, ordering: .sequentiallyConsistent) }
    func connectionRejected(remoteAddress: String, reason: ConnectionRejection) {
        rejections.withLock { $0.append(reason) }
    }
}

func startTestServer(_ handler: ServerTestHandler = ServerTestHandler(), observer: ServerTestObserver? = nil,
                 configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> HTTPServer {
    var config = HTTPServerConfiguration(listenAddress: "127.0.0.1:0", headerTimeout: .seconds(10),
                                         idleTimeout: .seconds(10), bodyIdleTimeout: .seconds(10))
    configure(&config)
    let server = try HTTPServer(configuration: config, handler: handler, observer: observer)
    try server.start()
    return server
}

func connectRaw(_ server: HTTPServer) throws -> RawHTTPClient {
    try #require(RawHTTPClient(port: server.boundPort))
}

@Suite(.serialized) struct HTTPServerTests {
    @Test func keepAliveServesSeveralRequests() throws {
        let observer = ServerTestObserver()
        let server = try startTestServer(observer: observer)
        defer { server.shutdown(grace: .seconds(1)) }
        #expect(server.boundPort > 0)
        let c = try connectRaw(server)
        for i in 0..<5 {
            c.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nab\(i)")
            let r = try #require(c.readResponse())
            #expect(r.status == 200)
            #expect(r.body == Array("ab\(i)".utf8))
            #expect(r.headers["connection"] == nil)
            let id = try #require(r.headers["x-amz-request-id"])
            #expect(id.count == 16 && id.allSatisfy { $0.isHexDigit && !$0.isLowercase })
            #expect(r.headers["date"]?.hasSuffix("GMT") == true)
        }
        // The summary is reported after the response is on the wire: wait for the threads to end.
        server.shutdown(grace: .seconds(1))
        let summaries = observer.finished.withLock { $0 }
        #expect(summaries.count == 5)
        #expect(summaries.allSatisfy { $0.status == 200 && $0.bytesIn == 3 && $0.bytesOut == 3 && !$0.aborted })
        #expect(Set(summaries.map(\.requestID)).count == 5)
        #expect(summaries.allSatisfy { $0.remoteAddress.hasPrefix("127.0.0.1:") && $0.method == "PUT" && $0.target == "/echo" })
        #expect(observer.opened.load(ordering: .sequentiallyConsistent) == 1)
        #expect(observer.closed.load(ordering: .sequentiallyConsistent) == 1)
        #expect(server.activeConnections == 0)
    }

    @Test func pipelinedRequestsAnswerInOrder() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirstGET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
            + "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthird")
        #expect(c.readResponse()?.body == Array("first".utf8))
        #expect(c.readResponse()?.body == Array("hello".utf8))
        let last = try #require(c.readResponse())
        #expect(last.body == Array("third".utf8))
        #expect(last.headers["connection"] == "close")
        #expect(c.isClosedByPeer())
    }

    @Test func expectContinueIsSentOnFirstRead() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        // The client waits for 100 before sending the body.
        let interim = try #require(c.readResponse())
        #expect(interim.status == 100)
        c.send("body")
        let r = try #require(c.readResponse())
        #expect(r.status == 200)
        #expect(r.body == Array("body".utf8))
        // The connection stays usable.
        c.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.status == 200)
    }

    @Test func expectContinueOnAnEmptyBodyStillGetsItsInterimResponse() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n")
        let interim = try #require(c.readResponse())
        #expect(interim.status == 100)
        let r = try #require(c.readResponse())
        #expect(r.status == 200)
        #expect(r.body.isEmpty)
        c.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.status == 200)
    }

    @Test func expectContinueWithoutReadGetsFinalAnswerAndClose() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("PUT /no-read HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        let r = try #require(c.readResponse())
        #expect(r.status == 403)
        #expect(r.headers["connection"] == "close")
        #expect(c.isClosedByPeer())
    }

    @Test func unreadSmallBodyIsDrainedAndConnectionKept() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("PUT /no-read HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nignoreGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.status == 403)
        #expect(c.readResponse()?.body == Array("hello".utf8))
    }

    @Test func http10KeepAliveAndNothingServedAfterClose() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let r = try #require(c.readResponse())
        #expect(r.headers["connection"] == "keep-alive")
        // A request pipelined after `Connection: close` is never answered.
        c.send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.headers["connection"] == "close")
        #expect(c.isClosedByPeer())
    }

    @Test func chunkedRequestBodyIsDecoded() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.send("6;ext=1\r\nchunk-\r\n")
        c.send("7\r\ndecoded\r\n0\r\nX-Checksum: abc\r\n\r\n")
        let r = try #require(c.readResponse())
        #expect(r.status == 200)
        #expect(r.body == Array("chunk-decoded".utf8))
    }

    @Test func malformedChunkedBodySeenByHandlerBecomes400() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n")
        let r = try #require(c.readResponse())
        #expect(r.status == 400)
        #expect(r.headers["connection"] == "close")
        #expect(c.isClosedByPeer())
    }

    @Test func stalledBodyTimesOutAs400RequestTimeout() throws {
        let server = try startTestServer { $0.bodyIdleTimeout = .seconds(1) }
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        let r = try #require(c.readResponse())
        #expect(r.status == 400)
        #expect(String(decoding: r.body, as: UTF8.self).contains("<Code>RequestTimeout</Code>"))
        #expect(c.isClosedByPeer())
    }

    @Test func chunkedResponseAndHTTP10CloseDelimited() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        let r = try #require(c.readResponse())
        #expect(r.headers["transfer-encoding"] == "chunked")
        #expect(r.body == Array("one,two,three".utf8))

        let old = try connectRaw(server)
        old.send("GET /stream HTTP/1.0\r\n\r\n")
        let r10 = try #require(old.readResponse())
        #expect(r10.headers["transfer-encoding"] == nil)
        #expect(r10.headers["connection"] == "close")
        #expect(r10.body == Array("one,two,three".utf8))
    }

    @Test func headResponseHasNoBody() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        let head = try #require(c.readResponse(bodyless: true))
        #expect(head.status == 200)
        #expect(head.headers["content-length"] == "5")
        // If the HEAD response carried a body, this would read "hello" as a status line and fail.
        let get = try #require(c.readResponse())
        #expect(get.status == 200)
        #expect(get.body == Array("hello".utf8))
    }

    @Test func handlerErrorAfterHeadClosesConnection() throws {
        let observer = ServerTestObserver()
        let server = try startTestServer(observer: observer)
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("GET /fail-after-head HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readLine() == "HTTP/1.1 200 OK")
        while let l = c.readLine(), !l.isEmpty {}
        let rest = c.readToEnd()
        #expect(rest.count == 10)  // fewer than the 100 announced, then EOF
        #expect(observer.finished.withLock { $0.first?.aborted } == true)
    }

    @Test func handlerErrorBeforeHeadIs500() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("GET /throw HTTP/1.1\r\nHost: t\r\n\r\n")
        let r = try #require(c.readResponse())
        #expect(r.status == 500)
        #expect(String(decoding: r.body, as: UTF8.self).contains("<Code>InternalError</Code>"))
    }

    @Test func malformedRequestsGetTheirStatusAndClose() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let cases = [
            ("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
            ("GET / HTTP/1.1\r\nHost: t\r\n" + String(repeating: "X: y\r\n", count: 201) + "\r\n", 431),
        ]
        for (raw, status) in cases {
            let c = try connectRaw(server)
            c.send(raw)
            let r = try #require(c.readResponse())
            #expect(r.status == status)
            #expect(r.headers["connection"] == "close")
            #expect(r.headers["content-type"] == "application/xml")
            #expect(c.isClosedByPeer())
        }
    }

    @Test func largeStreamedBodyArrivesIntact() throws {
        let handler = ServerTestHandler()
        let server = try startTestServer(handler)
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        let total = 64 << 20
        c.send("PUT /sum HTTP/1.1\r\nHost: t\r\nContent-Length: \(total)\r\n\r\n")
        var digest = Digest(.sha256)
        var block = [UInt8](repeating: 0, count: 1 << 20)
        for i in 0..<(total >> 20) {
            for j in stride(from: 0, to: block.count, by: 4096) { block[j] = UInt8(truncatingIfNeeded: i &+ j >> 12) }
            digest.update(block)
            c.send(block)
        }
        let expected = "\(total) \(Encoding.hex(digest.finalize()))"
        let r = try #require(c.readResponse())
        #expect(String(decoding: r.body, as: UTF8.self) == expected)
        #expect(handler.largestRead.load(ordering: .relaxed) <= 64 * 1024)

        // The same through chunked framing with odd chunk sizes.
        c.send("PUT /sum HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        var d2 = Digest(.sha256)
        var sent = 0
        for size in [1, 100_000, 7, 3 << 20, 65536, 1] {
            let chunk = [UInt8](repeating: UInt8(truncatingIfNeeded: size), count: size)
            d2.update(chunk)
            c.send(Array(String(size, radix: 16).utf8) + [13, 10] + chunk + [13, 10])
            sent += size
        }
        c.send("0\r\n\r\n")
        let expected2 = "\(sent) \(Encoding.hex(d2.finalize()))"
        let r2 = try #require(c.readResponse())
        #expect(String(decoding: r2.body, as: UTF8.self) == expected2)
    }

    @Test func connectionsOverTheLimitGet503SlowDown() throws {
        let observer = ServerTestObserver()
        let server = try startTestServer(observer: observer) { $0.maxConnections = 1 }
        defer { server.shutdown(grace: .seconds(1)) }
        let first = try connectRaw(server)
        first.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(first.readResponse()?.status == 200)  // admitted, now idle but open
        // Over the limit, a connection may still send one request, which is answered only if it is a probe.
        let second = try connectRaw(server)
        second.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        let r = try #require(second.readResponse())
        #expect(r.status == 503)
        #expect(r.headers["content-type"] == "application/xml")
        let text = String(decoding: r.body, as: UTF8.self)
        #expect(text.contains("<Code>SlowDown</Code>"))
        #expect(text.contains("<RequestId>"))
        #expect(second.isClosedByPeer())
        #expect(observer.rejections.withLock { $0 } == [.tooManyConnections])
        // The admitted connection still works.
        first.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(first.readResponse()?.status == 200)
    }

    @Test func withTheReserveFullA503GoesOutAtOnce() throws {
        let observer = ServerTestObserver()
        let server = try startTestServer(observer: observer) {
            $0.maxConnections = 1
            $0.reservedProbeConnections = 0
        }
        defer { server.shutdown(grace: .seconds(1)) }
        let first = try connectRaw(server)
        first.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(first.readResponse()?.status == 200)
        let second = try connectRaw(server)  // sends nothing
        #expect(second.readResponse()?.status == 503)
        #expect(second.isClosedByPeer())
        #expect(observer.rejections.withLock { $0 } == [.tooManyConnections])
    }

    @Test func slowHeaderIsCutOff() throws {
        let observer = ServerTestObserver()
        let server = try startTestServer(observer: observer) { $0.headerTimeout = .seconds(1) }
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        c.send("GET / HTTP/1.1\r\nHost: t\r\n")  // never finishes the head
        let r = c.readResponse()
        #expect(r?.status == 408)
        #expect(c.isClosedByPeer())
        #expect(observer.rejections.withLock { $0 } == [.headerTimeout])
    }

    @Test func gracefulShutdownFinishesInFlightAndRefusesNew() throws {
        let handler = ServerTestHandler()
        let server = try startTestServer(handler)
        let port = server.boundPort
        let idle = try connectRaw(server)
        idle.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(idle.readResponse()?.status == 200)

        let busy = try connectRaw(server)
        busy.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        while handler.slowStarted.load(ordering: .sequentiallyConsistent) == 0 { usleep(1000) }

        let done = Atomic<Bool>(false)
        let t = Thread {
            server.shutdown(grace: .seconds(20))
            done.store(true, ordering: .sequentiallyConsistent)
        }
        t.start()
        // The idle keep-alive connection is closed at once.
        #expect(idle.isClosedByPeer())
        let r = try #require(busy.readResponse())
        #expect(r.status == 200)
        #expect(r.body == Array("done".utf8))
        #expect(r.headers["connection"] == "close")
        #expect(busy.isClosedByPeer())
        while !done.load(ordering: .sequentiallyConsistent) { usleep(1000) }
        #expect(server.activeConnections == 0)
        #expect(RawHTTPClient(port: port) == nil)
    }

    @Test func shutdownForceClosesAfterGrace() throws {
        let handler = ServerTestHandler()
        let server = try startTestServer(handler)
        let c = try connectRaw(server)
        c.send("PUT /stall-body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-part")
        while handler.slowStarted.load(ordering: .sequentiallyConsistent) == 0 { usleep(1000) }
        server.shutdown(grace: .milliseconds(100))  // returns only once the stalled thread ended
        #expect(server.activeConnections == 0)
        let rest = c.readToEnd()
        // Whatever the handler answered about its failed read, the connection ends.
        #expect(!String(decoding: rest, as: UTF8.self).contains("200 OK"))
    }

    @Test func listenAddressParsing() throws {
        #expect(try ListenAddress(parsing: ":8080") == ListenAddress(host: "", port: 8080))
        #expect(try ListenAddress(parsing: "0.0.0.0:80").host == "0.0.0.0")
        #expect(try ListenAddress(parsing: "[::1]:9000") == ListenAddress(host: "::1", port: 9000))
        #expect(try ListenAddress(parsing: "127.0.0.1:0").port == 0)
        for bad in ["8080", "host:80", "1.2.3.4:99999", "[::1:80", ":", "1.2.3.4:-1", "[1.2.3.4]:80"] {
            #expect(throws: HTTPServerError.self, "\(bad)") { try ListenAddress(parsing: bad) }
        }
    }

    @Test func bindFailureIsActionable() throws {
        let a = try startTestServer()
        defer { a.shutdown(grace: .seconds(1)) }
        let b = try HTTPServer(configuration: HTTPServerConfiguration(listenAddress: "127.0.0.1:\(a.boundPort)"),
                               handler: ServerTestHandler(), observer: nil)
        do {
            try b.start()
            Issue.record("second bind succeeded")
        } catch let e as HTTPServerError {
            #expect(e.code == .addressInUse)
            #expect(e.message.contains("cannot listen on 127.0.0.1:\(a.boundPort)"))
        }
    }

    /// A head that fits the coalescing buffer is written there; one that does not goes out from its own array.
    /// Either way the connection stays usable for the next request.
    @Test func aHeadLargerThanTheCoalescingBufferIsSentWhole() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let c = try connectRaw(server)
        for path in ["/hello", "/big-head", "/hello", "/stream"] {
            c.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\r\n")
            let r = try #require(c.readResponse())
            #expect(r.status == 200)
            switch path {
            case "/big-head":
                #expect(r.headers["x-big"] == String(repeating: "b", count: 300 * 1024))
                #expect(r.body == Array("big".utf8))
            case "/stream": #expect(r.body == Array("one,two,three".utf8))
            default: #expect(r.body == Array("hello".utf8))
            }
            #expect(r.headers["x-amz-request-id"]?.count == 16)
        }
    }

    @Test func ipv6Loopback() throws {
        // Fails (never skips) on a machine without an IPv6 loopback: the gateway must listen on [::1] where it exists.
        let server = try startTestServer(configure: { $0.listenAddress = "[::1]:0" })
        defer { server.shutdown(grace: .seconds(1)) }
        #expect(server.boundPort > 0)
        #expect(server.boundAddress == "[::1]:\(server.boundPort)")
    }

}

extension ListenAddress {
    init(host: String, port: Int) {
        self = try! ListenAddress(parsing: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
    }
}
