import Testing
import Shared
@testable import Proxy

@Suite struct S3RequestAddressTests {
    static let domains = ["s3.example.com", "gw.local."]

    @Test(arguments: [
        ("/", "localhost:8080", nil, nil, S3RequestAddress.Style.path),
        ("/bucket", "localhost", "bucket", nil, .path),
        ("/bucket/", "localhost", "bucket", nil, .path),                    // restic
        ("/bucket/key", "localhost", "bucket", "key", .path),
        ("/bucket/a%20b/c+d", "localhost", "bucket", "a b/c+d", .path),
        ("/bucket//double//slash/", "localhost", "bucket", "/double//slash/", .path),
        ("/bucket/%E6%97%A5%E6%9C%AC", "localhost", "bucket", "日本", .path),
        ("/bucket/a%2520b", "localhost", "bucket", "a%20b", .path),          // decoded exactly once
        ("/key/path", "my.bucket.s3.example.com:443", "my.bucket", "key/path", .virtualHost),
        ("/", "bucket.S3.Example.COM", "bucket", nil, .virtualHost),
        ("/x", "bucket.gw.local", "bucket", "x", .virtualHost),
        ("/bucket/x", "s3.example.com", "bucket", "x", .path),              // the base domain itself is path style
        ("/bucket/x", "bucket.other.com", "bucket", "x", .path),
        ("/bucket/x", "[::1]:8080", "bucket", "x", .path),
        // The path splits on the `/` byte: a combining mark after it belongs to the key, not to a "/\u{301}" Character.
        ("/bucket/\u{301}k", "localhost", "bucket", "\u{301}k", .path),
        ("/\u{301}k", "bucket.s3.example.com", "bucket", "\u{301}k", .virtualHost),
    ] as [(String, String, String?, String?, S3RequestAddress.Style)])
    func resolves(path: String, host: String, bucket: String?, key: String?, style: S3RequestAddress.Style) throws {
        let a = try S3RequestAddress.resolve(rawPath: path, host: host, baseDomains: Self.domains)
        #expect(a == S3RequestAddress(bucket: bucket, key: key, style: style))
    }

    @Test func rejectsBadAddresses() {
        func code(_ path: String, host: String = "localhost") -> String? {
            s3ErrorCode { _ = try S3RequestAddress.resolve(rawPath: path, host: host, baseDomains: Self.domains) }
        }
        #expect(code("/Bucket/k") == "InvalidBucketName")
        #expect(code("/b/k") == "InvalidBucketName")
        #expect(code("/x", host: "UPPER_case.s3.example.com") == "InvalidBucketName")
        #expect(code("/bucket/%zz") == "InvalidURI")
        #expect(code("/bucket/%FF") == "InvalidURI")   // not UTF-8
        #expect(code("bucket/k") == "InvalidURI")
        #expect(code("") == "InvalidURI")
        #expect(code("/bucket/" + String(repeating: "k", count: 1025)) == "KeyTooLongError")
        #expect(code("/bucket/" + String(repeating: "k", count: 1024)) == nil)
    }

    @Test(arguments: [
        ("abc", true), ("my-bucket.data", true), ("a1b", true), (String(repeating: "a", count: 63), true),
        ("ab", false), (String(repeating: "a", count: 64), false), ("-abc", false), ("abc-", false),
        ("a..b", false), ("a.-b", false), ("a-.b", false), ("192.168.1.1", false), ("ABC", false), ("a_b", false),
        ("xn--abc", false), ("abc-s3alias", false), ("1.2.3.abc", true),
        ("1.2.3", true), ("1.2.3.4.5", true), ("10.0.0.255", false), ("sthree-x", false), ("amzn-s3-demo-x", false),
        ("abc--ol-s3", false), ("abc--x-s3", false), ("abc.mrap", false), ("xn-abc", true), ("mrap", true), ("s3alias", true),
    ])
    func bucketNames(name: String, valid: Bool) {
        #expect(S3RequestAddress.isValidBucketName(name) == valid)
    }
}

