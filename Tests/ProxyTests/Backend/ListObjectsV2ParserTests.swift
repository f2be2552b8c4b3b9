import Foundation
import Testing
@testable import Proxy

@Suite struct ListObjectsV2ParserTests {
    static let page = """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>
        <KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
        <Contents><Key>dir/a%20b%2Bc%C3%A9.bin</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
        <ETag>&quot;0123&quot;</ETag><Size>65570</Size><StorageClass>STANDARD</StorageClass></Contents>
        <Contents><Key>z+y</Key><ETag>"9-2"</ETag><Size>0</Size></Contents>
        <NextContinuationToken>tok/+=</NextContinuationToken></ListBucketResult>
        """

    @Test func parsesEntriesAndDecodesURLEncodedKeys() throws {
        let page = try ListObjectsV2Parser.parse(Array(Self.page.utf8))
        #expect(page.entries == [
            .init(key: "dir/a b+cé.bin", size: 65570, etag: "\"0123\""),
            .init(key: "z y", size: 0, etag: "\"9-2\""),
        ])
        #expect(page.isTruncated)
        #expect(page.nextContinuationToken == "tok/+=")
    }

    @Test func keysAreLiteralWithoutEncodingType() throws {
        let xml = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a%20+b</Key><Size>1</Size></Contents></ListBucketResult>"
        let page = try ListObjectsV2Parser.parse(Array(xml.utf8))
        #expect(page.entries.map(\.key) == ["a%20+b"])
        #expect(!page.isTruncated)
    }

    @Test(arguments: [
        "",
        "<Error><Code>NoSuchBucket</Code></Error>",
        "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        "<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
        "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>",
        "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>%zz</Key><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><a><b><c><d><e><f><g><h>x</h></g></f></e></d></c></b></a></ListBucketResult>",
    ])
    func rejectsMalformedListings(_ xml: String) {
        #expect(throws: ListingParseError.self) { try ListObjectsV2Parser.parse(Array(xml.utf8)) }
    }

    @Test func rejectsOverlongText() {
        let xml = "<ListBucketResult><Contents><Key>\(String(repeating: "k", count: 9000))</Key><Size>1</Size></Contents></ListBucketResult>"
        #expect(throws: ListingParseError.self) { try ListObjectsV2Parser.parse(Array(xml.utf8)) }
    }

    /// Seeded mutations: never crashes; whatever parses has non-empty keys and sizes ≥ 0, and a
    /// truncated page always carries its continuation token.
    @Test func mutationFuzz() {
        var rng = SplitMix64(seed: 0x115_7002)
        let seed = Array(Self.page.utf8)
        let alphabet = Array("<>/&;\"'%=+ aZ09".utf8)
        var parsed = 0
        for _ in 0..<3000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                guard !bytes.isEmpty else { break }
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng))
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: Int.random(in: 0...bytes.count, using: &rng))
                }
            }
            guard let page = try? ListObjectsV2Parser.parse(bytes) else { continue }
            parsed += 1
            #expect(page.entries.allSatisfy { !$0.key.isEmpty && $0.size >= 0 })
            #expect(!page.isTruncated || page.nextContinuationToken != nil)
        }
        #expect(parsed > 0)
    }

    @Test func errorDocument() {
        let doc = S3ErrorDocument.parse(Array("<?xml version=\"1.0\"?><Error><Code>PreconditionFailed</Code><Message>At least one</Message></Error>".utf8))
        #expect(doc == S3ErrorDocument(code: "PreconditionFailed", message: "At least one"))
        #expect(S3ErrorDocument.parse(Array("<CopyObjectResult><ETag>x</ETag></CopyObjectResult>".utf8)) == nil)
        #expect(S3ErrorDocument.parse([]) == nil)
    }

    @Test func copySourceIsPercentEncoded() {
        #expect(BackendClient.copySource(bucket: "b", key: "dir/a b+é?") == "/b/dir/a%20b%2B%C3%A9%3F")
    }
}
