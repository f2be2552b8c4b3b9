import Testing
import Shared
@testable import Proxy

@Suite struct SigV4AuthorizationHeaderTests {
    static let valid = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"

    /// The mask form of the signed-name byte rule accepts exactly what the listed tchar set minus upper case did.
    @Test func lowerTokenCharsAreTheListedSet() {
        let listed = Set("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~".utf8)
        for b in 0...255 {
            #expect(SigV4AuthorizationHeader.isLowerTokenChar(UInt8(b)) == listed.contains(UInt8(b)), "\(b)")
        }
    }

    /// The word scan for spaces and tabs agrees with the byte rule for every byte value at every offset of values up
    /// to 20 bytes long (the rest seeded non-blank bytes, including the bytes one bit away from space and tab).
    @Test func spaceOrTabScanAgreesWithTheByteRule() {
        let filler: [UInt8] = [0x21, 0x28, 0x30, 0x41, 0x61, 0x08, 0x0b, 0x0d, 0x01, 0x00, 0xa0, 0x89, 0xff]
        var seed: UInt64 = 7
        for length in 1...20 {
            for offset in 0..<length {
                for value in 0...255 {
                    var bytes = (0..<length).map { _ -> UInt8 in
                        seed = seed &* 6364136223846793005 &+ 1442695040888963407
                        return filler[Int(seed >> 33) % filler.count]
                    }
                    bytes[offset] = UInt8(value)
                    let expected = bytes.contains { $0 == 0x20 || $0 == 0x09 }
                    #expect(bytes.withUnsafeBufferPointer { SigV4CanonicalRequest.containsSpaceOrTab($0) } == expected)
                }
            }
        }
        #expect(!SigV4CanonicalRequest.containsSpaceOrTab(UnsafeBufferPointer(start: nil, count: 0)))
    }

    @Test func parsesValidHeader() throws {
        let h = try SigV4AuthorizationHeader.parse(Self.valid)
        #expect(h.accessKey == "AKIAIOSFODNN7EXAMPLE")
        #expect(h.scope == SigV4Scope(date: "20130524", region: "us-east-1", service: "s3"))
        #expect(h.signedHeaders == ["host", "range", "x-amz-content-sha256", "x-amz-date"])
        #expect(h.signature.array == Encoding.fromHex("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
        // No spaces after commas (as some SDKs send) is the same header.
        let compact = Self.valid.replacingOccurrences(of: ", ", with: ",")
        #expect(try SigV4AuthorizationHeader.parse(compact) == h)
    }

    /// The access key is the Credential's first part as a slice of the header, wherever the component sits, and the
    /// signature the bytes its hex spells.
    @Test func accessKeyIsTheCredentialsFirstPart() throws {
        let signature = "00ff" + String(repeating: "5a", count: 30)
        for value in ["AWS4-HMAC-SHA256 Credential=GWDEMO0123456789ABCDEF/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=\(signature)",
                      "AWS4-HMAC-SHA256 Signature=\(signature),SignedHeaders=host,   Credential=GWDEMO0123456789ABCDEF/20130524/us-east-1/s3/aws4_request  "] {
            let h = try SigV4AuthorizationHeader.parse(value)
            #expect(h.accessKey == "GWDEMO0123456789ABCDEF")
            #expect(String(h.accessKey) == "GWDEMO0123456789ABCDEF")
            #expect(h.signature.array == [0x00, 0xff] + [UInt8](repeating: 0x5a, count: 30))
        }
        #expect(try SigV4AuthorizationHeader.parse("AWS4-HMAC-SHA256 Credential=k/20130524/r/s3/aws4_request, SignedHeaders=host, Signature=\(signature)").accessKey == "k")
    }

    /// The long names returned as literals (and their near misses, decoded from the bytes) come back exactly as
    /// signed, and a literal still counts as a duplicate of itself.
    @Test(arguments: [
        "x-amz-content-sha256", "x-amz-security-token", "x-amz-decoded-content-length",
        "x-amz-content-sha25", "x-amz-content-sha2566", "x-amz-content-sha257", "y-amz-content-sha256",
        "x-amz-security-tokens", "x-amz-decoded-content-lengt", "x-amz-decoded-content-lengtx", "x-amz-meta-sixteen",
    ])
    func longSignedHeaderNamesParseAsSigned(name: String) throws {
        let value = "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;\(name);x-amz-date, Signature="
            + String(repeating: "a", count: 64)
        #expect(try SigV4AuthorizationHeader.parse(value).signedHeaders == ["host", name, "x-amz-date"])
        let twice = value.replacingOccurrences(of: "x-amz-date", with: name)
        #expect(throws: S3Error.self) { try SigV4AuthorizationHeader.parse(twice) }
    }

