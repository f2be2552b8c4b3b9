import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Shared

/// A backend request that did not succeed: a transport failure (status 0) or an S3 error answer.
struct BackendOperationError: Error, CustomStringConvertible {
    /// HTTP status, 0 when no answer arrived.
    var status: Int
    /// S3 error code (`NoSuchKey`, `PreconditionFailed`, ...) or a transport error kind.
    var code: String
    var message: String

    var description: String {
        status == 0 ? "backend unreachable: \(message)" : "backend answered \(status) \(code): \(message)"
    }

    static func from(_ response: HTTPClientResponse, operation: String) -> BackendOperationError {
        let parsed = S3ErrorDocument.parse(response.body)
        let code = parsed?.code ?? (response.status == 404 ? "NotFound" : "HTTP\(response.status)")
        let message = parsed?.message ?? "\(operation) failed"
        return BackendOperationError(status: response.status, code: code, message: message)
    }

}

/// A download by an offline command: no client response exists, and the handler's own errors are kept.
private final class OfflineDownload: BackendResponseHandler {
    let inner: HTTPResponseHandler
    private(set) var thrown: (any Error)?
    var clientResponseStarted: Bool { false }
    var status: Int { 0 }

    init(inner: HTTPResponseHandler) { self.inner = inner }

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        do { try inner.responseHead(status: status, headers: headers) } catch { thrown = error; throw error }
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        do { try inner.responseBody(bytes) } catch { thrown = error; throw error }
    }
}

/// One page of a ListObjectsV2 answer.
struct ListObjectsPage: Equatable {
    struct Entry: Equatable {
        var key: String
        var size: Int
        var etag: String
    }

    var entries: [Entry] = []
    var isTruncated = false
    var nextContinuationToken: String?
}

/// Small request helpers on top of `BackendClient` for the offline commands (rotate, decrypt):
/// signed requests with bounded buffered answers, and one streaming GET.
extension BackendClient {
    /// Largest buffered answer: listings of 1000 keys with long names stay well below it.
    static let maxBufferedAnswer = 16 << 20

    /// Sends one signed request whose answer is buffered (at most `maxBufferedAnswer` bytes).
    func send(method: String, bucket: String?, key: String?, query: [QueryParameter] = [],
              headers: [(name: String, value: String)] = []) throws(BackendOperationError) -> HTTPClientResponse {
        do {
            return try fetch(BackendRequest(method: method, bucket: bucket, key: key, query: query, headers: HTTPFields(headers), signing: .gateway),
                             maxBodySize: Self.maxBufferedAnswer)
        } catch {
            throw BackendOperationError(status: 0, code: "Transport", message: error.description)
        }
    }

    /// HEAD of an object; non-2xx answers are errors (`status` 404 for a missing object).
    func headObject(bucket: String, key: String) throws(BackendOperationError) -> HTTPClientResponse {
        let response = try send(method: "HEAD", bucket: bucket, key: key)
        guard (200..<300).contains(response.status) else {
            throw BackendOperationError(status: response.status, code: response.status == 404 ? "NoSuchKey" : "HTTP\(response.status)",
                                        message: "HEAD \(bucket)/\(key) failed")
        }
        return response
    }

    /// Streams a GET of an object into `handler` (which sees the status and may throw to abort): rethrows
    /// what the handler threw, or a `BackendFailure` when the backend failed.
    func getObject(bucket: String, key: String, handler: HTTPResponseHandler) throws {
        let download = OfflineDownload(inner: handler)
        do {
            try exchange(BackendRequest(method: "GET", bucket: bucket, key: key, signing: .gateway), into: download)
        } catch {
            if let thrown = download.thrown { throw thrown }
            throw error
        }
    }

    /// Server-side copy of an object onto itself with `x-amz-metadata-directive: REPLACE` and the given
    /// headers (which must carry every piece of metadata to keep). `ifMatch` is the ETag the caller
    /// read: a concurrent overwrite makes the copy fail with 412 instead of being clobbered.
    func copyObjectOntoItself(bucket: String, key: String, headers: [(name: String, value: String)],
                              ifMatch: String) throws(BackendOperationError) {
        let response = try send(method: "PUT", bucket: bucket, key: key,
                                headers: Self.selfCopyHeaders(bucket: bucket, key: key, headers: headers, ifMatch: ifMatch))
        // S3 may answer 200 and still report an error in the body of a copy.
        if !(200..<300).contains(response.status) || S3ErrorDocument.parse(response.body) != nil {
            throw .from(response, operation: "CopyObject \(bucket)/\(key)")
        }
    }

