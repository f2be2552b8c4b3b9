import Foundation
import Synchronization
import Testing
@testable import Shared

/// A real HTTP server process (Tests/Support/http_test_server.py) on a loopback port.
final class TestHTTPServer {
    let process = Process()
    let port: Int

    init() throws {
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/http_test_server.py")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = [UInt8]()
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            guard let b = byte.first else { break }
            if b == UInt8(ascii: "\n") { break }
            line.append(b)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            process.terminate()
            throw TestServerFailed()
        }
        self.port = port
    }

    struct TestServerFailed: Error {}

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    deinit {
        // Foundation reaps the child; waiting here can block the test runner.
        kill(process.processIdentifier, SIGKILL)
    }
}

/// Counts and checksums a streamed body.
final class CountingHandler: HTTPResponseHandler {
    var status = 0
    var headers: [(name: String, value: String)] = []
    var count = 0
    var sum: UInt64 = 0
    var failAfter: Int?

    struct Stop: Error {}

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        self.status = status
        self.headers = headers
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        for b in bytes { sum = sum &+ UInt64(b) }
        count += bytes.count
        if let failAfter, count >= failAfter { throw Stop() }
    }
}

@Suite(.serialized) struct HTTPClientTests {
    let server: TestHTTPServer
    let client = HTTPClient()

    init() throws { server = try TestHTTPServer() }

    @Test func bufferedGetReturnsStatusHeadersAndBody() throws {
        let response = try client.execute(HTTPClientRequest(method: "GET", url: server.url("/bytes/1000")))
        #expect(response.status == 200)
        #expect(response.header("x-test") == "bytes")
        #expect(response.body.count == 1000)
        #expect(response.body.enumerated().allSatisfy { $0.element == UInt8($0.offset % 251) })
    }

    @Test func streamsLargeResponseThroughHandler() throws {
        let n = 40 << 20
        let handler = CountingHandler()
        try client.execute(HTTPClientRequest(method: "GET", url: server.url("/bytes/\(n)")), handler: handler)
        #expect(handler.status == 200)
        #expect(handler.count == n)
        let expected = (0..<n).reduce(UInt64(0)) { $0 &+ UInt64($1 % (251 * 1024) % 251) }
        #expect(handler.sum == expected)
    }

