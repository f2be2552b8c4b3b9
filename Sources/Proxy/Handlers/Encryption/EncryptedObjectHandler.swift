import Foundation
import Shared

/// The object operations of an encrypting gateway (docs/FORMAT.md, docs/encryption.md): PUT seals,
/// GET/HEAD open and answer with plaintext sizes, ETags and ranges, CopyObject re-wraps the data key,
/// listings report plaintext sizes. Plain objects (no gateway metadata) are served as stored unless
/// `allowPlaintextReads` is off. Multipart operations live in `EncryptedObjectHandler+Multipart.swift`.
struct EncryptedObjectHandler: Sendable {
    let backend: BackendClient
    let encryptor: ObjectEncryptor
    let passthrough: PassthroughHandler
    let observer: any EncryptionObserver
    /// `ENCRYPTION_ALLOW_PLAINTEXT_READS`: serve objects without gateway metadata (migration) or refuse them.
    let allowPlaintextReads: Bool
    /// Part geometries of multipart objects learned from their part headers, shared by GET, HEAD,
    /// UploadPartCopy and listings.
    let multipartGeometries = MultipartGeometryCache()

    /// Bodies up to this size are read into memory before sealing, so their MD5 (the ETag) is known
    /// before the metadata is written (FORMAT.md §8).
    static let bufferedUploadLimit = 1 << 20
    /// S3's limit on all user metadata of an object (names without `x-amz-meta-` plus values).
    static let userMetadataLimit = 2048
    /// Largest listing or copy-result document the gateway buffers.
    static let maxDocumentSize = 8 << 20

    init(backend: BackendClient, encryptor: ObjectEncryptor, observer: any EncryptionObserver, allowPlaintextReads: Bool = true) {
        self.backend = backend
        self.encryptor = encryptor
        self.passthrough = PassthroughHandler(backend: backend, encrypting: true)
        self.observer = observer
        self.allowPlaintextReads = allowPlaintextReads
    }

    func handle(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        switch request.operation {
        case .putObject: return try putObject(request, body: body, response: response)
        case .getObject: return try getObject(request, response: response, headOnly: false)
        case .headObject: return try getObject(request, response: response, headOnly: true)
        case .getObjectAttributes: return try getObjectAttributes(request, response: response)
        case .copyObject: return try copyObject(request, body: body, response: response)
        case .listObjects, .listObjectsV2, .listObjectVersions: return try listObjects(request, response: response)
        default:
            // Fail closed: the dispatcher sends nothing else here.
            throw S3Error.internalError().withLog("\(request.operation.name) was dispatched to the object handler")
        }
    }

    /// The gateway metadata of a stored object (nil: plain); damaged metadata is a 500 with the reason logged.
    func readMetadata(_ headers: [(name: String, value: String)], _ identity: ObjectIdentity,
                      _ request: S3Request) throws -> EncryptionMetadata? {
        do {
            return try EncryptionMetadata.parse(fields: headers)
        } catch {
            throw failure(error, identity, request)
        }
    }

    /// An engine error before any response byte: 500 InternalError, the code and reason in the log;
    /// authentication failures are also counted and logged as tampering.
    func failure(_ error: any Error, _ identity: ObjectIdentity, _ request: S3Request) -> S3Error {
        guard let error = error as? EncryptionError else { return S3Error.internalError().withLog("\(error)") }
        if let keyFailure = KeyPolicyRouting.s3Error(for: error) { return keyFailure }
        switch error.code {
        case .tamperDetected, .truncated, .trailingData, .malformedCiphertext:
            observer.tamperDetected(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID.text, error: error)
        default:
            break
        }
        return S3Error.internalError().withLog("encryption \(error.code.rawValue): \(error.message)")
    }

