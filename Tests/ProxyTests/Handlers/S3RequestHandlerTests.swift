import Foundation
import Shared
import Synchronization
import Testing
@testable import Proxy

final class RecordingObserver: S3RequestObserver {
    let summaries = Mutex<[S3RequestSummary]>([])
    func s3RequestCompleted(_ summary: S3RequestSummary) { summaries.withLock { $0.append(summary) } }
    var last: S3RequestSummary? { summaries.withLock { $0.last } }
}

final class RecordingGateway: GatewayEndpoints {
    let served = Mutex<[GatewayRoute.Endpoint]>([])
    func serve(_ endpoint: GatewayRoute.Endpoint, head: HTTPRequestHead, response: ResponseWriter, context: RequestContext) {
        served.withLock { $0.append(endpoint) }
        try? response.respond(status: 200, body: Array("ok".utf8))
    }
}

/// A gateway handler wired to a backend, and a client that signs requests the way an SDK does.
struct HandlerHarness {
    static let clientKey = "CLIENTKEY"
    static let clientSecret = "client-secret"
    let handler: S3RequestHandler
    let observer = RecordingObserver()
    let gateway = RecordingGateway()
    let backend: BackendClient

    init(backendEndpoint: String) throws {
        let http = HTTPClient()
        backend = try BackendClient(configuration: BackendConfiguration(endpoint: backendEndpoint, accessKey: "testing", secretKey: "testing"),
                                    http: http)
        handler = S3RequestHandler(gateway: gateway,
                                   authenticator: RequestAuthenticator(credentials: StaticCredentials(accessKey: Self.clientKey, secretKey: Self.clientSecret), regions: ["us-east-1", "us-west-2"]),
                                   backend: backend, observer: observer, baseDomains: ["s3.gateway.test"])
    }

    enum Payload { case signed, unsigned, claimed(String) }

    /// Sends one request through the handler and returns what it wrote.
    @discardableResult
    func send(_ method: String, _ target: String, body: [UInt8] = [], headers: [(name: String, value: String)] = [],
              payload: Payload = .signed, secret: String = clientSecret, writer: RecordingWriter = RecordingWriter()) -> RecordingWriter {
        let head0 = HTTPRequestHead(method: method, target: target, headers: [:])
        let hash: String
        switch payload {
        case .signed: hash = Encoding.hex(Digest.hash(.sha256, body))
        case .unsigned: hash = SigV4.unsignedPayload
        case .claimed(let value): hash = value
        }
        let signer = SigV4Signer(accessKey: Self.clientKey, secretKey: secret, region: "us-east-1")
        let canonicalURI = SigV4.canonicalURI(rawPath: head0.rawPath)!
        let canonicalQuery = QueryString.canonical(QueryString.parse(head0.rawQuery)!)
        var fields = HTTPFields(signer.sign(method: method, canonicalURI: canonicalURI, canonicalQuery: canonicalQuery,
                                            host: "gateway.test:8080", headers: headers, payloadHash: hash,
                                            now: Int64(Date().timeIntervalSince1970)))
        fields.add("Host", "gateway.test:8080")
        let head = HTTPRequestHead(method: method, target: target, headers: fields)
        let context = RequestContext(requestID: RequestIDGenerator.next(), remoteAddress: "127.0.0.1:1",
                                     startedAt: .now)
        do {
            try handler.handle(head, body: MemoryBody(body, sliceSize: 16 << 10), response: writer, context: context)
        } catch {
            writer.abortedWith = error
        }
        return writer
    }

    func header(_ writer: RecordingWriter, _ name: String) -> String? { writer.head?.headers[name] }
}

@Suite(.serialized) final class S3RequestHandlerMotoTests {
    let moto: MotoServer
    let harness: HandlerHarness

    init() throws {
        moto = try MotoServer()
        harness = try HandlerHarness(backendEndpoint: moto.endpoint)
        let created = harness.send("PUT", "/bucket")
        precondition(created.status == 200, "create bucket: \(created.status ?? 0) \(created.bodyText)")
    }

