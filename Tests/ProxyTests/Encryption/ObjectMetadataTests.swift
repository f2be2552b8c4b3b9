import Foundation
import Testing
@testable import Proxy
@testable import Shared

@Suite struct ObjectMetadataTests {
    static let v1Sample = EncryptionMetadata(
        version: .v1, cipher: .aes256GCM, chunkSize: 65536, layout: .single(salt: Array(200..<216)),
        wrappedKey: try! WrappedDataKey(reference: KeyReference(provider: "password", keyID: "0001020304050607"), bytes: Array(100..<160)),
        plaintextMD5: Array(0..<16))
    static let v2Sample = EncryptionMetadata(
        cipher: .aes256GCM, chunkSize: 65536, layout: .single(salt: Array(200..<216)),
        wrappedKey: try! WrappedDataKey(reference: KeyReference(provider: "aws-kms", keyID: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab",
                                                                wrappedIntermediateKey: Array(repeating: 9, count: 200)),
                                        bytes: Array(100..<160)),
        plaintextMD5: Array(0..<16), checksum: try! ChecksumRecord(algorithm: "CRC32", value: [1, 2, 3, 4]), mac: Array(0..<32))

    @Test(arguments: [v1Sample, v2Sample])
    func roundTripsAndStaysSmall(_ sample: EncryptionMetadata) throws {
        #expect(try EncryptionMetadata.parse(headers: sample.headers) == sample)
        var multipart = sample
        multipart.layout = .multipart
        multipart.plaintextMD5 = nil
        multipart.cipher = .chacha20Poly1305
        #expect(try EncryptionMetadata.parse(headers: multipart.headers) == multipart)
        #expect(sample.headers.keys.allSatisfy { EncryptionMetadata.isReserved(headerName: $0) })
        // Other headers are ignored, names are case-insensitive.
        var mixed = Dictionary(uniqueKeysWithValues: sample.headers.map { ($0.key.uppercased(), $0.value) })
        mixed["Content-Type"] = "text/plain"
        mixed["x-amz-meta-owner"] = "me"
        #expect(try EncryptionMetadata.parse(headers: mixed) == sample)
    }

    @Test func budgetReservesRoomForLaterRecords() throws {
        #expect(Self.v1Sample.metadataBudget < 300)
        let measured = { (m: EncryptionMetadata) in m.headers.reduce(0) { $0 + $1.key.count - 11 + $1.value.count } }
        // A password object without records: small, but counted with the records it may receive.
        var bare = Self.v2Sample
        bare.wrappedKey = try WrappedDataKey(reference: KeyReference(provider: "password", keyID: "0001020304050607"), bytes: Array(100..<160))
        bare.plaintextMD5 = nil
        bare.checksum = nil
        #expect(measured(bare) < 350)
        var full = bare
        full.plaintextMD5 = Array(0..<16)
        full.checksum = try ChecksumRecord(algorithm: String(repeating: "A", count: 16), value: Array(repeating: 1, count: 64))
        #expect(bare.metadataBudget == measured(full), "the reserve is exactly the largest records")
        #expect(full.metadataBudget == measured(full))
        #expect(bare.metadataBudget < 600)
    }

    @Test func plainObjectsHaveNoMetadata() throws {
        #expect(try EncryptionMetadata.parse(headers: [:]) == nil)
        #expect(try EncryptionMetadata.parse(headers: ["x-amz-meta-s3egx": "1", "etag": "\"abc\""]) == nil)
        // Gateway headers without a version are damage, not a plain object.
        #expect(throws: EncryptionError.self) { try EncryptionMetadata.parse(headers: ["x-amz-meta-s3eg-key-id": "0001020304050607"]) }
    }

    private func code(_ headers: [String: String]) -> EncryptionError.Code? {
        do {
            _ = try EncryptionMetadata.parse(headers: headers)
            return nil
        } catch {
            return error.code
        }
    }

    private func with(_ good: [String: String], _ name: String, _ value: String?) -> [String: String] {
        var h = good
        h["x-amz-meta-s3eg-" + name] = value
        return h
    }

