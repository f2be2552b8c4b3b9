import Foundation
import Shared
import Testing
@testable import Proxy

/// Known-answer vectors from the Amazon S3 SigV4 documentation ("Examples: Signature Calculations").
@Suite struct SigV4KnownAnswerTests {
    static let accessKey = "AKIAIOSFODNN7EXAMPLE"
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let host = "examplebucket.s3.amazonaws.com"
    static let t20130524: Int64 = 1_369_353_600

    @Test func timeConversions() {
        #expect(SigV4Time.parseAmzDate("20130524T000000Z") == Self.t20130524)
        #expect(SigV4Time.formatAmzDate(Self.t20130524) == "20130524T000000Z")
        #expect(SigV4Time.parseHTTPDate("Fri, 24 May 2013 00:00:00 GMT") == Self.t20130524)
        #expect(SigV4Time.parseAmzDate("19700101T000000Z") == 0)
        #expect(SigV4Time.parseAmzDate("20240229T235959Z") == 1_709_251_199)
        #expect(SigV4Time.parseAmzDate("20230229T000000Z") == nil)  // not a leap year
        #expect(SigV4Time.parseAmzDate("20130524T000000") == nil)
        #expect(SigV4Time.parseAmzDate("2013052AT000000Z") == nil)
        #expect(SigV4Time.parseHTTPDate("Fri, 24 Foo 2013 00:00:00 GMT") == nil)
        var rng = SplitMix64(seed: 7)
        for _ in 0..<500 {
            let t = Int64.random(in: 0...4_102_444_800, using: &rng)
            #expect(SigV4Time.parseAmzDate(SigV4Time.formatAmzDate(t)) == t)
        }
    }

    @Test func signingKeyMatchesDocumentedChain() {
        // The per-step HMACs, recomputed, must equal the cached key.
        let scope = SigV4Scope(date: "20130524", region: "us-east-1", service: "s3")
        let a = SigningKeyCache.key(accessKey: Self.accessKey, secret: Self.secret, scope: scope)
        let b = SigningKeyCache.key(accessKey: Self.accessKey, secret: Self.secret, scope: scope)
        #expect(a == b)
        #expect(a == SigV4.signingKey(secret: Self.secret, scope: scope))
        #expect(Encoding.hex(a) == "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378")
        #expect(a != SigV4.signingKey(secret: Self.secret, scope: SigV4Scope(date: "20130525", region: "us-east-1", service: "s3")))
    }

    @Test func signerGetObjectWithRange() {
        let signer = SigV4Signer(accessKey: Self.accessKey, secretKey: Self.secret, region: "us-east-1")
        let headers = signer.sign(method: "GET", canonicalURI: "/test.txt", canonicalQuery: "", host: Self.host,
                                  headers: [(name: "Range", value: "bytes=0-9")],
                                  payloadHash: SigV4.emptyPayloadHash, now: Self.t20130524)
        let auth = headers.first { $0.name == "Authorization" }?.value
        #expect(auth == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(headers.contains { $0.name == "x-amz-date" && $0.value == "20130524T000000Z" })
        #expect(!headers.contains { $0.name.lowercased() == "host" })
    }

    @Test func signerListObjectsQuery() throws {
        let signer = SigV4Signer(accessKey: Self.accessKey, secretKey: Self.secret, region: "us-east-1")
        let query = try #require(QueryString.parse("max-keys=2&prefix=J"))
        let headers = signer.sign(method: "GET", canonicalURI: "/", canonicalQuery: QueryString.canonical(query), host: Self.host,
                                  headers: [], payloadHash: SigV4.emptyPayloadHash, now: Self.t20130524)
        #expect(headers.last?.value.hasSuffix("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == true)
    }