    @Test func streamsRequestBodyWithKnownLength() throws {
        let total = 5 << 20
        let payload = (0..<total).map { UInt8($0 % 253) }
        var produced = 0
        var request = HTTPClientRequest(method: "PUT", url: server.url("/echo"))
        request.body = .stream(length: Int64(total)) { buffer in
            let n = min(buffer.count, 100_000, total - produced)
            payload.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + produced, byteCount: n) }
            produced += n
            return n
        }
        let response = try client.execute(request)
        let hashes = Digest.hash(.sha256, payload)
        #expect(response.status == 200)
        #expect(response.header("X-Body-Length") == "\(total)")
        #expect(String(decoding: response.body, as: UTF8.self) == Encoding.hex(hashes))
    }

    @Test func sendsMethodHeadersAndNoCurlDefaults() throws {
        var request = HTTPClientRequest(method: "POST", url: server.url("/headers"),
                                        headers: [("X-Custom", "a b"), ("Content-Type", "application/xml")])
        request.body = .bytes(Array("<x/>".utf8))
        let response = try client.execute(request)
        let seen = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String] ?? [:]
        #expect(response.header("X-Method") == "POST")
        #expect(response.header("X-Body-Length") == "4")
        #expect(seen["x-custom"] == "a b")
        #expect(seen["expect"] == nil)
        #expect(seen["accept"] == nil)
        #expect(seen["content-length"] == "4")
    }

    /// Header lines are assembled in a buffer the handle reuses: a long line followed by shorter ones leaves
    /// nothing behind, an empty value is sent empty, and a caller's own Accept (any case) replaces curl's.
    @Test func headerLinesSurviveTheReusedBufferAndKeepEmptyValues() throws {
        let long = String(repeating: "v", count: 3000)
        for round in 0..<3 {
            let request = HTTPClientRequest(method: "GET", url: server.url("/headers"),
                                            headers: [("X-Long", long), ("X-Short", "s\(round)"), ("X-Empty", ""), ("ACCEPT", "text/xml")])
            let response = try client.execute(request)
            let seen = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String] ?? [:]
            #expect(seen["x-long"] == long)
            #expect(seen["x-short"] == "s\(round)")
            #expect(seen["x-empty"] == "")
            #expect(seen["accept"] == "text/xml")
            #expect(seen["expect"] == nil)
        }
    }

    @Test func emptyPutSendsContentLengthZeroAndDeleteUsesItsMethod() throws {
        let put = try client.execute(HTTPClientRequest(method: "PUT", url: server.url("/echo")))
        #expect(put.header("X-Body-Length") == "0")
        #expect(put.header("X-Method") == "PUT")
        let delete = try client.execute(HTTPClientRequest(method: "DELETE", url: server.url("/echo")))
        #expect(delete.header("X-Method") == "DELETE")
    }

    @Test func headDeliversHeadersWithoutBody() throws {
        let handler = CountingHandler()
        try client.execute(HTTPClientRequest(method: "HEAD", url: server.url("/bytes/5000")), handler: handler)
        #expect(handler.status == 200)
        #expect(handler.count == 0)
        #expect(handler.headers.contains { $0.name.lowercased() == "content-length" && $0.value == "5000" })
    }

    @Test func requestAfterAPoisonedKeptAliveConnectionIsRetriedOnANewOne() throws {
        var configuration = HTTPClientConfiguration()
        configuration.maxPooledHandles = 1  // the second request reuses the first one's connection
        let single = HTTPClient(configuration: configuration)
        let head = try single.execute(HTTPClientRequest(method: "HEAD", url: server.url("/head-with-body")))
        #expect(head.status == 200)
        let get = try single.execute(HTTPClientRequest(method: "GET", url: server.url("/bytes/10")))
        #expect(get.status == 200)
        #expect(get.body.count == 10)
    }

    /// The proxy chosen from the environment is used (absolute-form request to it), and libcurl still matches the
    /// exclusion list against each request's host.
    @Test func requestsGoThroughTheChosenProxyUnlessTheHostIsExcluded() throws {
        var configuration = HTTPClientConfiguration()
        configuration.proxies = ProxyEnvironment { ["http_proxy": self.server.url("")][$0] }
        let proxied = try HTTPClient(configuration: configuration)
            .execute(HTTPClientRequest(method: "GET", url: "http://backend.invalid/b/k"))
        #expect(proxied.status == 200)
        #expect(proxied.header("X-Proxied-Target") == "http://backend.invalid/b/k")

        // A proxy that refuses connections: used unless no_proxy names the host.
        let refused = "http://127.0.0.1:1"
        configuration.proxies = ProxyEnvironment { ["http_proxy": refused][$0] }
        #expect(throws: HTTPClientError.self) {
            try HTTPClient(configuration: configuration).execute(HTTPClientRequest(method: "GET", url: self.server.url("/status/204")))
        }
        configuration.proxies = ProxyEnvironment { ["http_proxy": refused, "no_proxy": "localhost,127.0.0.1"][$0] }
        let direct = try HTTPClient(configuration: configuration)
            .execute(HTTPClientRequest(method: "GET", url: server.url("/status/204")))
        #expect(direct.status == 204)
        #expect(direct.header("X-Proxied-Target") == nil)
    }

    /// A proxy's 407 is not the server's answer: the handler never sees it, and the request fails as a connection
    /// failure naming the proxy variables; the pooled handle then serves the next request.
    @Test func proxyRefusingCredentialsIsAConnectFailure() throws {
        var configuration = HTTPClientConfiguration()
        configuration.proxies = ProxyEnvironment { ["http_proxy": self.server.url("")][$0] }
        let client = HTTPClient(configuration: configuration)
        let handler = CountingHandler()
        #expect {
            try client.execute(HTTPClientRequest(method: "GET", url: "http://backend.invalid/proxy-auth-required"), handler: handler)
        } throws: { error in
            guard case .connect(let message) = error as? HTTPClientError else { return false }
            return message.contains("407") && message.contains("http_proxy")
        }
        #expect(handler.status == 0 && handler.count == 0)
        #expect(try client.execute(HTTPClientRequest(method: "GET", url: "http://backend.invalid/b/k")).status == 200)
    }

    /// `ProxyEnvironment.excludes` decides as the real libcurl does. Every host below is unreachable directly (port 1,
    /// or a name no DNS knows) and this server answers as a proxy, so a request succeeds exactly when libcurl sent it
    /// through the proxy: `excludes` must say false for those and true for the others. (A direct attempt at a name
    /// asks DNS, which here now and then loses a query and answers 5 s later; the lists run in parallel.)
    @Test func exclusionMatchingAgreesWithLibcurl() throws {
        let hosts = ["rgw.ceph.svc", "RGW.Ceph.SVC", "rgw.ceph.svc.", "rgw.ceph.svc.cluster.local", "minio", "svc",
                     "localhost", "127.0.0.1", "127.0.0.2", "[::1]"]
        let lists = ["*", "*,minio", " * ", ".svc", "svc", "SVC.", "ceph.svc", "eph.svc", "rgw.ceph.svc.",
                     ".cluster.local", "minio", "foo, .svc", "foo .svc", "foo\t.svc", ",,minio,,", "localhost",
                     "127.0.0.1", "127.0.0.0/8", "127.0.0.2/32", "127.0.0.1/31", "127.0.0.0/0", "127.0.0.1/33",
                     "127.0.0.1/-8", "127.0.0.01", "127.0.0", "::1", "::1/128", "[::1]", "0::1"]
        let proxyURL = server.url("")
        let counts = Mutex((proxied: 0, direct: 0))
        DispatchQueue.concurrentPerform(iterations: lists.count) { index in
            let list = lists[index]
            var configuration = HTTPClientConfiguration()
            configuration.connectTimeout = .seconds(5)
            configuration.proxies = ProxyEnvironment { ["http_proxy": proxyURL, "no_proxy": list][$0] }
            let client = try! HTTPClient(configuration: configuration)
            for host in hosts {
                let url = "http://\(host):1/"
                let response = try? client.execute(HTTPClientRequest(method: "GET", url: url))
                let proxied = response?.header("X-Proxied-Target") != nil
                let excluded = ProxyEnvironment.excludes(host: ProxyEnvironment.host(ofURL: url) ?? "", noProxy: list)
                #expect(proxied == !excluded, "\(url) with no_proxy=\"\(list)\"")
                #expect((ProxyEnvironment { ["http_proxy": "http://p:3128", "no_proxy": list][$0] }.proxy(forURL: url) != nil) == proxied)
                counts.withLock { proxied ? ($0.proxied += 1) : ($0.direct += 1) }
            }
        }
        let (proxiedCount, directCount) = counts.withLock { ($0.proxied, $0.direct) }
        // Both answers occur often: the grid tells the two apart.
        #expect(proxiedCount > 50 && directCount > 50, "\(proxiedCount) proxied, \(directCount) direct")
    }

    @Test func nonSuccessStatusIsAResponseNotAnError() throws {
        let response = try client.execute(HTTPClientRequest(method: "GET", url: server.url("/status/503")))
        #expect(response.status == 503)
    }

    @Test func refusedConnectionIsAConnectError() throws {
        // Bind then close a socket to find a port nobody listens on.
        let closedPort = try freePort()
        #expect {
            _ = try client.execute(HTTPClientRequest(method: "GET", url: "http://127.0.0.1:\(closedPort)/"))
        } throws: { error in
            if case .connect = error as? HTTPClientError { return true }
            return false
        }
    }

    @Test func handlerErrorAbortsTransfer() throws {
        let handler = CountingHandler()
        handler.failAfter = 1 << 20
        #expect {
            try client.execute(HTTPClientRequest(method: "GET", url: server.url("/bytes/\(64 << 20)")), handler: handler)
        } throws: { error in
            guard case .handler(let inner) = error as? HTTPClientError else { return false }
            return inner is CountingHandler.Stop
        }
        #expect(handler.count < 64 << 20)
    }

    struct SourceFailed: Error {}

    @Test func failingBodySourceAbortsUploadSoServerSeesNoCompleteRequest() throws {
        var sent = 0
        var request = HTTPClientRequest(method: "PUT", url: server.url("/echo"))
        request.body = .stream(length: 4 << 20) { buffer in
            if sent >= 1 << 20 { throw SourceFailed() }
            let n = min(buffer.count, 65536)
            sent += n
            return n
        }
        #expect {
            _ = try client.execute(request)
        } throws: { error in
            guard case .bodySource(let inner) = error as? HTTPClientError else { return false }
            return inner is SourceFailed
        }
        // The pooled handle stays usable after an aborted transfer.
        let after = try client.execute(HTTPClientRequest(method: "GET", url: server.url("/bytes/10")))
        #expect(after.body.count == 10)
    }

    @Test func bufferedResponseRefusesOversizedBody() throws {
        #expect {
            _ = try client.execute(HTTPClientRequest(method: "GET", url: server.url("/bytes/100000")), maxBodySize: 1000)
        } throws: { error in
            if case .responseTooLarge(1000) = error as? HTTPClientError { return true }
            return false
        }
    }

    @Test func idleTimeoutAbortsAStalledTransfer() throws {
        var configuration = HTTPClientConfiguration()
        configuration.idleTimeout = .seconds(1)
        let impatient = HTTPClient(configuration: configuration)
        #expect {
            _ = try impatient.execute(HTTPClientRequest(method: "GET", url: server.url("/stall")))
        } throws: { error in
            if case .timeout = error as? HTTPClientError { return true }
            return false
        }
    }

    @Test func cancellationFromAnotherThreadStopsAnEndlessStream() throws {
        let token = CancellationToken()
        var request = HTTPClientRequest(method: "GET", url: server.url("/endless"))
        request.cancellation = token
        let handler = CountingHandler()
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.3)
            token.cancel()
        }
        #expect {
            try client.execute(request, handler: handler)
        } throws: { error in
            if case .cancelled = error as? HTTPClientError { return true }
            return false
        }
        #expect(handler.status == 200)
    }

    /// A call made from inside another call's callback on the same thread and client (a nested exchange)
    /// gets a handle of its own; both complete, and the client keeps working afterwards.
    @Test func nestedCallsOnOneThreadEachGetAHandle() throws {
        final class Nesting: HTTPResponseHandler {
            let client: HTTPClient
            let url: String
            var inner = 0
            var outer = 0
            init(client: HTTPClient, url: String) {
                self.client = client
                self.url = url
            }
            func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
                inner = try client.execute(HTTPClientRequest(method: "GET", url: url)).body.count
            }
            func responseBody(_ bytes: UnsafeRawBufferPointer) throws { outer += bytes.count }
        }
        let nesting = Nesting(client: client, url: server.url("/bytes/1000"))
        try client.execute(HTTPClientRequest(method: "GET", url: server.url("/bytes/5000")), handler: nesting)
        #expect(nesting.inner == 1000)
        #expect(nesting.outer == 5000)
        for _ in 0..<3 { #expect(try client.execute(HTTPClientRequest(method: "GET", url: server.url("/bytes/10"))).body.count == 10) }
    }

    @Test func concurrentRequestsShareThePool() async throws {
        let client = self.client
        let url = server.url("/bytes/100000")
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask { try client.execute(HTTPClientRequest(method: "GET", url: url)).body.count }
            }
            for try await count in group { #expect(count == 100000) }
        }
    }
}

