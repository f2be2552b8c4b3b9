import Foundation
import Shared

/// CopyObject: the ciphertext is copied by the backend byte for byte; only the data key is re-wrapped for
/// the destination. The source is pinned to the object whose metadata and conditions the gateway read.
extension EncryptedObjectHandler {
    func copyObject(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let destination = try Self.identity(of: request)
        guard let source = CopySource.parse(request.head.headers["x-amz-copy-source"]) else {
            throw S3Error.invalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
        }
        if source.bucket == destination.bucket, source.key == destination.key, source.versionID == nil,
           !Self.copyChangesTheObject(request.head.headers) {
            throw S3Error.invalidRequest("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
        }
        let sourceIdentity = ObjectIdentity(bucket: source.bucket, key: source.key)
        let sourceAccess = ObjectAccessHeaders.copySource(request.head.headers)
        let stored = try backend.fetch(BackendRequest(
            method: "HEAD", bucket: source.bucket, key: source.key,
            query: source.versionID.map { [QueryParameter(name: "versionId", value: $0, hasValue: true)] } ?? [], headers: sourceAccess,
            signing: request.identity.backendSigning), maxBodySize: 0)
        guard (200..<300).contains(stored.status) else {
            // A missing source, or another error the backend explains best. Not by forwarding the copy: a source
            // written in between would be copied as stored, its data key still bound to the source's name.
            return try respondWithReadError(bucket: source.bucket, key: source.key,
                                            versionQuery: source.versionID.map { [QueryParameter(name: "versionId", value: $0, hasValue: true)] } ?? [],
                                            headers: sourceAccess, request: request, response: response)
        }
        let backendETag = stored.header("ETag")
        guard let metadata = try readMetadata(stored.headers, sourceIdentity, request) else {
            // A plain source is copied as is, pinned to the object whose conditions were checked: a source
            // replaced by an encrypted object in between must not become a "plain" copy of its ciphertext.
            guard allowPlaintextReads else { throw S3Error.plaintextObjectRefused() }
            try Self.checkCopySourceConditions(request, etags: ClientETag.seen(primary: backendETag ?? "\"\"", backendETag: backendETag),
                                               stored: stored)
            var pinned = request
            pinned.head.headers = Self.pinnedCopyHeaders(request.head.headers, source: source, stored: stored)
            return try passthrough.handle(pinned, body: body, response: response)
        }
        let storedLength = stored.header("Content-Length").flatMap { Int64($0) } ?? 0
        guard storedLength <= PassthroughHandler.maxSingleUpload else {
            throw S3Error.notImplemented("copying encrypted objects larger than 5 GiB is not supported (it needs a multipart copy).")
        }
        // Re-wrapping unwraps first, which proves the source's metadata (and its ETag record) authentic
        // before a condition is decided on it.
        let rewrapped: EncryptionMetadata
        do {
            rewrapped = try encryptor.rewrap(metadata, from: sourceIdentity, to: destination)
        } catch {
            throw failure(error, sourceIdentity, request)
        }
        let sourceETag = ClientETag.encrypted(metadata, backendETag: backendETag)
        try Self.checkCopySourceConditions(request, etags: ClientETag.seen(primary: sourceETag, backendETag: backendETag), stored: stored)
        var headers = Self.pinnedCopyHeaders(request.head.headers, source: source, stored: stored)
        let replace = request.head.headers["x-amz-metadata-directive"]?.uppercased() == "REPLACE"
        if !replace {
            // COPY: the source's user metadata and content headers, as S3 would copy them.
            for (name, _) in headers where name.lowercased().hasPrefix("x-amz-meta-") || Self.contentHeaders.contains(name.lowercased()) {
                headers.remove(name)
            }
            for (name, value) in stored.headers {
                let lower = name.lowercased()
                if (lower.hasPrefix("x-amz-meta-") && !EncryptionMetadata.isReserved(headerName: lower)) || Self.contentHeaders.contains(lower) {
                    headers.add(name, value)
                }
            }
        }
        try Self.checkMetadataBudget(user: Self.userMetadataSize(headers), gateway: rewrapped)
        headers.set("x-amz-metadata-directive", "REPLACE")
        // The backend would compute it over ciphertext; the destination keeps the source's record instead.
        headers.remove("x-amz-checksum-algorithm")
        for (name, value) in rewrapped.fields { headers.set(name, value) }
        let answer = try backend.fetch(BackendRequest(method: "PUT", bucket: destination.bucket, key: destination.key,
                                                      query: request.query, headers: headers, body: .bytes([]), signing: request.identity.backendSigning),
                                       maxBodySize: Self.maxDocumentSize)
        var status = answer.status
        var document = answer.body
        if status == 200, S3ErrorDocument.parse(document) != nil {
            // S3 may report a failed copy as 200 with an error document.
            status = 500
        } else if status == 200 {
            // The destination holds the source's ciphertext and records: its ETag as clients see it.
            let copiedETag = rewrapped.authenticatedMD5.map(ClientETag.md5) ?? ClientETag.opaque(Self.etagElement(in: document))
            document = Self.removingChecksums(from: Self.replacingETag(in: document, with: copiedETag))
        }
        return try respondBuffered(status: status, headers: answer.headers, body: document, request: request, response: response)
    }

    /// S3's rule: a copy onto the same key must change something (REPLACE metadata, storage class, website
    /// redirect, server-side encryption); otherwise it is refused.
    static func copyChangesTheObject(_ headers: HTTPFields) -> Bool {
        headers["x-amz-metadata-directive"]?.uppercased() == "REPLACE" || headers.contains("x-amz-storage-class")
            || headers.contains("x-amz-website-redirect-location")
            || headers.contains { $0.name.lowercased().hasPrefix("x-amz-server-side-encryption") }
    }

    /// The client's `x-amz-copy-source-if-*`, decided against the ETags clients know the source by.
    static func checkCopySourceConditions(_ request: S3Request, etags: [String], stored: HTTPClientResponse) throws(S3Error) {
        if ConditionalRequest.evaluateCopySource(headers: request.head.headers, etags: etags,
                                                 lastModified: stored.header("Last-Modified")) != .proceed {
            throw S3Error.preconditionFailed()
        }
    }

    /// The text of `<ETag>…</ETag>` in a CopyObjectResult, XML entities decoded.
    static func etagElement(in document: [UInt8]) -> String? {
        let text = String(decoding: document, as: UTF8.self)
        guard let open = text.range(of: "<ETag>"), let close = text.range(of: "</ETag>", range: open.upperBound..<text.endIndex) else {
            return nil
        }
        return String(text[open.upperBound..<close.lowerBound]).replacingOccurrences(of: "&quot;", with: "\"")
            .replacingOccurrences(of: "&#34;", with: "\"")
    }

    /// The client's CopyObject headers with its `x-amz-copy-source-if-*` conditions (already evaluated by the
    /// gateway against the ETag clients see) replaced by a pin on the source the gateway read: its version
    /// when the backend reported one, and its backend ETag, so a source replaced in between fails the copy
    /// (412) instead of being copied under metadata that belongs to another object.
    static func pinnedCopyHeaders(_ headers: HTTPFields, source: CopySource, stored: HTTPClientResponse) -> HTTPFields {
        var out = headers
        for name in ConditionalRequest.copySourceHeaderNames { out.remove(name) }
        out.remove("x-amz-copy-if-match")
        var value = BackendClient.copySource(bucket: source.bucket, key: source.key)
        if let version = source.versionID ?? stored.header("x-amz-version-id").flatMap({ $0 == "null" ? nil : $0 }) {
            value += "?versionId=" + URIEncoding.encode(version)
        }
        out.set("x-amz-copy-source", value)
        if let etag = stored.header("ETag"), !etag.isEmpty {
            // AWS reads the first name, Ceph RGW (Pacific) only the second; each ignores the other.
            out.set("x-amz-copy-source-if-match", etag)
            out.set("x-amz-copy-if-match", etag)
        }
        return out
    }

    static let contentHeaders: Set<String> = ["content-type", "content-encoding", "content-disposition", "content-language",
                                              "cache-control", "expires"]

    /// A CopyObjectResult without its `<Checksum…>` elements: the backend computed them over ciphertext.
    static func removingChecksums(from document: [UInt8]) -> [UInt8] {
        var text = String(decoding: document, as: UTF8.self)
        while let open = text.range(of: "<Checksum"), let close = text.range(of: "</", range: open.upperBound..<text.endIndex),
              let end = text.range(of: ">", range: close.upperBound..<text.endIndex) {
            text.removeSubrange(open.lowerBound..<end.upperBound)
        }
        return Array(text.utf8)
    }

    /// `<ETag>…</ETag>` of a CopyObjectResult replaced by the plaintext ETag.
    static func replacingETag(in document: [UInt8], with etag: String) -> [UInt8] {
        let text = String(decoding: document, as: UTF8.self)
        guard let open = text.range(of: "<ETag>"), let close = text.range(of: "</ETag>", range: open.upperBound..<text.endIndex) else {
            return document
        }
        return Array((String(text[..<open.upperBound]) + S3XML.escape(etag) + String(text[close.lowerBound...])).utf8)
    }
}

/// The `x-amz-copy-source` header: `[/]bucket/key[?versionId=…]`, key percent-encoded.
struct CopySource: Equatable {
    var bucket: String
    var key: String
    var versionID: String?

    static func parse(_ header: String?) -> CopySource? {
        guard let header, !header.isEmpty else { return nil }
        var text = Substring(header)
        if text.hasPrefix("/") { text = text.dropFirst() }
        var versionID: String?
        if let q = text.firstIndex(of: "?") {
            let query = text[text.index(after: q)...]
            text = text[..<q]
            for pair in query.split(separator: "&") where pair.hasPrefix("versionId=") {
                versionID = URIEncoding.decode(pair.dropFirst("versionId=".count))
            }
        }
        guard let slash = text.firstIndex(of: "/") else { return nil }
        let bucket = String(text[..<slash])
        guard !bucket.isEmpty, let key = URIEncoding.decode(text[text.index(after: slash)...]), !key.isEmpty else { return nil }
        return CopySource(bucket: bucket, key: key, versionID: versionID)
    }
}
