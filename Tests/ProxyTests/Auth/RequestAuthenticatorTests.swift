import Foundation
import Shared
import Testing
@testable import Proxy

@Suite struct RequestAuthenticatorTests {
    static let accessKey = "GATEWAYKEY"
    static let secret = "gateway/secret+KEY"
    static let now: Int64 = 1_764_000_000
    let verifier = RequestAuthenticator(credentials: StaticCredentials(accessKey: accessKey, secretKey: secret), regions: ["us-east-1", "us-west-2"])

    /// A request signed by our signer as a client would sign it.
    static func signed(method: String = "GET", bucket: String = "bucket", key: String? = "k", query: String? = nil,
                       headers: [(name: String, value: String)] = [], payloadHash: String = SigV4.emptyPayloadHash,
                       secret: String = secret, accessKey: String = accessKey, region: String = "us-west-2",
                       at time: Int64 = now) -> (rawPath: String, rawQuery: String?, fields: HTTPFields) {
        let rawPath = "/" + bucket + (key.map { "/" + URIEncoding.encode($0, keepSlash: true) } ?? "")
        let signer = SigV4Signer(accessKey: accessKey, secretKey: secret, region: region)
        let canonicalQuery = QueryString.canonical(QueryString.parse(query) ?? [])
        var out = signer.sign(method: method, canonicalURI: rawPath, canonicalQuery: canonicalQuery, host: "127.0.0.1:8080",
                              headers: headers, payloadHash: payloadHash, now: time)
        out.insert((name: "Host", value: "127.0.0.1:8080"), at: 0)
        return (rawPath, query, HTTPFields(out))
    }

    func code(method: String = "GET", _ r: (rawPath: String, rawQuery: String?, fields: HTTPFields), now: Int64 = now) -> String? {
        s3ErrorCode { _ = try verifier.authenticate(method: method, rawPath: r.rawPath, rawQuery: r.rawQuery, headers: r.fields, now: now) }
    }

    @Test(arguments: ["k", "dir//a b+c/é~x", "a%20literal", "ünïcödé/日本", "trailing/", "..", "with?question&amp=x", " lead"])
    func signerVerifierRoundTrip(key: String) throws {
        let r = Self.signed(method: "PUT", key: key, query: "tagging&versionId=a%20b",
                            headers: [(name: "Content-Type", value: "text/plain"), (name: "x-amz-meta-a", value: " x  y ")],
                            payloadHash: Encoding.hex(Digest.sha256("body")))
        let v = try verifier.authenticate(method: "PUT", rawPath: r.rawPath, rawQuery: r.rawQuery, headers: r.fields, now: Self.now)
        #expect(v.payload == .signedHash(Digest.sha256("body")))
        #expect(v.chunkChain?.scope.region == "us-west-2")
        #expect(v.accessKey == Self.accessKey)
        #expect(v.chunkChain?.signingKey == SigV4.signingKey(secret: Self.secret, scope: v.chunkChain!.scope))
    }

