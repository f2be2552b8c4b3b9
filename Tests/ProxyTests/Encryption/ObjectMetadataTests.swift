import Foundation
import Testing
@testable import Proxy
@testable import Shared

@Suite struct ObjectMetadataTests {
    let sample = EncryptionMetadata(cipher: .aes256GCM, chunkSize: 65536, keyID: Array(0..<8), wrappedKey: Array(100..<160),
                                    layout: .single(salt: Array(200..<216)), plaintextMD5: Array(0..<16))

    @Test func roundTripsAndStaysSmall() throws {
        #expect(try EncryptionMetadata.parse(headers: sample.headers) == sample)
        var multipart = sample
        multipart.layout = .multipart
        multipart.plaintextMD5 = nil
        multipart.cipher = .chacha20Poly1305
        #expect(try EncryptionMetadata.parse(headers: multipart.headers) == multipart)
        #expect(sample.metadataBudget < 400)
        #expect(sample.headers.keys.allSatisfy { EncryptionMetadata.isReserved(headerName: $0) })
        // Other headers are ignored, names are case-insensitive.
        var mixed = Dictionary(uniqueKeysWithValues: sample.headers.map { ($0.key.uppercased(), $0.value) })
        mixed["Content-Type"] = "text/plain"
        mixed["x-amz-meta-owner"] = "me"
        #expect(try EncryptionMetadata.parse(headers: mixed) == sample)
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

    @Test func rejectsEveryDeviation() {
        let good = sample.headers
        func with(_ name: String, _ value: String?) -> [String: String] {
            var h = good
            h["x-amz-meta-s3eg-" + name] = value
            return h
        }
        #expect(code(with("version", "2")) == .unsupportedVersion)
        #expect(code(with("version", "01")) == .unsupportedVersion)
        for name in ["cipher", "chunk-size", "key-id", "wrapped-key", "layout", "salt"] {
            #expect(code(with(name, nil)) == .malformedMetadata, "missing \(name)")
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
        ]
        for (name, value) in bad {
            #expect(code(with(name, value)) == .malformedMetadata, "\(name)=\(value)")
        }
        var multipartWithSalt = good
        multipartWithSalt["x-amz-meta-s3eg-layout"] = "multipart"
        #expect(code(multipartWithSalt) == .malformedMetadata)
        // Duplicates (a header list, as received).
        let fields = good.map { (name: $0.key, value: $0.value) } + [(name: "X-Amz-Meta-S3eg-Layout", value: "single")]
        #expect(throws: EncryptionError.self) { try EncryptionMetadata.parse(fields: fields) }
    }

    /// Seeded mutation fuzzing: never crashes, and whatever parses re-encodes to an equivalent parse.
    @Test func fuzzedHeadersNeverCrash() {
        var rng = SplitMix64(seed: 2024)
        let names = Array(sample.headers.keys).sorted()
        let alphabet = Array("0123456789abcdefABCDEF+/=-_ \t\u{0}é€S3eg".unicodeScalars).map(String.init)
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
