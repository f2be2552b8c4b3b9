import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// The `tagging` field of a POST Object form: a Tagging document read strictly, checked as S3 checks tags, and
/// sent as the upload's `x-amz-tagging` header.
@Suite struct TaggingDocumentTests {
    static func document(_ tags: [(String, String)], namespace: Bool = false) -> String {
        let xmlns = namespace ? #" xmlns="http://s3.amazonaws.com/doc/2006-03-01/""# : ""
        return "<Tagging\(xmlns)><TagSet>" + tags.map { "<Tag><Key>\($0.0)</Key><Value>\($0.1)</Value></Tag>" }.joined()
            + "</TagSet></Tagging>"
    }

    static func code(_ text: String) -> String? {
        s3ErrorCode { _ = try TaggingDocument.parse(Array(text.utf8)) }
    }

    @Test func readsTagsAndWritesTheHeaderForm() throws {
        // Order kept; XML escapes decoded; the header percent-encodes everything but RFC 3986's unreserved characters.
        let text = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
            + Self.document([("project", "blue sky"), ("cost:center", "a+b=c/d@e"), ("é", ""), ("n", "x &amp; y")], namespace: true)
        // "&" is not a tag character: the decoded value "x & y" is refused as S3 refuses it.
        #expect(Self.code(text) == "InvalidTag")
        let tags = try TaggingDocument.parse(Array((Self.document([("project", "blue sky"), ("cost:center", "a+b=c/d@e"), ("é", ""),
                                                                    ("tab", "1")], namespace: true)).utf8))
        #expect(tags.tags.map(\.key) == ["project", "cost:center", "é", "tab"])
        #expect(tags.tags.map(\.value) == ["blue sky", "a+b=c/d@e", "", "1"])
        #expect(tags.headerValue == "project=blue%20sky&cost%3Acenter=a%2Bb%3Dc%2Fd%40e&%C3%A9=&tab=1")
        // The header form is what a query-string parser reads back.
        let decoded = tags.headerValue.split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (URIEncoding.decode(parts[0])!, URIEncoding.decode(parts[1])!)
        }
        #expect(decoded.map(\.0) == tags.tags.map(\.key) && decoded.map(\.1) == tags.tags.map(\.value))
        #expect(try TaggingDocument.parse(Array("<Tagging><TagSet></TagSet></Tagging>".utf8)).headerValue == "")
        // Whitespace between elements, as pretty-printed documents have it.
        #expect(try TaggingDocument.parse(Array("<Tagging>\n <TagSet>\n  <Tag>\n   <Key>k</Key>\n   <Value>v</Value>\n  </Tag>\n </TagSet>\n</Tagging>".utf8)).tags
                == [.init(key: "k", value: "v")])
    }

    @Test(arguments: [
        "", "not xml", "<Tagging>", "<Tagging></Tagging>", "<Tags><TagSet></TagSet></Tags>",
        "<Tagging><TagSet></TagSet><TagSet></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Key>k</Key><Key>l</Key><Value>v</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value><Other/></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Other><Key>k</Key><Value>v</Value></Other></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Key><b>k</b></Key><Value>v</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet>text<Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet></TagSet></Tagging><Tagging><TagSet></TagSet></Tagging>",
        #"<!DOCTYPE t [<!ENTITY e "x">]><Tagging><TagSet><Tag><Key>&e;</Key><Value>v</Value></Tag></TagSet></Tagging>"#,
    ])
    func malformedDocumentsAreMalformedXML(text: String) {
        #expect(Self.code(text) == "MalformedXML")
    }

    @Test func tagsS3RefusesAreInvalidTag() {
        let eleven = (0..<11).map { ("k\($0)", "v") }
        #expect(Self.code(Self.document(Array(eleven.prefix(10)))) == nil)
        #expect(Self.code(Self.document(eleven)) == "InvalidTag")
        #expect(Self.code(Self.document([("a", "1"), ("a", "2")])) == "InvalidTag")
        #expect(Self.code(Self.document([("", "v")])) == "InvalidTag")
        #expect(Self.code(Self.document([(String(repeating: "k", count: 128), String(repeating: "v", count: 256))])) == nil)
        // Lengths count characters, not bytes.
        #expect(Self.code(Self.document([(String(repeating: "é", count: 128), "v")])) == nil)
        #expect(Self.code(Self.document([(String(repeating: "k", count: 129), "v")])) == "InvalidTag")
        #expect(Self.code(Self.document([("k", String(repeating: "v", count: 257))])) == "InvalidTag")
        #expect(Self.code(Self.document([("aws:createdBy", "v")])) == "InvalidTag")
        // A control character is not even XML.
        #expect(Self.code(Self.document([("a\u{1}b", "v")])) == "MalformedXML")
        for bad in ["a!b", "a*b", "a#b", "a\u{7f}b", "a%b", "a?b"] {
            #expect(Self.code(Self.document([(bad, "v")])) == "InvalidTag", "\(bad)")
            #expect(Self.code(Self.document([("k", bad)])) == "InvalidTag", "\(bad)")
        }
    }

    /// The form's fields become the upload's headers: tagging as x-amz-tagging, refused when malformed or
    /// doubled by an x-amz-tagging field.
    @Test func postObjectFormTaggingField() throws {
        let tagging = Self.document([("source", "browser form")])
        let headers = try S3RequestHandler.objectHeaders([FormField(name: "key", value: "k"), FormField(name: "Content-Type", value: "text/plain"),
                                                          FormField(name: "tagging", value: tagging)])
        #expect(headers["x-amz-tagging"] == "source=browser%20form")
        #expect(headers["Content-Type"] == "text/plain")
        #expect(s3ErrorCode { _ = try S3RequestHandler.objectHeaders([FormField(name: "tagging", value: "<Tagging><TagSet>")]) } == "MalformedXML")
        #expect(s3ErrorCode { _ = try S3RequestHandler.objectHeaders([FormField(name: "tagging", value: Self.document([("a!", "v")]))]) }
                == "InvalidTag")
        #expect(s3ErrorCode {
            _ = try S3RequestHandler.objectHeaders([FormField(name: "tagging", value: tagging), FormField(name: "x-amz-tagging", value: "a=b")])
        } == "InvalidArgument")
        #expect(try S3RequestHandler.objectHeaders([FormField(name: "tagging", value: "<Tagging><TagSet/></Tagging>")])["x-amz-tagging"] == nil)
    }

    /// Seeded mutations of a valid document: never a crash, only S3's two codes, and whatever is accepted is a
    /// tag set S3 accepts whose header form reads back to the same tags.
    @Test func mutatedDocuments() {
        var rng = SplitMix64(seed: 0x7A65)
        let seed = Array(Self.document([("project", "blue sky"), ("a:b", "c/d"), ("k", "")], namespace: true).utf8)
        let alphabet = Array("<>/=&;#x:\"' TagKeyValueSet!é\u{0}".utf8)
        var accepted = 0
        for _ in 0..<3000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: at)
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
                }
            }
            do {
                let tags = try TaggingDocument.parse(bytes)
                accepted += 1
                #expect(throws: Never.self) { try tags.validate() }
                let pairs = tags.headerValue.isEmpty ? [] : tags.headerValue.split(separator: "&").map { pair in
                    pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { URIEncoding.decode($0) ?? "\u{FFFD}" }
                }
                #expect(pairs.map { $0[0] } == tags.tags.map(\.key) && pairs.map { $0[1] } == tags.tags.map(\.value))
            } catch {
                #expect(error.code == "MalformedXML" || error.code == "InvalidTag", "\(error.code)")
            }
        }
        #expect(accepted > 0 && accepted < 3000 / 2)
    }
}