/// The byte-wise virtual-host decision gives what the String version (lower-cased copies, Character counts)
/// gave, for hosts and base domains in any case, with ports, trailing dots and look-alikes; hosts outside
/// printable ASCII still take the String version.
@Suite struct VirtualHostBucketTests {
    static let hosts = ["bucket.s3.example.com", "BUCKET.S3.Example.COM:9000", "bucket.s3.example.com.", "bucket.s3.example.com.:80",
                        "s3.example.com", ".s3.example.com", "a.b.s3.example.com", "[::1]:9000", "bucketxs3.example.com", "",
                        "localhost:9000", ":", ".", "b.s3.example.com:", "x.gw.local", "X.GW.LOCAL.", "bücket.s3.example.com",
                        "bucket.s3.example.com\u{212A}", "b\tb.s3.example.com", "bucket.s3.example.co", "s3.example.com.s3.example.com"]
    static let domainSets: [[String]] = [[], ["s3.example.com"], ["S3.EXAMPLE.COM."], [".", ""], ["example.com", "s3.example.com"],
                                         ["gw.local."], ["com"], ["s3.example.com\u{212A}"]]

    @Test func matchesTheStringVersion() {
        for domains in Self.domainSets {
            for host in Self.hosts {
                let expected = host.isEmpty ? nil : S3RequestAddress.stringVirtualHostBucket(host: host, baseDomains: domains)
                #expect(S3RequestAddress.virtualHostBucket(host: host, baseDomains: domains) == expected,
                        "host \(host) domains \(domains)")
            }
        }
        #expect(S3RequestAddress.virtualHostBucket(host: nil, baseDomains: ["s3.example.com"]) == nil)
    }
}

@Suite struct URIEncodingDecodeTests {
    @Test(arguments: ["plain", "a b", "日本", "", "a+b", "%41", "a%2Fb", "%zz", "%F", "%FF", "100%", "a%20b%E6%97%A5"])
    func decodesAsTheByteDecoder(raw: String) {
        let bytes = URIEncoding.decodeBytes(raw[...])
        #expect(URIEncoding.decode(raw) == bytes.flatMap { String(validating: $0, as: UTF8.self) })
    }
}

@Suite struct GatewayRouteTests {
    @Test(arguments: [
        ("GET", "/health", nil, false, GatewayRoute.gateway(.health)),
        ("HEAD", "/ready", nil, false, .gateway(.ready)),
        ("GET", "/metrics", nil, false, .gateway(.metrics)),
        ("GET", "/metrics", "format=text", false, .gateway(.metrics)),
        ("GET", "/health", nil, true, .s3),                        // signed: a bucket called "health"
        ("GET", "/health", "X-Amz-Signature=abc&X-Amz-Credential=x", false, .s3),
        ("GET", "/health", "x-amz-credential=x", false, .s3),
        ("GET", "/health", "Signature=abc&AWSAccessKeyId=x", false, .s3),
        ("PUT", "/health", nil, false, .s3),
        ("GET", "/health/", nil, false, .s3),
        ("GET", "/healthz", nil, false, .s3),
        ("GET", "/", nil, false, .s3),
    ] as [(String, String, String?, Bool, GatewayRoute)])
    func routes(method: String, path: String, query: String?, signed: Bool, expected: GatewayRoute) {
        var headers: HTTPFields = ["Host": "localhost"]
        if signed { headers.add("Authorization", "AWS4-HMAC-SHA256 ...") }
        #expect(GatewayRoute.decide(method: method, rawPath: path, rawQuery: query, headers: headers) == expected)
    }

    /// A listener beside a probe listener serves /health and /ready but not /metrics: that path is S3's there.
    @Test(arguments: [
        ("/health", GatewayRoute.gateway(.health)), ("/ready", .gateway(.ready)), ("/metrics", .s3),
    ] as [(String, GatewayRoute)])
    func routesOnlyTheServedEndpoints(path: String, expected: GatewayRoute) {
        #expect(GatewayRoute.decide(method: "GET", rawPath: path, rawQuery: nil, headers: ["Host": "localhost"],
                                    served: [.health, .ready]) == expected)
    }
}

@Suite struct S3ErrorTests {
    @Test func errorXMLEscapesAndCarriesRequestID() {
        let e = S3Error.invalidBucketName("a<b>&\"c'").withResource("/a<b>")
        let xml = String(decoding: e.xml(requestID: "REQ1"), as: UTF8.self)
        #expect(xml.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidBucketName</Code>"))
        #expect(xml.contains("<Message>The specified bucket is not valid: &apos;a&lt;b&gt;&amp;&quot;c&apos;&apos;.</Message>"))
        #expect(xml.contains("<Resource>/a&lt;b&gt;</Resource><RequestId>REQ1</RequestId></Error>"))
        #expect(e.status == 400)
        #expect(!S3Error.signatureDoesNotMatch(logDetail: "secret-ish canonical request").xml(requestID: "r").containsBytes("canonical"))
    }
}

extension Array where Element == UInt8 {
    func containsBytes(_ s: String) -> Bool { String(decoding: self, as: UTF8.self).contains(s) }
}