    @Test func payloadModes() throws {
        let unsigned = Self.signed(method: "PUT", payloadHash: "UNSIGNED-PAYLOAD")
        #expect(try verifier.authenticate(method: "PUT", rawPath: unsigned.rawPath, rawQuery: nil, headers: unsigned.fields, now: Self.now).payload == .unsigned)
        let streaming = Self.signed(method: "PUT", payloadHash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        let v = try verifier.authenticate(method: "PUT", rawPath: streaming.rawPath, rawQuery: nil, headers: streaming.fields, now: Self.now)
        #expect(v.payload == .streaming("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
        #expect(v.chunkChain?.previous.count == 64)
        #expect(code(method: "PUT", Self.signed(method: "PUT", payloadHash: "not-a-hash")) == "InvalidArgument")
    }

    @Test func rejectsTamperingAndWrongCredentials() {
        var r = Self.signed(headers: [(name: "Range", value: "bytes=0-9")])
        #expect(code(r) == nil)
        #expect(code(method: "HEAD", r) == "SignatureDoesNotMatch")
        r.fields.set("Range", "bytes=0-10")
        #expect(code(r) == "SignatureDoesNotMatch")
        #expect(code(Self.signed(secret: "wrong")) == "SignatureDoesNotMatch")
        #expect(code(Self.signed(accessKey: "OTHERKEY")) == "InvalidAccessKeyId")
        var q = Self.signed(query: "prefix=a")
        q.rawQuery = "prefix=b"
        #expect(code(q) == "SignatureDoesNotMatch")
        var p = Self.signed(key: "a")
        p.rawPath = "/bucket/b"
        #expect(code(p) == "SignatureDoesNotMatch")
        var missing = Self.signed(headers: [(name: "Range", value: "bytes=0-9")])
        missing.fields.remove("Range")
        #expect(code(missing) == "SignatureDoesNotMatch")
    }

    @Test func clockSkew() {
        #expect(code(Self.signed(at: Self.now - 14 * 60)) == nil)
        #expect(code(Self.signed(at: Self.now - 16 * 60)) == "RequestTimeTooSkewed")
        #expect(code(Self.signed(at: Self.now + 16 * 60)) == "RequestTimeTooSkewed")
    }

    @Test func requiredHeaders() {
        var r = Self.signed()
        r.fields.remove("x-amz-content-sha256")
        #expect(code(r) == "MissingSecurityHeader")
        var d = Self.signed()
        d.fields.remove("x-amz-date")
        #expect(code(d) == "AccessDenied")
        var bad = Self.signed()
        bad.fields.set("x-amz-date", "yesterday")
        #expect(code(bad) == "AccessDenied")
        var unsignedHost = Self.signed()
        let auth = unsignedHost.fields["Authorization"]!.replacingOccurrences(of: "host;", with: "")
        unsignedHost.fields.set("Authorization", auth)
        #expect(code(unsignedHost) == "AuthorizationHeaderMalformed")
        var twice = Self.signed()
        twice.fields.add("Authorization", twice.fields["Authorization"]!)
        #expect(code(twice) == "AuthorizationHeaderMalformed")
        var dateMismatch = Self.signed()
        dateMismatch.fields.set("Authorization", dateMismatch.fields["Authorization"]!.replacingOccurrences(of: "/2025", with: "/2024"))
        #expect(code(dateMismatch) == "AuthorizationHeaderMalformed")
    }

    @Test func otherSchemesAreRecognisedAndAnonymousIsDenied() {
        // A SigV2 header is a SigV2 request: here it fails on its (old) date, not as an unknown scheme.
        let sigV2: HTTPFields = ["Host": "h", "Authorization": "AWS AKID:c2lnbmF0dXJl", "Date": "Fri, 24 May 2013 00:00:00 GMT"]
        #expect(code((rawPath: "/b/k", rawQuery: nil, fields: sigV2)) == "RequestTimeTooSkewed")
        let presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=00"
        #expect(code((rawPath: "/b/k", rawQuery: presigned, fields: ["Host": "h"])) == "AuthorizationQueryParametersError")
        #expect(code((rawPath: "/b/k", rawQuery: nil, fields: ["Host": "h"])) == "AccessDenied")
        var both = Self.signed()
        both.rawQuery = "AWSAccessKeyId=\(Self.accessKey)&Expires=1&Signature=x"
        #expect(code(both) == "InvalidArgument")
    }

    @Test func dateHeaderInsteadOfXAmzDate() throws {
        let t: Int64 = 1_369_353_600
        // SDKs that send only a Date header sign it instead of x-amz-date.
        var fields: HTTPFields = ["Host": "h", "Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-content-sha256": SigV4.emptyPayloadHash]
        let scope = SigV4Scope(date: "20130524", region: "us-east-1", service: "s3")
        let cr = """
            GET
            /b/k

            date:Fri, 24 May 2013 00:00:00 GMT
            host:h
            x-amz-content-sha256:\(SigV4.emptyPayloadHash)

            date;host;x-amz-content-sha256
            \(SigV4.emptyPayloadHash)
            """
        let stringToSign = "AWS4-HMAC-SHA256\n20130524T000000Z\n\(scope.string)\n\(Encoding.hex(Digest.sha256(cr)))"
        let sig = SigV4.signature(signingKey: SigV4.signingKey(secret: Self.secret, scope: scope), stringToSign: stringToSign)
        fields.add("Authorization", "AWS4-HMAC-SHA256 Credential=\(Self.accessKey)/\(scope.string), SignedHeaders=date;host;x-amz-content-sha256, Signature=\(sig)")
        _ = try verifier.authenticate(method: "GET", rawPath: "/b/k", rawQuery: nil, headers: fields, now: t)
        fields.set("Date", "Fri, 24 May 2013 00:00:01 GMT")
        #expect(s3ErrorCode { _ = try verifier.authenticate(method: "GET", rawPath: "/b/k", rawQuery: nil, headers: fields, now: t) } == "SignatureDoesNotMatch")
    }
}

/// Signs with botocore (the signer inside boto3 and the AWS CLI) and checks that the verifier accepts it.
/// botocore is a real dependency: without it these tests fail (scripts/deps.sh test installs it), never skip.
@Suite struct BotocoreCompatibilityTests {
    @Test(arguments: [
        ("PUT", "dir//a b+c/é~x", "tagging&x=a%20b", false),
        ("GET", "plain.txt", "", false),
        ("PUT", "unsigned/payload", "", true),
        ("POST", "multi", "uploads", false),
        ("GET", "", "list-type=2&prefix=a%2Fb&delimiter=%2F", false),
    ])
    func botocoreSignedRequestVerifies(method: String, key: String, query: String, unsigned: Bool) throws {
        let body = method == "PUT" ? "hello world" : ""
        let signed = try BotocoreSigner.sign(method: method, bucket: "bkt", key: key, query: query, body: body,
                                             headers: ["Content-Type": "text/plain", "X-Amz-Meta-Note": "  two  spaces "],
                                             unsigned: unsigned)
        var fields = HTTPFields(signed.headers.map { (name: $0[0], value: $0[1]) })
        fields.add("Host", "127.0.0.1:9000")
        let verifier = RequestAuthenticator(credentials: StaticCredentials(accessKey: "BOTOKEY", secretKey: "boto/secret"), regions: ["eu-central-1"])
        let now = Int64(Date().timeIntervalSince1970)
        let v = try verifier.authenticate(method: method, rawPath: signed.path, rawQuery: signed.query.isEmpty ? nil : signed.query,
                                    headers: fields, now: now)
        #expect(v.chunkChain?.scope.region == "eu-central-1")
        #expect(v.payload == (unsigned ? .unsigned : .signedHash(Digest.sha256(body))))
        // And a body-level tamper of a signed header is caught.
        fields.set("X-Amz-Meta-Note", "changed")
        #expect(s3ErrorCode {
            _ = try verifier.authenticate(method: method, rawPath: signed.path, rawQuery: signed.query.isEmpty ? nil : signed.query,
                                    headers: fields, now: now)
        } == "SignatureDoesNotMatch")
    }
}

