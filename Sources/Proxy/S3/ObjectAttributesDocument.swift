import Foundation
import Shared

/// What a GetObjectAttributes request asks for: the `x-amz-object-attributes` list and the page of parts
/// (`x-amz-max-parts`, `x-amz-part-number-marker`). Parsed strictly: an unknown attribute is refused as S3 refuses it.
struct ObjectAttributesRequest: Sendable, Equatable {
    enum Attribute: String, CaseIterable, Sendable {
        case etag = "ETag"
        case checksum = "Checksum"
        case objectParts = "ObjectParts"
        case storageClass = "StorageClass"
        case objectSize = "ObjectSize"
    }

    static let defaultMaxParts = 1000

    var attributes: Set<Attribute>
    var maxParts = ObjectAttributesRequest.defaultMaxParts
    var partNumberMarker = 0

    init(attributes: Set<Attribute>, maxParts: Int = ObjectAttributesRequest.defaultMaxParts, partNumberMarker: Int = 0) {
        self.attributes = attributes
        self.maxParts = maxParts
        self.partNumberMarker = partNumberMarker
    }

    static func parse(_ headers: HTTPFields) throws(S3Error) -> ObjectAttributesRequest {
        // SDKs send the list as one comma-separated header; repeated headers are joined the same way.
        let listed = headers.entries.filter { $0.name.caseInsensitiveEquals("x-amz-object-attributes") }.map(\.value)
        var attributes: Set<Attribute> = []
        for name in listed.joined(separator: ",").split(separator: ",", omittingEmptySubsequences: true) {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            guard let attribute = Attribute.allCases.first(where: { $0.rawValue.caseInsensitiveEquals(trimmed) }) else {
                throw S3Error.invalidArgument("Invalid attribute name specified.")
            }
            attributes.insert(attribute)
        }
        guard !attributes.isEmpty else {
            throw S3Error.invalidArgument("The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty")
        }
        var request = ObjectAttributesRequest(attributes: attributes)
        if let text = headers["x-amz-max-parts"] {
            guard let value = MultipartDocuments.decimal(text) else {
                throw S3Error.invalidArgument("Provided max-parts not an integer or within integer range")
            }
            request.maxParts = min(value, defaultMaxParts)
        }
        if let text = headers["x-amz-part-number-marker"] {
            guard let value = MultipartDocuments.decimal(text) else {
                throw S3Error.invalidArgument("Provided part-number-marker not an integer or within integer range")
            }
            request.partNumberMarker = value
        }
        return request
    }
}

/// An object's attributes as its client sees them, and the GetObjectAttributes document that reports them: the
/// plaintext size, the ETag clients see (S3 writes it without quotes here), the recorded checksum of the
/// plaintext, and for a multipart object its parts.
struct ObjectAttributes: Sendable, Equatable {
    struct Checksum: Sendable, Equatable {
        var algorithm: ChecksumAlgorithm
        var base64: String
        /// `FULL_OBJECT` or `COMPOSITE`; nil when the backend did not say (a plain object).
        var type: String?
    }

    struct Parts: Sendable, Equatable {
        var count: Int
        /// Plaintext size of each part, by position (1…count); nil when not known (a plain multipart object: the
        /// gateway learns only the count, from the ETag).
        var sizes: [Int]?
    }

    /// Without quotes.
    var etag: String
    var size: Int
    var storageClass: String
    var checksum: Checksum?
    /// Nil for a single-part object, which has no `ObjectParts`.
    var parts: Parts?

    /// The document answering `request`. Parts are numbered by position, as `?partNumber=` reads them.
    func document(for request: ObjectAttributesRequest) -> [UInt8] {
        var root = XMLTree.Element(name: "GetObjectAttributesResponse")
        root.attributes = [(name: "xmlns", value: MultipartDocuments.namespace)]
        let wants = request.attributes
        if wants.contains(.etag) { root.children.append(.init(name: "ETag", text: etag)) }
        if wants.contains(.checksum), let checksum {
            var element = XMLTree.Element(name: "Checksum", children: [.init(name: "Checksum" + checksum.algorithm.rawValue, text: checksum.base64)])
            if let type = checksum.type { element.children.append(.init(name: "ChecksumType", text: type)) }
            root.children.append(element)
        }
        if wants.contains(.objectParts), let parts { root.children.append(partsElement(parts, request: request)) }
        if wants.contains(.storageClass) { root.children.append(.init(name: "StorageClass", text: storageClass)) }
        if wants.contains(.objectSize) { root.children.append(.init(name: "ObjectSize", text: String(size))) }
        return XMLTree(root: root).bytes
    }

    private func partsElement(_ parts: Parts, request: ObjectAttributesRequest) -> XMLTree.Element {
        var element = XMLTree.Element(name: "ObjectParts", children: [.init(name: "PartsCount", text: String(parts.count))])
        guard let sizes = parts.sizes else { return element }
        let first = min(request.partNumberMarker, sizes.count)
        let last = min(first + request.maxParts, sizes.count)
        let truncated = last < sizes.count
        element.children.append(.init(name: "PartNumberMarker", text: String(request.partNumberMarker)))
        if truncated { element.children.append(.init(name: "NextPartNumberMarker", text: String(last))) }
        element.children.append(.init(name: "MaxParts", text: String(request.maxParts)))
        element.children.append(.init(name: "IsTruncated", text: truncated ? "true" : "false"))
        for index in first..<last {
            element.children.append(.init(name: "Part", children: [.init(name: "PartNumber", text: String(index + 1)),
                                                                   .init(name: "Size", text: String(sizes[index]))]))
        }
        return element
    }
}