    /// The backend's own error for a read of `bucket/key` whose HEAD failed. A HEAD's error has no body, so it cannot
    /// tell NoSuchKey from NoSuchBucket, NoSuchVersion, AccessDenied or a delete marker's MethodNotAllowed: a one-byte
    /// GET of the same object brings the document, relayed with the gateway's request id and without any gateway
    /// metadata. Should that GET find an object after all (written in between), the client is asked to retry; the
    /// byte is never relayed, and nothing is forwarded that could act on an object the gateway has not read.
    func respondWithReadError(bucket: String, key: String, versionQuery: [QueryParameter], headers: HTTPFields, request: S3Request,
                              response: ResponseWriter) throws -> BackendResult {
        var headers = headers
        headers.set("Range", "bytes=0-0")
        let answer = try backend.fetch(BackendRequest(method: "GET", bucket: bucket, key: key, query: versionQuery, headers: headers,
                                                      body: .none, payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning),
                                       maxBodySize: S3ErrorBody.maxRewrittenSize)
        guard answer.status >= 300, answer.status != 416 else { throw S3Error.objectChanged() }
        return try respondBuffered(status: answer.status, headers: answer.headers, body: answer.body, request: request, response: response)
    }

    /// Writes a buffered backend answer (listing, copy result) with end-to-end headers and its new length.
    /// A backend error document gets the request's id (one request id per error).
    func respondBuffered(status: Int, headers: [(name: String, value: String)], body: [UInt8], request: S3Request,
                         response: ResponseWriter) throws -> BackendResult {
        var fields = BackendClient.forwardableResponseHeaders(headers)
        fields.remove("Content-MD5")
        // Gateway metadata never reaches clients; backend checksums (copy results) describe ciphertext.
        for name in fields.map(\.name) where EncryptionMetadata.isReserved(headerName: name) || name.lowercased().hasPrefix("x-amz-checksum-") {
            fields.remove(name)
        }
        var body = body
        if status >= 400, let rewritten = S3ErrorBody.withRequestID(body, request.context.requestID.text) { body = rewritten }
        try response.writeHead(HTTPResponseHead(status: status, headers: fields, contentLength: Int64(body.count)))
        if !body.isEmpty { try response.write(body) }
        try response.finish()
        return BackendResult(status: status, bytesOut: Int64(body.count))
    }

    /// Writes a gateway error with extra headers (e.g. `Content-Range` of a 416), as a complete response.
    func respond(_ error: S3Error, request: S3Request, response: ResponseWriter, extraHeaders: HTTPFields) throws -> BackendResult {
        var fields = extraHeaders
        fields.add("Content-Type", "application/xml")
        let xml = request.head.method == "HEAD" ? [] : error.withResource(request.head.rawPath).xml(requestID: request.context.requestID.text)
        try response.writeHead(HTTPResponseHead(status: error.status, headers: fields, contentLength: Int64(xml.count)))
        if !xml.isEmpty { try response.write(xml) }
        try response.finish()
        return BackendResult(status: error.status, bytesOut: Int64(xml.count))
    }

    static func identity(of request: S3Request) throws(S3Error) -> ObjectIdentity {
        guard let bucket = request.address.bucket, let key = request.address.key else { throw S3Error.invalidURI() }
        return ObjectIdentity(bucket: bucket, key: key)
    }

    /// Client headers for an encrypted upload: the client's plaintext digests describe bytes the backend
    /// never sees, so they are dropped (the gateway verified Content-MD5 and the signed hash itself).
    static func uploadHeaders(_ headers: HTTPFields) -> HTTPFields {
        HTTPFields(headers.filter {
            let n = $0.name.lowercased()
            return n != "content-md5" && !n.hasPrefix("x-amz-checksum-") && n != "x-amz-sdk-checksum-algorithm"
                && n != "x-amz-trailer" && n != "x-amz-decoded-content-length"
        })
    }

    /// The client's headers for the HEAD that fetches an object's size and metadata: the whole object, unconditionally.
    static func metadataRequestHeaders(_ headers: HTTPFields) -> HTTPFields {
        readHeaders(headers, range: nil)
    }

    /// The client's headers for a GET of the object's ciphertext: without the conditions (the gateway decides them
    /// on the plaintext ETag) and the client's `Range`, with `range` (the covering ciphertext) when given. One pass
    /// and one allocation (issue 12: every encrypted GET builds these), not a filter per name.
    static func readHeaders(_ headers: HTTPFields, range: String?) -> HTTPFields {
        var out: [(name: String, value: String)] = []
        out.reserveCapacity(headers.entries.count + 1)
        for field in headers.entries where !isConditionalOrRange(field.name) { out.append(field) }
        if let range { out.append((name: "Range", value: range)) }
        return HTTPFields(out)
    }

