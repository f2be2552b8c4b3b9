import Shared
import Testing
@testable import Proxy

@Suite struct ObjectAttributesDocumentTests {
    static func request(_ headers: [(String, String)]) throws(S3Error) -> ObjectAttributesRequest {
        try ObjectAttributesRequest.parse(HTTPFields(headers.map { (name: $0.0, value: $0.1) }))
    }

    static func code(_ headers: [(String, String)]) -> String? {
        do {
            _ = try request(headers)
            return nil
        } catch {
            return error.code
        }
    }

    @Test func attributeListsAreParsedStrictly() throws {
        #expect(try Self.request([("x-amz-object-attributes", "ETag,ObjectSize")]).attributes == [.etag, .objectSize])
        // Spaces, another letter case, repeated headers, an empty item.
        let all = try Self.request([("X-Amz-Object-Attributes", " etag , checksum,"), ("x-amz-object-attributes", "ObjectParts,StorageClass,ObjectSize")])
        #expect(all.attributes == Set(ObjectAttributesRequest.Attribute.allCases))
        #expect(all.maxParts == 1000 && all.partNumberMarker == 0)
        #expect(Self.code([]) == "InvalidArgument")
        #expect(Self.code([("x-amz-object-attributes", " , ")]) == "InvalidArgument")
        #expect(Self.code([("x-amz-object-attributes", "ETag,Owner")]) == "InvalidArgument")
        let paged = try Self.request([("x-amz-object-attributes", "ObjectParts"), ("x-amz-max-parts", "2"), ("x-amz-part-number-marker", "3")])
        #expect(paged.maxParts == 2 && paged.partNumberMarker == 3)
        #expect(try Self.request([("x-amz-object-attributes", "ObjectParts"), ("x-amz-max-parts", "5000")]).maxParts == 1000)
        for bad in ["-1", "x", "1.5", ""] {
            #expect(Self.code([("x-amz-object-attributes", "ObjectParts"), ("x-amz-max-parts", bad)]) == "InvalidArgument", "\(bad)")
            #expect(Self.code([("x-amz-object-attributes", "ObjectParts"), ("x-amz-part-number-marker", bad)]) == "InvalidArgument", "\(bad)")
        }
    }

    static func tree(_ attributes: ObjectAttributes, _ request: ObjectAttributesRequest) throws -> XMLTree {
        try XMLTree.parse(attributes.document(for: request))
    }

    @Test func aSinglePartObjectReportsWhatWasAskedAndNoParts() throws {
        let attributes = ObjectAttributes(etag: "0123456789abcdef0123456789abcdef", size: 1234, storageClass: "STANDARD",
                                          checksum: .init(algorithm: .crc32c, base64: "AAAAAA==", type: "FULL_OBJECT"), parts: nil)
        let all = try Self.tree(attributes, ObjectAttributesRequest(attributes: Set(ObjectAttributesRequest.Attribute.allCases)))
        #expect(all.root.name == "GetObjectAttributesResponse")
        #expect(all.root.children.map(\.name) == ["ETag", "Checksum", "StorageClass", "ObjectSize"])
        #expect(all.root.child("ETag")?.text == "0123456789abcdef0123456789abcdef")
        #expect(all.root.child("ObjectSize")?.text == "1234")
        #expect(all.root.child("Checksum")?.child("ChecksumCRC32C")?.text == "AAAAAA==")
        #expect(all.root.child("Checksum")?.child("ChecksumType")?.text == "FULL_OBJECT")
        let some = try Self.tree(attributes, ObjectAttributesRequest(attributes: [.objectSize]))
        #expect(some.root.children.map(\.name) == ["ObjectSize"])
        var unchecked = attributes
        unchecked.checksum = nil
        #expect(try Self.tree(unchecked, ObjectAttributesRequest(attributes: [.checksum, .etag])).root.children.map(\.name) == ["ETag"])
    }

    @Test func partsArePagedByPosition() throws {
        let attributes = ObjectAttributes(etag: "abc-3", size: 30, storageClass: "STANDARD_IA", checksum: nil,
                                          parts: .init(count: 3, sizes: [12, 12, 6]))
        func page(max: Int, marker: Int) throws -> XMLTree.Element {
            try #require(try Self.tree(attributes, ObjectAttributesRequest(attributes: [.objectParts], maxParts: max, partNumberMarker: marker))
                .root.child("ObjectParts"))
        }
        let first = try page(max: 2, marker: 0)
        #expect(first.child("PartsCount")?.text == "3" && first.child("IsTruncated")?.text == "true")
        #expect(first.child("NextPartNumberMarker")?.text == "2" && first.child("MaxParts")?.text == "2")
        #expect(first.children.filter { $0.name == "Part" }.map { [$0.child("PartNumber")!.text, $0.child("Size")!.text] }
            == [["1", "12"], ["2", "12"]])
        let second = try page(max: 2, marker: 2)
        #expect(second.child("IsTruncated")?.text == "false" && second.child("NextPartNumberMarker") == nil)
        #expect(second.children.filter { $0.name == "Part" }.map { $0.child("PartNumber")!.text } == ["3"])
        #expect(try page(max: 1000, marker: 7).children.filter { $0.name == "Part" }.isEmpty)
        // A plain multipart object: only the count its ETag gives.
        let plain = ObjectAttributes(etag: "abc-4", size: 40, storageClass: "STANDARD", checksum: nil, parts: .init(count: 4, sizes: nil))
        let counted = try #require(try Self.tree(plain, ObjectAttributesRequest(attributes: [.objectParts, .storageClass])).root.child("ObjectParts"))
        #expect(counted.children.map(\.name) == ["PartsCount"] && counted.text == "" && counted.child("PartsCount")?.text == "4")
    }
}