@Suite struct ResponseHeaderLineTests {
    static func parse(_ text: String) -> ResponseHeaderLine {
        Array(text.utf8).withUnsafeBytes { ResponseHeaderLine($0) }
    }

    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\n", ResponseHeaderLine.status(200)),
        ("HTTP/2 206\r\n", .status(206)),
        ("HTTP/1.1 100 Continue\r\n", .status(100)),
        ("HTTP/1.1 2000 Big\r\n", .status(0)),
        ("HTTP/1.1 OK\r\n", .status(0)),
        ("\r\n", .end),
        ("\n", .end),
        ("ETag: \"abc\"\r\n", .field(name: "ETag", value: "\"abc\"")),
        ("x-amz-meta-a:\t  spaced value \t\r\n", .field(name: "x-amz-meta-a", value: "spaced value")),
        ("Empty:\r\n", .field(name: "Empty", value: "")),
        ("Date: Sat, 28 Nov 2026 09:00:00 GMT\r\n", .field(name: "Date", value: "Sat, 28 Nov 2026 09:00:00 GMT")),
        (" folded continuation\r\n", .ignored),
    ])
    func parsesLines(line: String, expected: ResponseHeaderLine) {
        #expect(Self.parse(line) == expected)
    }
}

@Suite struct HeaderNameCacheTests {
    static func name(_ cache: HeaderNameCache, _ text: String) -> String {
        Array(text.utf8).withUnsafeBytes { cache.name($0) }
    }