    /// The request headers of `copyObjectOntoItself`. The condition goes out under both names:
    /// `x-amz-copy-source-if-match` (AWS) and `x-amz-copy-if-match`, the only one Ceph RGW (Pacific)
    /// checks; each server ignores the name it does not know.
    static func selfCopyHeaders(bucket: String, key: String, headers: [(name: String, value: String)],
                                ifMatch: String) -> [(name: String, value: String)] {
        headers + [(name: "x-amz-copy-source", value: copySource(bucket: bucket, key: key)),
                   (name: "x-amz-copy-source-if-match", value: ifMatch),
                   (name: "x-amz-copy-if-match", value: ifMatch),
                   (name: "x-amz-metadata-directive", value: "REPLACE")]
    }

    /// `x-amz-copy-source` value: `/bucket/key`, percent-encoded like a path.
    static func copySource(bucket: String, key: String) -> String {
        "/" + URIEncoding.encode(bucket) + "/" + URIEncoding.encode(key, keepSlash: true)
    }

    /// One ListObjectsV2 page (keys URL-encoded on the wire so any key survives XML).
    func listObjectsV2(bucket: String, prefix: String?, startAfter: String?, continuationToken: String?,
                       maxKeys: Int = 1000) throws(BackendOperationError) -> ListObjectsPage {
        var query = [QueryParameter(name: "list-type", value: "2", hasValue: true),
                     QueryParameter(name: "encoding-type", value: "url", hasValue: true),
                     QueryParameter(name: "max-keys", value: String(maxKeys), hasValue: true)]
        if let prefix, !prefix.isEmpty { query.append(QueryParameter(name: "prefix", value: prefix, hasValue: true)) }
        if let startAfter, !startAfter.isEmpty { query.append(QueryParameter(name: "start-after", value: startAfter, hasValue: true)) }
        if let continuationToken { query.append(QueryParameter(name: "continuation-token", value: continuationToken, hasValue: true)) }
        let response = try send(method: "GET", bucket: bucket, key: nil, query: query)
        guard (200..<300).contains(response.status) else { throw .from(response, operation: "ListObjectsV2 \(bucket)") }
        do {
            return try ListObjectsV2Parser.parse(response.body)
        } catch {
            throw BackendOperationError(status: response.status, code: "MalformedListing", message: error.message)
        }
    }
}

/// A listing document that cannot be used.
struct ListingParseError: Error, Equatable {
    var message: String
}

/// Strict, bounded reader of a ListObjectsV2 XML answer, on Foundation's XMLParser (no DTDs or
/// external entities are resolved). Only the fields the rotate command needs are kept.
enum ListObjectsV2Parser {
    static let maxEntries = 10_000
    static let maxDepth = 8
    static let maxTextLength = 8192

    static func parse(_ body: [UInt8]) throws(ListingParseError) -> ListObjectsPage {
        // FoundationXML traps on element names that are not valid UTF-8 (found by the mutation test),
        // so a document that is not UTF-8 never reaches it.
        guard isValidUTF8(body) else { throw ListingParseError(message: "listing is not valid UTF-8") }
        let delegate = Delegate()
        let parser = XMLParser(data: Data(body))
        parser.shouldResolveExternalEntities = false
        parser.delegate = delegate
        let ok = parser.parse()
        if let failure = delegate.failure { throw ListingParseError(message: failure) }
        guard ok else {
            throw ListingParseError(message: "listing is not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "unknown error")")
        }
        guard delegate.sawRoot, delegate.rootClosed else { throw ListingParseError(message: "listing has no complete ListBucketResult element") }
        var page = ListObjectsPage()
        page.isTruncated = delegate.isTruncated
        page.nextContinuationToken = delegate.nextToken
        for raw in delegate.entries {
            var entry = raw
            if delegate.urlEncoded {
                guard let decoded = URIEncoding.decode(entry.key.replacingOccurrences(of: "+", with: "%20")) else {
                    throw ListingParseError(message: "listing key is not valid URL encoding")
                }
                entry.key = decoded
            }
            page.entries.append(entry)
        }
        if page.isTruncated && page.nextContinuationToken == nil {
            throw ListingParseError(message: "truncated listing without NextContinuationToken")
        }
        return page
    }

