import Shared
import Testing
@testable import Proxy

/// Seeded mutation fuzzing of the request-target parsers: no crash, strict errors, round-trip invariants.
@Suite struct S3ParsingFuzzTests {
    static let seeds = [
        "/bucket/dir/a%20b+c%C3%A9.bin", "/bucket/", "/", "/my.bucket/x//y/../z", "/bucket/%25%2F%3F",
        "/b-1/k?list-type=2&prefix=a%2Fb&delimiter=%2F", "/bucket/key?uploadId=abc&partNumber=3",
    ]
    static let alphabet = Array("/%?&=+.-_~aZ09%2F%zz%C3\u{0} é日".utf8)

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...5, using: &rng) {
            if bytes.isEmpty { bytes = [UInt8(ascii: "/")] }
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng))
            case 2: bytes.insert(alphabet.randomElement(using: &rng)!, at: Int.random(in: 0...bytes.count, using: &rng))
            default:
                let a = Int.random(in: 0..<bytes.count, using: &rng)
                let b = Int.random(in: a..<min(bytes.count, a + 12), using: &rng)
                bytes.insert(contentsOf: bytes[a..<b], at: Int.random(in: 0...bytes.count, using: &rng))
            }
        }
        return bytes
    }

    @Test func requestTargetMutations() {
        var rng = SplitMix64(seed: 0xA11CE)
        var resolved = 0
        for i in 0..<20_000 {
            let target = String(decoding: Self.mutate(Array(Self.seeds[i % Self.seeds.count].utf8), &rng), as: UTF8.self)
            let head = HTTPRequestHead(method: "GET", target: target, headers: [:])
            let host = i % 3 == 0 ? "bucket.s3.example.com" : "localhost"
            do {
                let address = try S3RequestAddress.resolve(rawPath: head.rawPath, host: host, baseDomains: ["s3.example.com"])
                resolved += 1
                if let bucket = address.bucket { #expect(S3RequestAddress.isValidBucketName(bucket)) }
                if let key = address.key { #expect(!key.isEmpty && key.utf8.count <= S3RequestAddress.maxKeyBytes) }
                // The backend path we would send resolves back to the same bucket and key.
                if address.bucket != nil {
                    let again = try S3RequestAddress.resolve(rawPath: BackendEndpoint.path(bucket: address.bucket, key: address.key),
                                                             host: "backend", baseDomains: [])
                    #expect(again.bucket == address.bucket && again.key == address.key)
                }
            } catch {
                #expect(["InvalidURI", "InvalidBucketName", "KeyTooLongError"].contains(error.code))
            }
            // Canonical forms are total on well-formed input and encode-once idempotent.
            if let uri = SigV4.canonicalURI(rawPath: head.rawPath) {
                #expect(SigV4.canonicalURI(rawPath: uri) == uri)
                #expect(uri.utf8.allSatisfy { URIEncoding.isUnreserved($0) || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "%") })
            }
            if let query = QueryString.parse(head.rawQuery) {
                let canonical = QueryString.canonical(query)
                #expect(QueryString.parse(canonical).map(QueryString.canonical) == canonical)
            }
        }
        #expect(resolved > 1000)
    }

    @Test func dateParsersRejectMutations() {
        var rng = SplitMix64(seed: 0xDA7E)
        for _ in 0..<20_000 {
            let amz = String(decoding: Self.mutate(Array("20250101T120000Z".utf8), &rng), as: UTF8.self)
            if let t = SigV4Time.parseAmzDate(amz) { #expect(SigV4Time.formatAmzDate(t) == amz) }
            let http = String(decoding: Self.mutate(Array("Wed, 01 Jan 2025 12:00:00 GMT".utf8), &rng), as: UTF8.self)
            _ = SigV4Time.parseHTTPDate(http)
        }
    }
}