    /// `Range` or one of `ConditionalRequest.headerNames`, in any ASCII case.
    static func isConditionalOrRange(_ name: String) -> Bool {
        guard let first = name.utf8.first else { return false }
        switch first | 0x20 {
        case UInt8(ascii: "i"):
            return name.caseInsensitiveHasPrefix("if-") && ConditionalRequest.headerNames.contains { name.caseInsensitiveEquals($0) }
        case UInt8(ascii: "r"):
            return name.caseInsensitiveEquals("range")
        default:
            return false
        }
    }

    static func withoutConditionals(_ headers: HTTPFields) -> HTTPFields {
        // Every conditional name starts with `If-`: one pass settles the common case (no condition), instead of a
        // pass per name (issue 12: every encrypted GET forwards its headers through here).
        guard ConditionalRequest.hasConditional(headers) else { return headers }
        var out = headers
        for name in ConditionalRequest.headerNames { out.remove(name) }
        return out
    }

    /// Bytes of `x-amz-meta-*` headers as S3 counts them (name without the prefix, plus value).
    static func userMetadataSize(_ headers: HTTPFields) -> Int {
        headers.reduce(0) { total, field in
            let lower = field.name.lowercased()
            guard lower.hasPrefix("x-amz-meta-") else { return total }
            return total + lower.utf8.count - "x-amz-meta-".utf8.count + field.value.utf8.count
        }
    }

    static func checkMetadataBudget(user: Int, gateway: EncryptionMetadata) throws(S3Error) {
        let allowed = userMetadataLimit - gateway.metadataBudget
        guard user <= allowed else { throw S3Error.metadataTooLarge(allowed: allowed) }
    }

    /// Reads a body of exactly `count` bytes (the verifying body checks the rest), handing `consume` each piece as
    /// it comes (through a buffer of at most 64 KiB, not the whole body).
    static func read(_ body: RequestBody, exactly count: Int, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws {
        // One byte more than expected is room to notice a longer body.
        var buffer = [UInt8](repeating: 0, count: min(count, 64 << 10) + 1)
        var filled = 0
        while true {
            let n = try buffer.withUnsafeMutableBytes { try body.read(into: $0) }
            if n == 0 { break }
            filled += n
            guard filled <= count else { throw S3Error.incompleteBody() }
            try buffer.withUnsafeBytes { try consume(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        guard filled == count else { throw S3Error.incompleteBody() }
    }
}

extension S3Error {
    static func preconditionFailed() -> S3Error {
        S3Error(code: "PreconditionFailed", message: "At least one of the pre-conditions you specified did not hold", status: 412)
    }
    static func invalidRange() -> S3Error {
        S3Error(code: "InvalidRange", message: "The requested range is not satisfiable", status: 416)
    }
    static func metadataTooLarge(allowed: Int) -> S3Error {
        S3Error(code: "MetadataTooLarge", message: "Your metadata headers exceed the maximum allowed metadata size: an encrypting gateway leaves \(allowed) bytes of the 2048 for user metadata.", status: 400)
    }
    /// `ENCRYPTION_ALLOW_PLAINTEXT_READS=false` and the object has no gateway metadata.
    static func plaintextObjectRefused() -> S3Error {
        S3Error(code: "AccessDenied", message: "The object is not encrypted by the gateway, and this gateway refuses unencrypted objects (ENCRYPTION_ALLOW_PLAINTEXT_READS=false).", status: 403)
    }
    /// The object was replaced while the gateway was reading it; a retry reads the new one.
    static func objectChanged() -> S3Error {
        S3Error(code: "ServiceUnavailable", message: "The object changed while it was being read. Please retry.", status: 503)
    }
    func withLog(_ detail: String) -> S3Error {
        var copy = self
        copy.logDetail = detail
        return copy
    }
}