    static func storage(_ s: String) -> UnsafeRawPointer? {
        var s = s
        return s.withUTF8 { UnsafeRawPointer($0.baseAddress) }
    }

    /// Whatever was seen before, a name comes back with exactly its own bytes (case included).
    @Test(arguments: [
        ["x-amz-meta-s3eg-wrapped-key", "x-amz-meta-s3eg-wrapped-key"],
        ["x-amz-meta-s3eg-wrapped-key", "X-Amz-Meta-S3eg-Wrapped-Key", "x-amz-meta-s3eg-wrapped-key"],
        ["ETag", "etag", "Content-Length", "content-length"],
        ["x-amz-meta-s3eg-salt", "x-amz-meta-s3eg-sal", "x-amz-meta-s3eg-salt0", ""],
        [String(repeating: "x", count: 64), String(repeating: "x", count: 65), String(repeating: "x", count: 65)],
        (0..<200).map { "x-amz-meta-name-number-\($0)" } + (0..<200).map { "x-amz-meta-name-number-\($0)" },
    ])
    func namesKeepTheirBytes(names: [String]) {
        let cache = HeaderNameCache()
        for name in names {
            let got = Self.name(cache, name)
            #expect(Array(got.utf8) == Array(name.utf8))
        }
    }

    /// A long name seen again is the kept String (no new allocation); another spelling is not.
    @Test func longNamesAreReused() {
        let cache = HeaderNameCache()
        let first = Self.name(cache, "x-amz-meta-s3eg-wrapped-key")
        let again = Self.name(cache, "x-amz-meta-s3eg-wrapped-key")
        #expect(Self.storage(first) == Self.storage(again))
        let other = Self.name(cache, "X-Amz-Meta-S3eg-Wrapped-Key")
        #expect(other == "X-Amz-Meta-S3eg-Wrapped-Key")
        #expect(Self.storage(other) != Self.storage(first))
    }