    @Test func rejectsEveryDeviationOfVersion1() {
        let good = Self.v1Sample.headers
        #expect(code(with(good, "version", "3")) == .unsupportedVersion)
        #expect(code(with(good, "version", "01")) == .unsupportedVersion)
        for name in ["cipher", "chunk-size", "key-id", "wrapped-key", "layout", "salt"] {
            #expect(code(with(good, name, nil)) == .malformedMetadata, "missing \(name)")
        }
        let bad: [(String, String)] = [
            ("cipher", "aes-256-gcm"), ("cipher", "AES-128-GCM"),
            ("chunk-size", "065536"), ("chunk-size", "4095"), ("chunk-size", "16777217"), ("chunk-size", "+65536"),
            ("chunk-size", "65536 "), ("chunk-size", ""), ("chunk-size", "99999999999999999999"),
            ("key-id", "000102030405060"), ("key-id", "000102030405060G"), ("key-id", "0001020304050607".uppercased() + "A"),
            ("key-id", "ABCDEF0123456789"),
            ("wrapped-key", String(good["x-amz-meta-s3eg-wrapped-key"]!.dropLast(4))),
            ("wrapped-key", good["x-amz-meta-s3eg-wrapped-key"]! + "\n"),
            ("wrapped-key", "!" + good["x-amz-meta-s3eg-wrapped-key"]!.dropFirst()),
            ("layout", "Single"), ("layout", ""),
            ("salt", "00"), ("etag", "xyz"), ("etag", String(repeating: "A", count: 32)),
            ("unknown-field", "1"),
            // Version 2 fields are unknown in version 1.
            ("provider", "password"), ("mac", Data(Array(0..<32)).base64EncodedString()), ("checksum", "CRC32:AQIDBA=="),
        ]
        for (name, value) in bad {
            #expect(code(with(good, name, value)) == .malformedMetadata, "\(name)=\(value)")
        }
        var multipartWithSalt = good
        multipartWithSalt["x-amz-meta-s3eg-layout"] = "multipart"
        #expect(code(multipartWithSalt) == .malformedMetadata)
        // Duplicates (a header list, as received).
        let fields = good.map { (name: $0.key, value: $0.value) } + [(name: "X-Amz-Meta-S3eg-Layout", value: "single")]
        #expect(throws: EncryptionError.self) { try EncryptionMetadata.parse(fields: fields) }
    }

    @Test func rejectsEveryDeviationOfVersion2() {
        let good = Self.v2Sample.headers
        for name in ["cipher", "chunk-size", "provider", "key-id", "wrapped-key", "layout", "salt", "mac"] {
            #expect(code(with(good, name, nil)) == .malformedMetadata, "missing \(name)")
        }
        // Optional fields may be absent.
        for name in ["ik", "etag", "checksum"] {
            #expect(code(with(good, name, nil)) == nil, "optional \(name)")
        }
        let mac = good["x-amz-meta-s3eg-mac"]!
        let bad: [(String, String)] = [
            ("provider", "AWS-KMS"), ("provider", ""), ("provider", String(repeating: "a", count: 33)), ("provider", "a b"),
            ("key-id", ""), ("key-id", "a,b"), ("key-id", "a b"), ("key-id", "é"), ("key-id", String(repeating: "k", count: 257)),
            ("ik", ""), ("ik", "AAA"), ("ik", Data(Array(repeating: 1, count: 1025)).base64EncodedString()),
            ("wrapped-key", ""), ("wrapped-key", Data(Array(repeating: 1, count: 1025)).base64EncodedString()),
            ("mac", String(mac.dropLast(4))), ("mac", Data(Array(0..<31)).base64EncodedString()), ("mac", mac + "="),
            ("checksum", "CRC32"), ("checksum", "crc32:AQIDBA=="), ("checksum", "CRC32:"), ("checksum", "CRC32:AQIDBA"),
            ("checksum", ":AQIDBA=="), ("checksum", "CRC32:" + Data(Array(repeating: 1, count: 65)).base64EncodedString()),
            ("etag", "xyz"), ("unknown-field", "1"),
        ]
        for (name, value) in bad {
            #expect(code(with(good, name, value)) == .malformedMetadata, "\(name)=\(value)")
        }
        #expect(code(with(good, "key-id", String(repeating: "k", count: 256))) == nil)
    }

    /// Seeded mutation fuzzing: never crashes, and whatever parses re-encodes to an equivalent parse.
    @Test(arguments: [v1Sample, v2Sample])
    func fuzzedHeadersNeverCrash(_ sample: EncryptionMetadata) {
        var rng = SplitMix64(seed: 2024)
        let names = Array(sample.headers.keys).sorted()
        let alphabet = Array("0123456789abcdefABCDEF+/=-_:, \t\u{0}é€S3eg".unicodeScalars).map(String.init)
        var accepted = 0
        for _ in 0..<5000 {
            var headers = sample.headers
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let name = names.randomElement(using: &rng)!
                switch Int.random(in: 0..<5, using: &rng) {
                case 0: headers[name] = nil
                case 1:
                    var v = Array(headers[name] ?? "")
                    if !v.isEmpty { v[Int.random(in: 0..<v.count, using: &rng)] = Character(alphabet.randomElement(using: &rng)!) }
                    headers[name] = String(v)
                case 2: headers[name] = String((headers[name] ?? "").prefix(Int.random(in: 0...90, using: &rng)))
                case 3: headers[name] = (headers[name] ?? "") + alphabet.randomElement(using: &rng)!
                default: headers[name + alphabet.randomElement(using: &rng)!] = "1"
                }
            }
            if let parsed = try? EncryptionMetadata.parse(headers: headers) {
                accepted += 1
                #expect((try? EncryptionMetadata.parse(headers: parsed.headers)) == parsed)
            }
        }
        // Most mutations must be rejected; a few (e.g. a new valid hex digit) stay valid.
        #expect(accepted < 2500)
    }
}