    @Test func putThenGetThenHead() throws {
        let content = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let key = "/bucket/dir/a%20b+c%C3%A9.bin"
        let put = harness.send("PUT", key, body: content, headers: [(name: "Content-Type", value: "application/x-test"),
                                                                      (name: "x-amz-meta-color", value: "blue")])
        #expect(put.status == 200, "\(put.bodyText)")
        #expect(put.finished)
        #expect(put.abortedWith == nil)
        let etag = try #require(harness.header(put, "ETag"))
        #expect(etag == "\"\(Encoding.hex(Digest.hash(.md5, content)))\"")
        let putSummary = try #require(harness.observer.last)
        #expect(putSummary.operation == "PutObject")
        #expect(putSummary.bytesIn == Int64(content.count))
        #expect(putSummary.key == "dir/a b+cé.bin")
        #expect(putSummary.accessKey == HandlerHarness.clientKey)

        let get = harness.send("GET", key)
        #expect(get.status == 200)
        #expect(get.body == content)
        #expect(get.head?.contentLength == Int64(content.count))
        #expect(harness.header(get, "Content-Type") == "application/x-test")
        #expect(harness.header(get, "x-amz-meta-color") == "blue")
        #expect(harness.observer.last?.bytesOut == Int64(content.count))

        let head = harness.send("HEAD", key)
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(head.head?.contentLength == Int64(content.count))

        let ranged = harness.send("GET", key, headers: [(name: "Range", value: "bytes=10-19")])
        #expect(ranged.status == 206)
        #expect(ranged.body == Array(content[10...19]))

        let list = harness.send("GET", "/bucket/?list-type=2&prefix=dir%2F")
        #expect(list.status == 200)
        #expect(list.bodyText.contains("<Key>dir/a b+cé.bin</Key>"))
        #expect(harness.observer.last?.operation == "ListObjectsV2")
        #expect(harness.backend.health.answered(within: .seconds(60)))
    }

    @Test func clientGoingAwayMidResponseAbortsWithoutBlamingTheBackend() throws {
        let content = [UInt8](repeating: 7, count: 1 << 20)
        #expect(harness.send("PUT", "/bucket/big", body: content).status == 200)
        let writer = RecordingWriter()
        writer.failWritesAfterBytes = 100_000
        harness.send("GET", "/bucket/big", writer: writer)
        #expect(writer.status == 200)
        #expect(!writer.finished)
        #expect(writer.abortedWith is S3ResponseAborted)
        let summary = try #require(harness.observer.last)
        #expect(summary.aborted)
        #expect(!summary.backendError)
        #expect(summary.status == 200)
    }

    /// Keys are opaque: dot segments and doubled slashes reach the backend verbatim. libcurl removes `./` and `../`
    /// segments unless the HTTP client sets CURLOPT_PATH_AS_IS; without it this key would be stored as `y/z//w`.
    @Test func dotSegmentsAndDoubleSlashesStayInTheKey() {
        let put = harness.send("PUT", "/bucket/x/../y/./z//w", body: Array("dots".utf8))
        #expect(put.status == 200)
        let list = harness.send("GET", "/bucket?list-type=2")
        #expect(list.bodyText.contains("<Key>x/../y/./z//w</Key>"), "\(list.bodyText)")
        #expect(harness.send("GET", "/bucket/x/../y/./z//w").body == Array("dots".utf8))
    }

    @Test func missingKeyPassesThroughAsBackendXML() {
        let get = harness.send("GET", "/bucket/nope")
        #expect(get.status == 404)
        #expect(get.errorCode == "NoSuchKey")
        let summary = harness.observer.last
        #expect(summary?.status == 404)
        #expect(summary?.errorCode == nil)   // the backend's answer, forwarded, not a gateway error
        #expect(summary?.backendError == false)
    }