    @Test func verifierAcceptsDocumentedPutObject() throws {
        var fields = HTTPFields()
        fields.add("Host", Self.host)
        fields.add("Date", "Fri, 24 May 2013 00:00:00 GMT")
        fields.add("x-amz-date", "20130524T000000Z")
        fields.add("x-amz-storage-class", "REDUCED_REDUNDANCY")
        fields.add("x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        fields.add("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
        let verifier = RequestAuthenticator(credentials: StaticCredentials(accessKey: Self.accessKey, secretKey: Self.secret), regions: ["us-east-1", "us-west-2"])
        let verified = try verifier.authenticate(method: "PUT", rawPath: "/test%24file.text", rawQuery: nil, headers: fields, now: Self.t20130524 + 60)
        #expect(verified.accessKey == Self.accessKey)
        #expect(verified.chunkChain?.scope.region == "us-east-1")
        #expect(verified.payload == .signedHash(Encoding.fromHex("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")!))
        // The same request with the path character sent unencoded canonicalises identically.
        _ = try verifier.authenticate(method: "PUT", rawPath: "/test$file.text", rawQuery: nil, headers: fields, now: Self.t20130524)
        // A different storage class breaks the signature.
        fields.set("x-amz-storage-class", "STANDARD")
        #expect(s3ErrorCode {
            _ = try verifier.authenticate(method: "PUT", rawPath: "/test%24file.text", rawQuery: nil, headers: fields, now: Self.t20130524)
        } == "SignatureDoesNotMatch")
    }

    @Test func verifierAcceptsDocumentedLifecycleQuery() throws {
        let fields: HTTPFields = [
            "Host": Self.host, "x-amz-date": "20130524T000000Z", "x-amz-content-sha256": SigV4.emptyPayloadHash,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ]
        let verifier = RequestAuthenticator(credentials: StaticCredentials(accessKey: Self.accessKey, secretKey: Self.secret), regions: ["us-east-1", "us-west-2"])
        let v = try verifier.authenticate(method: "GET", rawPath: "/", rawQuery: "lifecycle", headers: fields, now: Self.t20130524)
        #expect(v.payload == .signedHash(Encoding.fromHex(SigV4.emptyPayloadHash)!))
    }
}

@Suite struct SigV4CanonicalTests {
    @Test func canonicalURIEncodesOnceWithoutNormalising() {
        #expect(SigV4.canonicalURI(rawPath: "/") == "/")
        #expect(SigV4.canonicalURI(rawPath: "/b/a b") == "/b/a%20b")
        #expect(SigV4.canonicalURI(rawPath: "/b/a%20b") == "/b/a%20b")
        #expect(SigV4.canonicalURI(rawPath: "/b/a%2520b") == "/b/a%2520b")   // a literal %20 in the key
        #expect(SigV4.canonicalURI(rawPath: "/b//x/./../y") == "/b//x/./../y")
        #expect(SigV4.canonicalURI(rawPath: "/b/a+b") == "/b/a%2Bb")
        #expect(SigV4.canonicalURI(rawPath: "/b/%c3%a9") == "/b/%C3%A9")
        #expect(SigV4.canonicalURI(rawPath: "/b/é") == "/b/%C3%A9")
        #expect(SigV4.canonicalURI(rawPath: "/b/%zz") == nil)
        #expect(SigV4.canonicalURI(rawPath: "/b/%2") == nil)
    }

    @Test func canonicalQuerySortsAndEncodes() throws {
        let q = try #require(QueryString.parse("prefix=a%20b&delimiter=%2F&uploads&b=2&b=1&x=a+b"))
        #expect(QueryString.canonical(q) == "b=1&b=2&delimiter=%2F&prefix=a%20b&uploads=&x=a%2Bb")
        #expect(QueryString.forURL(q) == "b=1&b=2&delimiter=%2F&prefix=a%20b&uploads&x=a%2Bb")
        #expect(QueryString.parse("a=%G1") == nil)
        #expect(QueryString.parse(nil) == [])
    }

    @Test func canonicalHeadersTrimCollapseAndJoin() {
        var f = HTTPFields()
        f.add("X-Amz-Meta-A", "  one   two\t three ")
        f.add("x-amz-meta-a", "four")
        f.add("Host", "h")
        f.add("X-Amz-Meta-B", "\t ")
        var canonical = SigV4CanonicalRequest(method: "GET")
        let none = canonical.appendHeaders(signed: ["host", "x-amz-meta-a", "x-amz-meta-b"], from: f)
        #expect(none == nil)
        #expect(canonical.text == "GET\nhost:h\nx-amz-meta-a:one two three,four\nx-amz-meta-b:\n\nhost;x-amz-meta-a;x-amz-meta-b\n")
        var missing = SigV4CanonicalRequest(method: "GET")
        let range = missing.appendHeaders(signed: ["host", "range"], from: f)
        #expect(range == "range")
    }