enum BotocoreSigner {
    static let available: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import botocore.auth"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    struct Signed: Decodable {
        var path: String
        var query: String
        var headers: [[String]]
    }

    static let script = """
    import json, sys, urllib.parse
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    a = json.loads(sys.argv[1])
    path = "/" + a["bucket"] + ("/" + urllib.parse.quote(a["key"], safe="/~") if a["key"] else "")
    url = "https://127.0.0.1:9000" + path + (("?" + a["query"]) if a["query"] else "")
    req = AWSRequest(method=a["method"], url=url, data=a["body"].encode(), headers=a["headers"])
    from botocore.config import Config
    req.context["client_config"] = Config(s3={"payload_signing_enabled": not a["unsigned"]})
    S3SigV4Auth(Credentials("BOTOKEY", "boto/secret"), "s3", "eu-central-1").add_auth(req)
    p = req.prepare()
    u = urllib.parse.urlsplit(p.url)
    print(json.dumps({"path": u.path, "query": u.query, "headers": [[k, v.decode() if isinstance(v, bytes) else v] for k, v in p.headers.items()]}))
    """

    struct Failed: Error, CustomStringConvertible {
        var status: Int32
        var description: String { "the botocore signing script exited with status \(status) (its stderr is above)" }
    }

    struct Missing: Error, CustomStringConvertible {
        var description: String { "python3 cannot import botocore (boto3): " + RequiredTool.installHint }
    }

    static func sign(method: String, bucket: String, key: String, query: String, body: String,
                     headers: [String: String], unsigned: Bool) throws -> Signed {
        guard available else { throw Missing() }
        let args: [String: Any] = ["method": method, "bucket": bucket, "key": key, "query": query, "body": body,
                                   "headers": headers, "unsigned": unsigned]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: args), as: UTF8.self)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, json]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw Failed(status: p.terminationStatus) }
        return try JSONDecoder().decode(Signed.self, from: data)
    }
}