    @Test func signedHashMismatchAbortsThePut() throws {
        let real = [UInt8](repeating: 0x41, count: 200_000)
        var claimed = real
        claimed[199_999] = 0x42
        let put = harness.send("PUT", "/bucket/tampered", body: real,
                               payload: .claimed(Encoding.hex(Digest.hash(.sha256, claimed))))
        #expect(put.status == 400)
        #expect(put.errorCode == "XAmzContentSHA256Mismatch")
        #expect(put.bodyText.contains("<RequestId>\(try #require(harness.observer.last).requestID)</RequestId>"))
        #expect(harness.observer.last?.backendError == false)
        let get = harness.send("GET", "/bucket/tampered")
        #expect(get.status == 404, "the aborted upload must not have created the object")
    }

    @Test func contentMD5IsCheckedForUnsignedPayloads() {
        let body = Array("hello md5".utf8)
        let good = Data(Digest.hash(.md5, body)).base64EncodedString()
        let ok = harness.send("PUT", "/bucket/md5-ok", body: body, headers: [(name: "Content-MD5", value: good)], payload: .unsigned)
        #expect(ok.status == 200)
        let wrong = Data(Digest.hash(.md5, Array("other".utf8))).base64EncodedString()
        let bad = harness.send("PUT", "/bucket/md5-bad", body: body, headers: [(name: "Content-MD5", value: wrong)], payload: .unsigned)
        #expect(bad.status == 400)
        #expect(bad.errorCode == "BadDigest")
        #expect(harness.send("HEAD", "/bucket/md5-bad").status == 404)
        let empty = harness.send("PUT", "/bucket/empty", body: [])
        #expect(empty.status == 200)
        #expect(harness.send("GET", "/bucket/empty").body.isEmpty)
    }

    @Test func gatewayRefusalsNeverReachTheBackend() {
        let forged = harness.send("PUT", "/bucket/forged", body: Array("x".utf8), secret: "wrong")
        #expect(forged.status == 403)
        #expect(forged.errorCode == "SignatureDoesNotMatch")
        #expect(!forged.bodyText.contains("canonical"))
        #expect(harness.observer.last?.errorDetail?.contains("string to sign") == true)
        #expect(harness.send("HEAD", "/bucket/forged").status == 404)

        // aws-chunked framing that does not parse is refused before anything is stored.
        let streaming = harness.send("PUT", "/bucket/chunked", body: Array("zz\r\nx\r\n".utf8),
                                     headers: [(name: "x-amz-decoded-content-length", value: "1")],
                                     payload: .claimed("STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
        #expect(streaming.status == 400)
        #expect(streaming.errorCode == "InvalidRequest")
        #expect(harness.send("HEAD", "/bucket/chunked").status == 404)

        #expect(harness.send("PATCH", "/bucket/x").errorCode == "MethodNotAllowed")
        #expect(harness.send("GET", "/Bad_Bucket/x").errorCode == "InvalidBucketName")
    }

    @Test func probeAndGatewayEndpoints() throws {
        let status = try harness.backend.probe()
        #expect((200..<600).contains(status))
        #expect(harness.backend.health.lastAnsweredAt != nil)

        let writer = RecordingWriter()
        try harness.handler.handle(HTTPRequestHead(method: "GET", target: "/ready", headers: ["Host": "gw"]), body: MemoryBody([]),
                               response: writer, context: RequestContext(requestID: RequestID(1), remoteAddress: "a", startedAt: .now))
        #expect(writer.bodyText == "ok")
        #expect(harness.gateway.served.withLock { $0 } == [.ready])
    }
}

@Suite struct BackendDownTests {
    @Test func unreachableBackendIsServiceUnavailable() throws {
        let port = try freePort()   // nothing listens there
        let harness = try HandlerHarness(backendEndpoint: "http://127.0.0.1:\(port)")
        let get = harness.send("GET", "/bucket/key")
        #expect(get.status == 503)
        #expect(get.errorCode == "ServiceUnavailable")
        let summary = try #require(harness.observer.last)
        #expect(summary.backendError)
        #expect(summary.errorCode == "ServiceUnavailable")
        #expect(summary.errorDetail != nil)
        #expect(!harness.backend.health.answered(within: .seconds(3600)))
        #expect(throws: HTTPClientError.self) { _ = try harness.backend.probe() }
    }
}
