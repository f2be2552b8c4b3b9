import Shared
import Testing
import TestSupport
@testable import Proxy

@Suite struct BackendEndpointTests {
    @Test(arguments: [
        ("http://127.0.0.1:9000", "http", "127.0.0.1:9000"),
        ("http://127.0.0.1:9000/", "http", "127.0.0.1:9000"),
        ("https://S3.Example.com", "https", "s3.example.com"),
        ("https://s3.example.com:443", "https", "s3.example.com"),
        ("http://minio:80/", "http", "minio"),
        ("http://[::1]:9000", "http", "[::1]:9000"),
    ])
    func parses(value: String, scheme: String, host: String) throws {
        let e = try BackendEndpoint.parse(value)
        #expect(e.scheme == scheme)
        #expect(e.hostHeader == host)
        #expect(e.baseURL == "\(scheme)://\(host)")
    }

    @Test(arguments: ["127.0.0.1:9000", "ftp://x", "http://", "http://h/path", "http://h:0", "http://h:99999", "http://u@h", "http://h:x"])
    func rejects(value: String) {
        #expect(throws: BackendEndpoint.Invalid.self) { try BackendEndpoint.parse(value) }
    }

    @Test func pathsAreEncodedOnce() {
        #expect(BackendEndpoint.path(bucket: nil, key: nil) == "/")
        #expect(BackendEndpoint.path(bucket: "b", key: nil) == "/b")
        #expect(BackendEndpoint.path(bucket: "b", key: "a b//c+d/é") == "/b/a%20b//c%2Bd/%C3%A9")
        #expect(BackendEndpoint.path(bucket: "b", key: "100%") == "/b/100%25")
    }
}

@Suite struct BackendRequestTests {
    @Test func requestHeadersDropHopByHopAndClientAuth() {
        let incoming: HTTPFields = [
            "Host": "gw", "Connection": "keep-alive, X-Custom-Hop", "Keep-Alive": "timeout=5", "TE": "trailers",
            "Transfer-Encoding": "chunked", "Upgrade": "h2c", "Expect": "100-continue", "Proxy-Authorization": "x",
            "Authorization": "AWS4-HMAC-SHA256 ...", "X-Amz-Date": "20250101T000000Z", "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD",
            "X-Amz-Security-Token": "t", "Content-Length": "5", "X-Custom-Hop": "1", "Trailer": "x",
            "Content-Type": "text/plain", "Content-MD5": "abc", "x-amz-meta-color": "blue", "Range": "bytes=0-1",
            "Cache-Control": "no-cache",
        ]
        let out = BackendClient.forwardableRequestHeaders(incoming).map(\.name)
        #expect(out == ["Content-Type", "Content-MD5", "x-amz-meta-color", "Range", "Cache-Control"])
    }

    @Test func responseHeadersDropHopByHopAndServerOwned() {
        let names = BackendClient.forwardableResponseHeaders([
            (name: "Content-Length", value: "3"), (name: "ETag", value: "\"x\""), (name: "Connection", value: "close"),
            (name: "x-amz-request-id", value: "backend"), (name: "Date", value: "d"), (name: "Server", value: "s"),
            (name: "Transfer-Encoding", value: "chunked"), (name: "Last-Modified", value: "m"), (name: "x-amz-meta-a", value: "1"),
        ]).map(\.name)
        #expect(names == ["ETag", "Last-Modified", "x-amz-meta-a"])
    }

    @Test func responseHeadersDropConnectionNamedAndProxyHeadersInAnyCase() {
        let names = BackendClient.forwardableResponseHeaders([
            (name: "CONNECTION", value: " X-Hop\t, keep-alive"), (name: "x-hop", value: "1"), (name: "Keep-Alive", value: "t"),
            (name: "PROXY-Status", value: "p"), (name: "proxy-", value: "p"), (name: "Proxy", value: "kept"),
            (name: "DATE", value: "d"), (name: "SERVER", value: "s"), (name: "X-Amz-Request-Id", value: "r"),
            (name: "x-hop-2", value: "kept"), (name: "Content-Type", value: "text/plain"),
        ]).map(\.name)
        #expect(names == ["Proxy", "x-hop-2", "Content-Type"])
    }

    /// What the backend client sends verifies as a SigV4 request with the backend's credentials,
    /// including awkward keys and sub-resources: the URL path/query and the signed canonical forms agree.
    @Test(arguments: ["plain", "a b//c+d/é", "100%", "dots/../x", "~user/(1)"])
    func preparedRequestVerifiesWithBackendCredentials(key: String) throws {
        let t: Int64 = 1_764_000_000
        let client = try BackendClient(configuration: BackendConfiguration(endpoint: "http://127.0.0.1:9000", region: "eu-west-3",
                                                                           accessKey: "BACKENDAK", secretKey: "backend-secret"),
                                       http: HTTPClient(), now: { t })
        let query = try #require(QueryString.parse("uploads&prefix=a%20b&x=%2B"))
        let prepared = client.prepare(method: "POST", bucket: "bucket", key: key, query: query,
                                      headers: [(name: "Content-Type", value: "text/plain")], payloadHash: SigV4.unsignedPayload, signing: .gateway)
        #expect(prepared.url.hasPrefix("http://127.0.0.1:9000/bucket/"))
        #expect(prepared.url.hasSuffix("?prefix=a%20b&uploads&x=%2B"))
        let target = String(prepared.url.dropFirst("http://127.0.0.1:9000".count))
        let head = HTTPRequestHead(method: "POST", target: target, headers: HTTPFields(prepared.headers))
        #expect(head.headers["Host"] == "127.0.0.1:9000")
        let verifier = RequestAuthenticator(credentials: StaticCredentials(accessKey: "BACKENDAK", secretKey: "backend-secret"), regions: ["eu-west-3"])
        let v = try verifier.authenticate(method: "POST", rawPath: head.rawPath, rawQuery: head.rawQuery, headers: head.headers, now: t)
        #expect(v.chunkChain?.scope.region == "eu-west-3")
        #expect(v.payload == .unsigned)
        let address = try S3RequestAddress.resolve(rawPath: head.rawPath, host: "127.0.0.1:9000", baseDomains: [])
        #expect(address.key == key)
    }