    @Test(arguments: [
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA512 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 63),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "A", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "g", count: 64),
        // The signature is decoded to bytes while parsing: other lengths, one upper-case or non-hex digit, an inner
        // space, or multi-byte characters of the same byte length are still malformed.
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 65),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 63) + "F",
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=F" + String(repeating: "a", count: 63),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "0", count: 31) + " " + String(repeating: "0", count: 32),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "é", count: 32),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=",
        "AWS4-HMAC-SHA256 Credential=A/2013052/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws5_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524//s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request/x, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=Host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;;date, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64) + ", Extra=1",
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
        "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request,, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64),
    ])
    func rejectsMalformed(_ value: String) {
        #expect(s3ErrorCode { _ = try SigV4AuthorizationHeader.parse(value) } == "AuthorizationHeaderMalformed")
    }

    @Test func rejectsOverlongInput() {
        let long = "AWS4-HMAC-SHA256 Credential=" + String(repeating: "A", count: 5000) + "/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + String(repeating: "a", count: 64)
        #expect(s3ErrorCode { _ = try SigV4AuthorizationHeader.parse(long) } == "AuthorizationHeaderMalformed")
        let manyHeaders = (0..<65).map { "h\($0)" }.joined(separator: ";")
        let tooMany = "AWS4-HMAC-SHA256 Credential=A/20130524/us-east-1/s3/aws4_request, SignedHeaders=\(manyHeaders), Signature=" + String(repeating: "a", count: 64)
        #expect(s3ErrorCode { _ = try SigV4AuthorizationHeader.parse(tooMany) } == "AuthorizationHeaderMalformed")
    }

    /// Seeded mutation fuzzing: random byte edits of a valid header never crash the parser, every
    /// failure is AuthorizationHeaderMalformed, and whatever is accepted satisfies the grammar's invariants.
    @Test func mutationFuzz() {
        var rng = SplitMix64(seed: 0x5167_4A55)
        let base = Array(Self.valid.utf8)
        let alphabet = Array("AWS4-HMAC-SHA256 Credential=SignedHeaders;/,=_ aZ09\u{0}\u{7f}\u{ff}".utf8)
        var accepted = 0
        for _ in 0..<20_000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                if bytes.count < 2 { bytes = base }
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !bytes.isEmpty:
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1 where !bytes.isEmpty:
                    bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng))
                case 2:
                    bytes.insert(alphabet.randomElement(using: &rng)!, at: Int.random(in: 0...bytes.count, using: &rng))
                case 3 where bytes.count > 2:
                    let a = Int.random(in: 0..<bytes.count, using: &rng)
                    let b = Int.random(in: a..<bytes.count, using: &rng)
                    bytes.removeSubrange(a..<b)
                default:
                    let a = Int.random(in: 0..<bytes.count, using: &rng)
                    let b = Int.random(in: a..<min(bytes.count, a + 40), using: &rng)
                    bytes.insert(contentsOf: bytes[a..<b], at: Int.random(in: 0...bytes.count, using: &rng))
                }
            }
            let input = String(decoding: bytes, as: UTF8.self)
            do {
                let h = try SigV4AuthorizationHeader.parse(input)
                accepted += 1
                // The signature is the bytes of 64 lower-case hex digits in the input.
                let signatureHex = Encoding.hex(h.signature.array)
                #expect(input.contains("Signature=\(signatureHex)"))
                #expect(h.scope.service == "s3")
                #expect(h.scope.date.utf8.count == 8)
                #expect(!h.accessKey.isEmpty && !h.scope.region.isEmpty && !h.signedHeaders.isEmpty)
                #expect(Set(h.signedHeaders).count == h.signedHeaders.count)
                #expect(h.signedHeaders.allSatisfy { !$0.isEmpty && $0 == $0.lowercased() })
                // Accepted input re-serialises to a header that parses to the same value.
                let again = "AWS4-HMAC-SHA256 Credential=\(h.accessKey)/\(h.scope.string), SignedHeaders=\(h.signedHeaders.joined(separator: ";")), Signature=\(signatureHex)"
                #expect((try? SigV4AuthorizationHeader.parse(again)) == h)
            } catch {
                #expect(error.code == "AuthorizationHeaderMalformed")
            }
        }
        // Some mutations (e.g. a changed signature digit) keep the header valid; most must not.
        #expect(accepted > 0)
        #expect(accepted < 20_000 / 2)
    }
}
