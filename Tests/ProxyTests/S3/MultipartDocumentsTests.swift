import Foundation
import Testing
@testable import Proxy
@testable import Shared

@Suite struct MultipartDocumentsTests {
    private func code(_ text: String) -> String? {
        do {
            _ = try MultipartDocuments.parseCompleteRequest(Array(text.utf8))
            return nil
        } catch {
            return error.code
        }
    }

    @Test func readsWhatClientsSend() throws {
        // boto3 (quoted ETags, namespace, checksums), minio-go (unquoted ETags), whitespace between elements.
        let boto = #"<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#
            + #"<Part><ETag>"aaa"</ETag><PartNumber>1</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"#
            + "\n  <Part><PartNumber>3</PartNumber><ETag>&quot;bbb&quot;</ETag></Part></CompleteMultipartUpload>"
        #expect(try MultipartDocuments.parseCompleteRequest(Array(boto.utf8))
                == [.init(partNumber: 1, etag: "\"aaa\""), .init(partNumber: 3, etag: "\"bbb\"")])
        let minio = "<CompleteMultipartUpload><Part><PartNumber>10000</PartNumber><ETag>ccc</ETag></Part></CompleteMultipartUpload>"
        #expect(try MultipartDocuments.parseCompleteRequest(Array(minio.utf8)) == [.init(partNumber: 10000, etag: "ccc")])
    }

    @Test(arguments: [
        ("", "MalformedXML"), ("<CompleteMultipartUpload/>", "MalformedXML"), ("<Other></Other>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag><Size>1</Size></Part></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Foo/></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload>text<Part/></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>x</ETag></Part><Part><PartNumber>1</PartNumber><ETag>y</ETag></Part></CompleteMultipartUpload>", "InvalidPartOrder"),
        ("<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>x</ETag></Part><Part><PartNumber>2</PartNumber><ETag>y</ETag></Part></CompleteMultipartUpload>", "InvalidPartOrder"),
        ("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&e;</ETag></Part></CompleteMultipartUpload>", "MalformedXML"),
        ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload><Extra/>", "MalformedXML"),
    ])
    func refusesWhatS3Refuses(_ text: String, _ expected: String) {
        #expect(code(text) == expected, "\(text)")
    }

    @Test func boundsAndFuzz() {
        // Deep nesting and huge texts are refused without a crash.
        let deep = String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)
        #expect(code(deep) == "MalformedXML")
        let long = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>" + String(repeating: "x", count: 10_000)
            + "</ETag></Part></CompleteMultipartUpload>"
        #expect(code(long) == "MalformedXML")
        let base = Array(("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>"
            + "<Part><PartNumber>2</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>").utf8)
        var rng = SplitMix64(seed: 77)
        for _ in 0..<3000 {
            var doc = base
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<doc.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: doc[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: doc.remove(at: i)
                default: doc.insert(contentsOf: Array("<Part>".utf8), at: i)
                }
            }
            if let parts = try? MultipartDocuments.parseCompleteRequest(doc) {
                // Whatever parses is a list of increasing part numbers in range.
                #expect(!parts.isEmpty && zip(parts, parts.dropFirst()).allSatisfy { $0.partNumber < $1.partNumber })
                #expect(parts.allSatisfy { (1...10_000).contains($0.partNumber) })
            }
        }
    }

    @Test func rewritesBackendDocuments() throws {
        // The request the gateway sends, read back.
        let sent = MultipartDocuments.completeRequest([(1, "\"e1\""), (2, "\"e&2\"")])
        #expect(try MultipartDocuments.parseCompleteRequest(sent) == [.init(partNumber: 1, etag: "\"e1\""), .init(partNumber: 2, etag: "\"e&2\"")])
        // moto's ListParts root, and a page that says it is truncated.
        let moto = "<ListPartsResponse><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>"
            + "<Part><PartNumber>1</PartNumber><ETag>&quot;x&quot;</ETag><Size>52</Size></Part>"
            + "<Part><PartNumber>2</PartNumber><ETag>\"y\"</ETag><Size>100</Size></Part></ListPartsResponse>"
        let tree = try MultipartDocuments.parseBackend(Array(moto.utf8), root: "ListPartsResult", alternatives: MultipartDocuments.listPartsRootAlternatives)
        #expect(tree.root.name == "ListPartsResult")
        let page = try MultipartDocuments.parsePartsPage(tree)
        #expect(page.isTruncated && page.nextPartNumberMarker == 2)
        #expect(page.parts == [.init(partNumber: 1, etag: "\"x\"", size: 52), .init(partNumber: 2, etag: "\"y\"", size: 100)])
        #expect(throws: S3Error.self) { try MultipartDocuments.parseBackend(Array("<Error/>".utf8), root: "ListPartsResult") }
        #expect(EncryptedObjectHandler.multipartETag(["\"0cc175b9c0f1b6a831c399e269772661\"", "92eb5ffee6ae2fec3ad71c777531578f"])
                == "\"\(Encoding.hex(Digest.hash(.md5, Encoding.fromHex("0cc175b9c0f1b6a831c399e26977266192eb5ffee6ae2fec3ad71c777531578f")!)))-2\"")
        #expect(ListingRewriter.partCount("&quot;abc-12&quot;") == 12 && ListingRewriter.partCount("\"abc\"") == nil)
        #expect(ListingRewriter.partCount("\"abc-0\"") == nil && ListingRewriter.partCount("\"abc-10001\"") == nil)
    }

    /// An upload created with a CRC32 (BACKEND_UPLOAD_CHECKSUM): AWS lists each part's, and the Complete document
    /// must name it for every part; parts without one (the setting was off) are listed without.
    @Test func partChecksumsGoFromListPartsIntoTheCompleteDocument() throws {
        let aws = "<ListPartsResult><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
            + "<Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag><Size>52</Size><ChecksumCRC32>AAAAAQ==</ChecksumCRC32></Part>"
            + "<Part><PartNumber>2</PartNumber><ETag>\"b\"</ETag><Size>9</Size></Part></ListPartsResult>"
        let page = try MultipartDocuments.parsePartsPage(try MultipartDocuments.parseBackend(Array(aws.utf8), root: "ListPartsResult"))
        #expect(page.parts.map(\.checksumCRC32) == ["AAAAAQ==", nil])
        let sent = try XMLTree.parse(MultipartDocuments.completeRequest(page.parts.map { ($0.partNumber, $0.etag) },
                                                                        checksumsCRC32: page.parts.map(\.checksumCRC32)))
        let listed = sent.root.children.filter { $0.name == "Part" }
        #expect(listed.map { $0.child("ChecksumCRC32")?.text } == ["AAAAAQ==", nil])
        #expect(listed.map { $0.child("ETag")?.text } == ["\"a\"", "\"b\""])
    }
}