    private final class Delegate: NSObject, XMLParserDelegate {
        var path: [String] = []
        var text = ""
        var entries: [ListObjectsPage.Entry] = []
        var current: (key: String?, size: Int?, etag: String?)?
        var isTruncated = false
        var nextToken: String?
        var urlEncoded = false
        var sawRoot = false
        var rootClosed = false
        var failure: String?

        func fail(_ parser: XMLParser, _ message: String) {
            if failure == nil { failure = message }
            parser.abortParsing()
        }

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            guard failure == nil else { return }
            if path.isEmpty {
                guard name == "ListBucketResult" else { return fail(parser, "root element is \(name.prefix(64)), not ListBucketResult") }
                sawRoot = true
            }
            path.append(name)
            guard path.count <= ListObjectsV2Parser.maxDepth else { return fail(parser, "listing nests too deep") }
            text = ""
            if path == ["ListBucketResult", "Contents"] {
                guard entries.count < ListObjectsV2Parser.maxEntries else { return fail(parser, "listing has too many entries") }
                current = (nil, nil, nil)
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard failure == nil else { return }
            text += string
            if text.utf8.count > ListObjectsV2Parser.maxTextLength { fail(parser, "listing element text too long") }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            guard failure == nil else { return }
            switch path {
            case ["ListBucketResult", "IsTruncated"]:
                guard text == "true" || text == "false" else { return fail(parser, "IsTruncated is \(text.prefix(16))") }
                isTruncated = text == "true"
            case ["ListBucketResult", "NextContinuationToken"]:
                nextToken = text
            case ["ListBucketResult", "EncodingType"]:
                urlEncoded = text == "url"
            case ["ListBucketResult", "Contents", "Key"]:
                guard current?.key == nil else { return fail(parser, "an entry has two keys") }
                current?.key = text
            case ["ListBucketResult", "Contents", "Size"]:
                guard let size = Int(text), size >= 0 else { return fail(parser, "entry size \(text.prefix(32)) is not a number") }
                current?.size = size
            case ["ListBucketResult", "Contents", "ETag"]:
                current?.etag = text
            case ["ListBucketResult", "Contents"]:
                guard let entry = current, let key = entry.key, !key.isEmpty, let size = entry.size else {
                    return fail(parser, "a listing entry lacks its Key or Size")
                }
                entries.append(.init(key: key, size: size, etag: entry.etag ?? ""))
                current = nil
            default:
                break
            }
            path.removeLast()
            if path.isEmpty { rootClosed = true }
            text = ""
        }
    }
}

/// True when `bytes` is well-formed UTF-8.
func isValidUTF8(_ bytes: [UInt8]) -> Bool {
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    while true {
        switch decoder.decode(&iterator) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}

/// The `<Error><Code>…</Code><Message>…</Message></Error>` document of an S3 error answer.
struct S3ErrorDocument: Equatable {
    var code: String
    var message: String

    /// nil when `body` is not an S3 error document.
    static func parse(_ body: [UInt8]) -> S3ErrorDocument? {
        guard !body.isEmpty, body.count <= 1 << 20, isValidUTF8(body) else { return nil }
        let delegate = Delegate()
        let parser = XMLParser(data: Data(body))
        parser.shouldResolveExternalEntities = false
        parser.delegate = delegate
        guard parser.parse(), delegate.isError else { return nil }
        return S3ErrorDocument(code: delegate.code ?? "UnknownError", message: delegate.message ?? "")
    }

    private final class Delegate: NSObject, XMLParserDelegate {
        var depth = 0
        var isError = false
        var text = ""
        var code: String?
        var message: String?

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if depth == 0 { isError = name == "Error" }
            depth += 1
            text = ""
            if depth > 8 { parser.abortParsing() }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if text.utf8.count < 4096 { text += string }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if depth == 2 && isError {
                if name == "Code" { code = text }
                if name == "Message" { message = text }
            }
            depth -= 1
            text = ""
        }
    }
}