    @Test func healthRemembersTheLatestAnswer() {
        let health = BackendHealth()
        let t0 = ContinuousClock.now
        #expect(!health.answered(within: .seconds(5), now: t0))
        health.recordAnswer(at: t0)
        #expect(health.answered(within: .seconds(5), now: t0 + .seconds(4)))
        #expect(!health.answered(within: .seconds(5), now: t0 + .seconds(6)))
        health.recordAnswer(at: t0 - .seconds(10))   // an older answer finishing late does not move time back
        #expect(health.lastAnsweredAt == t0)
        // Millisecond resolution: answers within a millisecond of the last recorded one need no write.
        health.recordAnswer(at: t0 + .microseconds(400))
        #expect(health.lastAnsweredAt == t0)
        health.recordAnswer(at: t0 + .milliseconds(3))
        #expect(health.lastAnsweredAt == t0 + .milliseconds(3))
    }
}

/// Every way an exchange can fail maps to one honest case: what the client has already received decides
/// whether an S3 error can still be sent or the connection must be cut, and whose fault it was.
@Suite struct BackendFailureTests {
    struct ClientWriteFailed: Error {}

    static func kind(_ failure: BackendFailure) -> String {
        switch failure {
        case .unavailable: return "unavailable"
        case .requestBody: return "requestBody"
        case .refused(let e): return "refused \(e.code)"
        case .aborted(_, let status, let cause): return "aborted \(cause) \(status)"
        }
    }

    @Test(arguments: [
        (HTTPClientError.connect("refused"), false, "unavailable"),
        (HTTPClientError.timeout("idle"), false, "unavailable"),
        (HTTPClientError.timeout("idle"), true, "aborted backend 200"),
        (HTTPClientError.transport(code: 56, message: "reset"), true, "aborted backend 200"),
        (HTTPClientError.bodySource(S3Error.badDigest()), false, "requestBody"),
        (HTTPClientError.bodySource(S3Error.badDigest()), true, "aborted client 200"),
        (HTTPClientError.handler(S3Error.objectChanged()), false, "refused ServiceUnavailable"),
        (HTTPClientError.handler(EncryptionError(.tamperDetected, "bad tag")), false, "refused InternalError"),
        (HTTPClientError.handler(EncryptionError(.tamperDetected, "bad tag")), true, "aborted integrity 200"),
        (HTTPClientError.handler(ClientWriteFailed()), true, "aborted client 200"),
        (HTTPClientError.handler(ClientWriteFailed()), false, "aborted client 200"),
        (HTTPClientError.handler(BackendFailure.unavailable("inner")), true, "unavailable"),
        (HTTPClientError.cancelled, true, "aborted client 200"),
        (HTTPClientError.responseTooLarge(limit: 10), false, "refused InternalError"),
    ] as [(HTTPClientError, Bool, String)])
    func mapsHonestly(error: HTTPClientError, started: Bool, expected: String) {
        #expect(Self.kind(BackendFailure(error, clientResponseStarted: started, status: 200)) == expected)
    }
}

@Suite struct ClientRelayTests {
    @Test(arguments: [
        ("4096", Int64(4096)), (" 0\t", 0), ("\t 12 ", 12), ("9223372036854775807", Int64.max),
        ("", nil), (" ", nil), ("-1", nil), ("+5", nil), ("1 2", nil), ("0x10", nil), ("١٢", nil),
        ("9223372036854775808", nil),
    ] as [(String, Int64?)])
    func contentLengthIsDigitsWithOptionalBlanks(value: String, expected: Int64?) {
        #expect(ClientRelay.contentLength(value) == expected)
    }

    /// The byte parse agrees with the composition it replaced (Character-wise trim, all-digits check, Int64's parse)
    /// on seeded values of digits, blanks, signs, other ASCII, non-ASCII digits, combining marks and overflowing lengths.
    @Test func contentLengthAgreesWithTheOldComposition() {
        func old(_ value: String) -> Int64? {
            let digits = BackendClient.trimmed(Substring(value))
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return Int64(digits)
        }
        var rng = SplitMix64(seed: 260)
        let pieces = ["0", "1", "7", "9", " ", "\t", "+", "-", "x", "\r", "\u{301}", "١", "é", "\u{0}", "922337203685477580", "8"]
        for _ in 0..<5000 {
            let value = (0..<Int.random(in: 0...6, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            #expect(ClientRelay.contentLength(value) == old(value), "\(Array(value.utf8))")
        }
    }
}