    /// Every long name of an encrypted object's answer (FORMAT.md's twelve and S3's own) is reused the next time:
    /// none pushes another out.
    @Test func anEncryptedHeadsNamesAreAllReused() {
        let names = ["version", "cipher", "chunk-size", "provider", "key-id", "ik", "wrapped-key", "layout", "salt", "etag",
                     "checksum", "mac"].map { "x-amz-meta-s3eg-" + $0 }
            + ["x-amz-request-id", "x-amz-version-id", "x-amz-checksum-crc32", "x-amz-checksum-type", "x-amz-server-side-encryption",
               "x-amz-storage-class", "X-Amz-Meta-S3eg-Mac"]
        let cache = HeaderNameCache()
        let first = names.map { Self.storage(Self.name(cache, $0)) }
        let again = names.map { Self.storage(Self.name(cache, $0)) }
        #expect(first == again)
    }

    /// The parser hands back the same field with or without a cache.
    @Test(arguments: ["x-amz-meta-s3eg-wrapped-key: AAAA\r\n", "Content-Type: text/plain\r\n", "X-Amz-Request-Id:  abc \r\n"])
    func parsingWithACache(line: String) {
        let cache = HeaderNameCache()
        for _ in 0..<2 {
            let parsed = Array(line.utf8).withUnsafeBytes { ResponseHeaderLine($0, names: cache) }
            #expect(parsed == ResponseHeaderLineTests.parse(line))
        }
    }
}