    /// The signer's form (sorted, lower-case fields) writes what the verifier's lookup form writes for the same fields.
    @Test func sortedCanonicalHeadersMatchTheLookupForm() {
        var canonical = SigV4CanonicalRequest(method: "GET")
        let names = canonical.appendHeaders(sorted: [
            (name: "host", value: "h", position: -1), (name: "x-amz-meta-a", value: "  one   two\t three ", position: 0),
            (name: "x-amz-meta-a", value: "four", position: 2), (name: "x-amz-meta-b", value: "\t ", position: 1),
        ])
        #expect(names == ["host", "x-amz-meta-a", "x-amz-meta-b"])
        #expect(canonical.text == "GET\nhost:h\nx-amz-meta-a:one two three,four\nx-amz-meta-b:\n\nhost;x-amz-meta-a;x-amz-meta-b\n")
    }

    /// Every header the signer is given is signed under its lower-case name, several values of one name joined in
    /// the order they are sent, whatever the order and case the caller used.
    @Test func signerSignsRepeatedAndMixedCaseHeadersInSendingOrder() throws {
        let signer = SigV4Signer(accessKey: "AKIDEXAMPLE", secretKey: "secret", region: "us-east-1")
        let out = signer.sign(method: "PUT", canonicalURI: "/b/k", canonicalQuery: "", host: "backend:9000",
                              headers: [(name: "X-Amz-Meta-Z", value: "2"), (name: "Content-Type", value: "text/plain"),
                                        (name: "x-amz-meta-z", value: "1"), (name: "Host", value: "ignored")],
                              payloadHash: "UNSIGNED-PAYLOAD", now: 1_700_000_000)
        let authorization = try #require(out.first { $0.name == "Authorization" }?.value)
        #expect(authorization.contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-z,"))
        var fields = HTTPFields(out)
        fields.add("host", "backend:9000")
        var canonical = SigV4CanonicalRequest(method: "PUT")
        canonical.appendCanonical("/b/k")
        canonical.appendCanonical("")
        #expect(canonical.appendHeaders(signed: ["content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-z"],
                                        from: fields) == nil)
        #expect(canonical.text.contains("\nx-amz-meta-z:2,1\n"))
        canonical.appendPayloadHash("UNSIGNED-PAYLOAD")
        let scope = SigV4Scope(date: "20231114", region: "us-east-1", service: "s3")
        let stringToSign = SigV4.stringToSign(amzDate: "20231114T221320Z", scope: scope, canonicalRequestHash: canonical.hash)
        let expected = stringToSign.withUnsafeBytes {
            SigningKeyCache.sign($0, accessKey: "AKIDEXAMPLE", secret: "secret", scope: scope).signature
        }
        #expect(authorization.hasSuffix("Signature=" + Encoding.hex(expected.array)))
    }

    /// With `sendHost` the signed headers start with `Host` and are otherwise the same, signature included.
    @Test func sendHostPutsHostFirstAndSignsTheSame() {
        let signer = SigV4Signer(accessKey: "AKIDEXAMPLE", secretKey: "secret", region: "us-east-1")
        let headers = [(name: "Content-Type", value: "text/plain"), (name: "X-Amz-Meta-A", value: "1"), (name: "host", value: "dropped")]
        let plain = signer.sign(method: "PUT", canonicalURI: "/b/k", canonicalQuery: "a=1", host: "backend:9000",
                                headers: headers, payloadHash: "UNSIGNED-PAYLOAD", now: 1_700_000_000)
        let withHost = signer.sign(method: "PUT", canonicalURI: "/b/k", canonicalQuery: "a=1", host: "backend:9000",
                                   headers: headers, payloadHash: "UNSIGNED-PAYLOAD", now: 1_700_000_000, sendHost: true)
        #expect(withHost.map(\.name) == ["Host"] + plain.map(\.name))
        #expect(withHost.map(\.value) == ["backend:9000"] + plain.map(\.value))
        #expect(!plain.contains { $0.name.lowercased() == "host" })
    }

    /// The whole canonical request of the documented GET Object example, byte for byte.
    @Test func canonicalRequestOfDocumentedGetObject() {
        let f: HTTPFields = ["Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9",
                             "x-amz-content-sha256": SigV4.emptyPayloadHash, "x-amz-date": "20130524T000000Z"]
        var canonical = SigV4CanonicalRequest(method: "GET")
        let uriParsed = canonical.appendURI(rawPath: "/test.txt")
        #expect(uriParsed)
        canonical.appendQuery([])
        let missingHeader = canonical.appendHeaders(signed: ["host", "range", "x-amz-content-sha256", "x-amz-date"], from: f)
        #expect(missingHeader == nil)
        canonical.appendPayloadHash(SigV4.emptyPayloadHash)
        #expect(canonical.text == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        let scope = SigV4Scope(date: "20130524", region: "us-east-1", service: "s3")
        let stringToSign = SigV4.stringToSign(amzDate: "20130524T000000Z", scope: scope, canonicalRequestHash: canonical.hash)
        #expect(String(decoding: stringToSign, as: UTF8.self) == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        let key = SigV4.signingKey(secret: SigV4KnownAnswerTests.secret, scope: scope)
        let signature = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        #expect(SigV4.signatureMatches(signature, signingKey: key, stringToSign: stringToSign))
        #expect(!SigV4.signatureMatches("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb40", signingKey: key, stringToSign: stringToSign))
        #expect(!SigV4.signatureMatches(signature.uppercased(), signingKey: key, stringToSign: stringToSign))
        #expect(!SigV4.signatureMatches(String(signature.dropLast()), signingKey: key, stringToSign: stringToSign))
    }

    /// The string to sign written into one buffer is byte for byte the composition it replaced (parts appended to an
    /// array), for seeded dates, scopes (regions up to the parser's 64 bytes, other services) and hashes.
    @Test func stringToSignWriterMatchesThePartsJoined() {
        var rng = SplitMix64(seed: 0x5354_5332)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        func word(_ count: Int) -> String { String(decoding: (0..<count).map { _ in alphabet.randomElement(using: &rng)! }, as: UTF8.self) }
        for _ in 0..<500 {
            let amzDate = SigV4Time.formatAmzDate(Int64.random(in: 0...4_102_444_800, using: &rng))
            let scope = SigV4Scope(date: String(amzDate.prefix(8)), region: word(Int.random(in: 1...64, using: &rng)),
                                   service: Bool.random(using: &rng) ? "s3" : word(Int.random(in: 1...20, using: &rng)))
            let hash = Bytes32((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
            var old: [UInt8] = []
            old.append(contentsOf: Array(SigV4.algorithm.utf8) + [10] + Array(amzDate.utf8) + [10])
            old.append(contentsOf: Array("\(scope.date)/\(scope.region)/\(scope.service)/aws4_request".utf8) + [10])
            old.append(contentsOf: Array(Encoding.hex(hash.array).utf8))
            #expect(SigV4.stringToSign(amzDate: amzDate, scope: scope, canonicalRequestHash: hash) == old)
            #expect(SigV4.withStringToSign(amzDate: amzDate, scope: scope, canonicalRequestHash: hash) { Array($0) } == old)
            #expect(scope.byteCount == scope.string.utf8.count)
        }
    }

    /// The signer's Authorization value written into the string's storage is the composition it replaced, for seeded
    /// access keys, scopes, signed-header lists and signatures.
    @Test func authorizationValueMatchesThePartsJoined() {
        var rng = SplitMix64(seed: 0x4155_5448)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
        func word(_ count: Int) -> String { String(decoding: (0..<count).map { _ in alphabet.randomElement(using: &rng)! }, as: UTF8.self) }
        for _ in 0..<500 {
            let accessKey = word(Int.random(in: 1...128, using: &rng))
            let scope = SigV4Scope(date: "2026\(Int.random(in: 1000...1231, using: &rng))", region: word(Int.random(in: 1...64, using: &rng)),
                                   service: "s3")
            let names = (0..<Int.random(in: 0...12, using: &rng)).map { _ in word(Int.random(in: 1...40, using: &rng)).lowercased() }
            let signature = Bytes32((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
            let old = "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope.string), SignedHeaders=\(names.joined(separator: ";")), "
                + "Signature=\(Encoding.hex(signature.array))"
            #expect(SigV4Signer.authorization(accessKey: accessKey, scope: scope, signedHeaders: names, signature: signature) == old)
        }
    }

    /// The request date must start with the credential date, byte for byte.
    @Test func datePrefixMatchesOnlyTheSameDay() {
        #expect(SigV4.datePrefixMatches(amzDate: "20130524T000000Z", scopeDate: "20130524"))
        #expect(!SigV4.datePrefixMatches(amzDate: "20130525T000000Z", scopeDate: "20130524"))
        #expect(!SigV4.datePrefixMatches(amzDate: "2013052", scopeDate: "20130524"))
        #expect(!SigV4.datePrefixMatches(amzDate: "", scopeDate: "20130524"))
        #expect(SigV4.datePrefixMatches(amzDate: "20130524", scopeDate: "20130524"))
        #expect(!SigV4.datePrefixMatches(amzDate: "20130524T000000Z", scopeDate: "2013052"))
    }

    /// The canonical query is the same as `QueryString.canonical` (the signer's) for any parsed query.
    @Test func canonicalQueryMatchesTheSignersForm() throws {
        for raw in ["", "a=1", "prefix=a%20b&delimiter=%2F&uploads&b=2&b=1&x=a+b", "%C3%A9=%E2%82%AC&~=_&A=a&a=A", "k=&k&k=0"] {
            let q = try #require(QueryString.parse(raw))
            var canonical = SigV4CanonicalRequest(method: "GET")
            canonical.appendQuery(q)
            #expect(canonical.text == "GET\n\(QueryString.canonical(q))\n", "\(raw)")
            var omitting = SigV4CanonicalRequest(method: "GET")
            omitting.appendQuery(q, omitting: "b")
            #expect(omitting.text == "GET\n\(QueryString.canonical(q.filter { $0.name != "b" }))\n", "\(raw)")
        }
    }
}

/// The per-thread signing-key cache: bounded, keyed by everything the key depends on, and emptied when the
/// credential set changes.
@Suite struct SigningKeyCacheTests {
    @Test func dateRolloverAndRegionGiveTheirOwnKeys() {
        let today = SigV4Scope(date: "20260101", region: "us-east-1", service: "s3")
        let tomorrow = SigV4Scope(date: "20260102", region: "us-east-1", service: "s3")
        let elsewhere = SigV4Scope(date: "20260101", region: "eu-west-1", service: "s3")
        for scope in [today, tomorrow, elsewhere, today, tomorrow] {
            #expect(SigningKeyCache.key(accessKey: "AK", secret: "rollover-secret", scope: scope) == SigV4.signingKey(secret: "rollover-secret", scope: scope))
        }
    }

    @Test func aRotatedSecretNeverGetsTheOldKey() {
        let scope = SigV4Scope(date: "20260101", region: "us-east-1", service: "s3")
        let old = SigningKeyCache.key(accessKey: "ROTATING", secret: "old-secret", scope: scope)
        let new = SigningKeyCache.key(accessKey: "ROTATING", secret: "new-secret", scope: scope)
        #expect(old != new)
        #expect(new == SigV4.signingKey(secret: "new-secret", scope: scope))
        #expect(SigningKeyCache.key(accessKey: "ROTATING", secret: "old-secret", scope: scope) == old)
    }

    /// A signature made on the entry's once-keyed HMAC equals the one-shot HMAC under the derived key, for each
    /// scope and secret, whichever entry was used last (the per-entry contexts never mix keys).
    @Test func signaturesUnderCachedKeysMatchOneShotHMAC() {
        let scopes = [SigV4Scope(date: "20260101", region: "us-east-1", service: "s3"),
                      SigV4Scope(date: "20260102", region: "us-east-1", service: "s3"),
                      SigV4Scope(date: "20260101", region: "eu-west-1", service: "s3")]
        for round in 0..<3 {
            for (i, scope) in scopes.enumerated() {
                for secret in ["sign-secret-a", "sign-secret-b"] {
                    let message = Array("AWS4-HMAC-SHA256\n20260101T000000Z\n\(round)-\(i)-\(secret)".utf8)
                    let (signature, key) = message.withUnsafeBytes {
                        SigningKeyCache.sign($0, accessKey: "SIGNER", secret: secret, scope: scope)
                    }
                    #expect(key == SigV4.signingKey(secret: secret, scope: scope))
                    #expect(signature.array == HMAC.sha256(key: key, data: message))
                }
            }
        }
    }

    /// The 32 bytes of exactly 64 lower-case hex digits; anything else (upper case, other lengths, non-hex,
    /// multi-byte characters of the same byte length) is no signature.
    @Test func rawSignatureAcceptsOnlyLowerCaseHex() {
        let bytes = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        #expect(SigV4.rawSignature(Encoding.hex(bytes))?.array == bytes)
        #expect(SigV4.rawSignature(String(repeating: "0", count: 64))?.array == [UInt8](repeating: 0, count: 32))
        #expect(SigV4.rawSignature(String(repeating: "f", count: 64))?.array == [UInt8](repeating: 255, count: 32))
        for bad in [Encoding.hex(bytes).uppercased(), String(Encoding.hex(bytes).dropLast()), Encoding.hex(bytes) + "0",
                    String(repeating: "g", count: 64), String(repeating: "é", count: 32), "", String(repeating: "0", count: 63) + " ",
                    String(repeating: "0", count: 63) + ":", String(repeating: "0", count: 63) + "/", String(repeating: "0", count: 63) + "`"] {
            #expect(SigV4.rawSignature(bad) == nil, "\(bad)")
        }
    }

    @Test func boundedPerThread() {
        for day in 1...(SigningKeyCache.perThread * 2) {
            let scope = SigV4Scope(date: "202601\(day < 10 ? "0" : "")\(day)", region: "us-east-1", service: "s3")
            _ = SigningKeyCache.key(accessKey: "MANY", secret: "many-secret", scope: scope)
            #expect(SigningKeyCache.countOnThisThread <= SigningKeyCache.perThread)
        }
    }

    @Test func replacingCredentialsEmptiesEveryThreadsCache() throws {
        let scope = SigV4Scope(date: "20260101", region: "us-east-1", service: "s3")
        _ = SigningKeyCache.key(accessKey: "AK", secret: "some-secret", scope: scope)
        // Another thread's keys, and that thread's cached credential snapshot, are dropped at its next lookup.
        let store = CredentialStore([Credential(accessKey: "AK", secretKey: "some-secret")])
        let worker = LookupThread(store: store, scope: scope)
        #expect(worker.run() == (0, true))  // a new thread: nothing cached yet; it caches AK's key now
        store.replace(with: [Credential(accessKey: "AK2", secretKey: "other-secret")])
        #expect(SigningKeyCache.countOnThisThread == 0)
        #expect(worker.run() == (0, false))
        worker.stop()
    }
}

/// A thread that keeps running lookups on request, so its thread-local state outlives one call.
final class LookupThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending = false
    private var stopped = false
    private var result: (Int, Bool)?
    private let store: CredentialStore
    private let scope: SigV4Scope

    init(store: CredentialStore, scope: SigV4Scope) {
        self.store = store
        self.scope = scope
        Thread { [self] in
            while true {
                condition.lock()
                while !pending && !stopped { condition.wait() }
                if stopped { condition.unlock(); return }
                condition.unlock()
                // How many keys this thread held before the lookup, and whether AK is a known credential.
                let before = SigningKeyCache.countOnThisThread
                let known = store.credential(forAccessKey: "AK")
                if let known { _ = SigningKeyCache.key(accessKey: "AK", secret: known.secretKey, scope: scope) }
                condition.lock()
                result = (before, known != nil)
                pending = false
                condition.broadcast()
                condition.unlock()
            }
        }.start()
    }

    /// Runs one lookup on the thread: (keys it held before, whether "AK" was found).
    func run() -> (Int, Bool) {
        condition.lock()
        defer { condition.unlock() }
        pending = true
        condition.broadcast()
        while pending { condition.wait() }
        return result!
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
