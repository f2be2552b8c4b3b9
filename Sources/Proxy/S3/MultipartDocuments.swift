/// The XML documents of S3's multipart upload operations that an encrypting gateway reads or rewrites:
/// the client's CompleteMultipartUpload request, the backend's InitiateMultipartUploadResult, ListPartsResult
/// and CompleteMultipartUploadResult. Strict and bounded (`XMLTree`); every failure is an S3 error.
enum MultipartDocuments {
    /// Largest CompleteMultipartUpload body accepted: 10 000 parts with checksums take about 2 MiB.
    static let maxCompleteBodySize = 4 << 20
    static let namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

    /// A part the client lists in CompleteMultipartUpload.
    struct CompletedPart: Equatable, Sendable {
        var partNumber: Int
        /// As the client sent it (quoted or not); the gateway completes with the backend's ETag of the part.
        var etag: String
    }

    /// Parses the client's CompleteMultipartUpload body. Anything but `Part` elements with one `PartNumber`
    /// (1…10000) and one `ETag`, plus optional `Checksum*` elements, is `MalformedXML`; part numbers that do
    /// not increase are `InvalidPartOrder`; no part at all is `MalformedXML`, as S3 answers.
    static func parseCompleteRequest(_ body: [UInt8]) throws(S3Error) -> [CompletedPart] {
        let tree = try XMLTree.clientDocument(body, root: "CompleteMultipartUpload")
        var parts: [CompletedPart] = []
        for element in tree.root.children {
            guard element.name == "Part" else { throw S3Error.malformedXML("unexpected element \(element.name.prefix(64))") }
            var number: Int?
            var etag: String?
            for field in element.children {
                switch field.name {
                case "PartNumber":
                    guard number == nil, let n = Self.decimal(field.text), (1...FormatV1.maxPartNumber).contains(n) else {
                        throw S3Error.malformedXML("PartNumber \(field.text.prefix(16)) is not a number from 1 to \(FormatV1.maxPartNumber)")
                    }
                    number = n
                case "ETag":
                    guard etag == nil, field.children.isEmpty else { throw S3Error.malformedXML("a Part has two ETags") }
                    etag = field.text
                case let name where name.hasPrefix("Checksum"):
                    // Checksums of the plaintext parts; the backend stores ciphertext and never sees them.
                    continue
                default:
                    throw S3Error.malformedXML("unexpected element \(field.name.prefix(64)) in a Part")
                }
            }
            guard let number, let etag else { throw S3Error.malformedXML("a Part lacks its PartNumber or ETag") }
            if let previous = parts.last, number <= previous.partNumber {
                throw S3Error.invalidPartOrder()
            }
            parts.append(CompletedPart(partNumber: number, etag: etag))
        }
        guard !parts.isEmpty else { throw S3Error.malformedXML("the request lists no part") }
        return parts
    }

    /// The CompleteMultipartUpload body for the backend: every part with the backend's own ETag, and the CRC32 the
    /// backend verified for it when the upload was created with that algorithm (S3 then wants every part's).
    static func completeRequest(_ parts: [(partNumber: Int, etag: String)], checksumsCRC32: [String?] = []) -> [UInt8] {
        var root = XMLTree.Element(name: "CompleteMultipartUpload")
        root.attributes = [(name: "xmlns", value: namespace)]
        root.children = parts.enumerated().map { index, part in
            var element = XMLTree.Element(name: "Part", children: [XMLTree.Element(name: "PartNumber", text: String(part.partNumber)),
                                                                   XMLTree.Element(name: "ETag", text: part.etag)])
            if index < checksumsCRC32.count, let checksum = checksumsCRC32[index] {
                element.children.append(XMLTree.Element(name: "ChecksumCRC32", text: checksum))
            }
            return element
        }
        return XMLTree(root: root).bytes
    }

    /// A backend answer the gateway must rewrite but cannot read is an internal error (logged), never relayed.
    /// The root is renamed to S3's `name` (moto answers ListParts with a `ListPartsResponse` root).
    static func parseBackend(_ body: [UInt8], root name: String, alternatives: Set<String> = []) throws(S3Error) -> XMLTree {
        var tree: XMLTree
        do {
            tree = try XMLTree.parse(body)
        } catch {
            throw S3Error.internalError().withLog("the backend's \(name) is unreadable: \(error.message)")
        }
        guard tree.root.name == name || alternatives.contains(tree.root.name) else {
            throw S3Error.internalError().withLog("the backend answered \(tree.root.name.prefix(64)) instead of \(name)")
        }
        tree.root.name = name
        return tree
    }

    static let listPartsRootAlternatives: Set<String> = ["ListPartsResponse"]

    /// One page of the backend's ListPartsResult.
    struct PartsPage: Equatable, Sendable {
        struct Part: Equatable, Sendable {
            var partNumber: Int
            var etag: String
            var size: Int
            /// The part's `ChecksumCRC32` (of what the backend stored), when the backend keeps one.
            var checksumCRC32: String? = nil
        }

        var parts: [Part] = []
        var isTruncated = false
        var nextPartNumberMarker: Int?
    }

    static func parsePartsPage(_ tree: XMLTree) throws(S3Error) -> PartsPage {
        var page = PartsPage()
        for element in tree.root.children {
            switch element.name {
            case "IsTruncated":
                page.isTruncated = element.text == "true"
            case "NextPartNumberMarker":
                page.nextPartNumberMarker = decimal(element.text)
            case "Part":
                guard let number = element.child("PartNumber").flatMap({ decimal($0.text) }),
                      let size = element.child("Size").flatMap({ decimal($0.text) }),
                      let etag = element.child("ETag")?.text else {
                    throw S3Error.internalError().withLog("the backend's ListPartsResult has a Part without PartNumber, Size or ETag")
                }
                page.parts.append(.init(partNumber: number, etag: etag, size: size, checksumCRC32: element.child("ChecksumCRC32")?.text))
            default:
                continue
            }
        }
        if page.isTruncated && page.nextPartNumberMarker == nil {
            throw S3Error.internalError().withLog("the backend's ListPartsResult is truncated without NextPartNumberMarker")
        }
        return page
    }

    /// Digits only, at most 18 (no sign, no spaces).
    static func decimal(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return bytes.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }
}

extension S3Error {
    static func malformedXML(_ detail: String) -> S3Error {
        S3Error(code: "MalformedXML", message: "The XML you provided was not well-formed or did not validate against our published schema.",
                status: 400).withLog(detail)
    }
    static func invalidPart(_ message: String = "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.") -> S3Error {
        S3Error(code: "InvalidPart", message: message, status: 400)
    }
    static func invalidPartOrder() -> S3Error {
        S3Error(code: "InvalidPartOrder", message: "The list of parts was not in ascending order. Parts must be ordered by part number.", status: 400)
    }
    static func noSuchUpload(_ message: String = "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.") -> S3Error {
        S3Error(code: "NoSuchUpload", message: message, status: 404)
    }
}
