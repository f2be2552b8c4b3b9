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
        case .putObject: return try put(request, body: body, response: response)
        case .getObject: return try get(request, body: body, response: response, headOnly: false)
        case .headObject: return try get(request, body: body, response: response, headOnly: true)
        case .copyObject: return try copy(request, body: body, response: response)
        case .listObjects, .listObjectsV2, .listObjectVersions: return try list(request, response: response)
        default:
            // Fail closed: the dispatcher sends nothing else here.
            throw S3Error.internalError().withLog("\(request.operation.name) was dispatched to the object handler")
        }
    }

    // MARK: PutObject

    private func put(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        guard let declared = body.declaredLength else { throw S3Error.missingContentLength() }
        guard declared <= PassthroughHandler.maxSingleUpload else { throw S3Error.entityTooLarge() }
        let length = Int(declared)
        var headers = Self.uploadHeaders(request.head.headers)
        let userMetadata = Self.userMetadataSize(headers)

        let metadata: EncryptionMetadata
        let backendBody: BackendRequestBody
        let payloadHash: String
        var sealing: SealingBody?
        var sealTime: Duration = .zero
        if length <= Self.bufferedUploadLimit {
            // Small body: read it (the verifying body checks hash and Content-MD5 at the end), then seal in memory.
            let plaintext = try Self.readExactly(body, count: length)
            let started = ContinuousClock.now
            let begun = try encryptor.beginObject(identity, plaintextMD5: Digest.hash(.md5, plaintext), plaintextLength: length)
            metadata = begun.metadata
            try Self.checkMetadataBudget(user: userMetadata, gateway: metadata)
            var ciphertext: [UInt8] = []
            ciphertext.reserveCapacity(encryptor.layout.ciphertextLength(plaintextLength: length))
            try begun.sealer.update(plaintext) { ciphertext.append(contentsOf: $0) }
            try begun.sealer.finish { ciphertext.append(contentsOf: $0) }
            sealTime = ContinuousClock.now - started
            // The backend checks what it stores against both digests of the ciphertext.
            headers.set("Content-MD5", Data(Digest.hash(.md5, ciphertext)).base64EncodedString())
            payloadHash = Encoding.hex(Digest.hash(.sha256, ciphertext))
            backendBody = .bytes(ciphertext)
        } else {
            // Streamed: the ETag is the plaintext MD5 only when the client committed to one (verified on the way).
            let md5 = request.head.headers["Content-MD5"].flatMap { Data(base64Encoded: $0.trimmingCharacters(in: .whitespaces)) }
                .map { Array($0) }
            let begun = try encryptor.beginObject(identity, plaintextMD5: md5, plaintextLength: length)
            metadata = begun.metadata
            try Self.checkMetadataBudget(user: userMetadata, gateway: metadata)
            let ciphertextLength = encryptor.layout.ciphertextLength(plaintextLength: length)
            let source = SealingBody(source: body, sealer: begun.sealer, ciphertextLength: ciphertextLength)
            sealing = source
            backendBody = .stream(source, length: Int64(ciphertextLength))
            payloadHash = SigV4.unsignedPayload
        }
        for (name, value) in metadata.headers { headers.set(name, value) }
        let clientETag = metadata.plaintextMD5.map { "\"\(Encoding.hex($0))\"" }
        let relay = TransformingRelay(writer: response) { status, fields, _ in
            if (200..<300).contains(status), let clientETag { fields.set("ETag", clientETag) }
            // Checksums the backend computed describe the ciphertext, not what the client sent.
            for name in fields.map(\.name) where name.lowercased().hasPrefix("x-amz-checksum-") { fields.remove(name) }
            return status
        }
        let forwarded = BackendRequest(method: "PUT", bucket: identity.bucket, key: identity.key, query: request.query,
                                       headers: headers, body: backendBody, payloadHash: payloadHash)
        defer { observer.encryptionWork(operation: "PutObject", duration: sealTime + (sealing?.sealTime ?? .zero)) }
        return try relay.run(forwarded, backend: backend)
    }

    // MARK: GetObject / HeadObject

    private func get(_ request: S3Request, body: VerifyingBody, response: ResponseWriter, headOnly: Bool) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        let stored = try backend.fetch(BackendRequest(
            method: "HEAD", bucket: identity.bucket, key: identity.key, query: request.query.filter { $0.name == "versionId" },
            headers: Self.metadataRequestHeaders(request.head.headers), body: .none, payloadHash: SigV4.emptyPayloadHash), maxBodySize: 0)
        guard (200..<300).contains(stored.status), let metadata = try readMetadata(stored.headers, identity, request) else {
            if (200..<300).contains(stored.status), !allowPlaintextReads { throw S3Error.plaintextObjectRefused() }
            // A plain object, or an error the backend explains best: forward the request itself.
            return try forwardPlain(request, body: body, response: response)
        }
        if request.query.contains(where: { $0.name == "partNumber" }) {
            throw S3Error.notImplemented("partNumber reads of encrypted objects are not supported; use a Range instead.")
        }
        let etag = EncryptedResponseHeaders.etag(metadata, backendETag: stored.header("ETag"))
        let lastModified = stored.header("Last-Modified")
        switch ConditionalRequest.evaluate(headers: request.head.headers, etag: etag, lastModified: lastModified) {
        case .proceed: break
        case .notModified:
            var fields = HTTPFields()
            fields.add("ETag", etag)
            if let lastModified { fields.add("Last-Modified", lastModified) }
            try response.writeHead(HTTPResponseHead(status: 304, headers: fields, contentLength: nil))
            try response.finish()
            return BackendResult(status: 304, bytesOut: 0)
        case .preconditionFailed:
            throw S3Error.preconditionFailed()
        }
        guard let storedLength = stored.header("Content-Length").flatMap({ Int($0) }) else {
            throw S3Error.internalError().withLog("the backend's HEAD of \(identity.bucket)/\(identity.key) has no Content-Length")
        }
        let plan = try plannedRead(metadata, identity: identity, stored: stored, storedLength: storedLength,
                                   rangeHeader: request.head.headers["Range"], request: request)
        if plan.status == 416 {
            var extra = HTTPFields()
            extra.add("Content-Range", plan.contentRange ?? "bytes */\(plan.plaintextLength)")
            return try respond(S3Error.invalidRange(), request: request, response: response, extraHeaders: extra)
        }
        if headOnly {
            // Unwrapping proves the metadata is intact and the key is configured before a HEAD says 200.
            do { _ = try encryptor.dataKey(of: metadata, identity: identity) } catch { throw failure(error, identity, request) }
            var fields = EncryptedResponseHeaders.clientHeaders(BackendClient.forwardableResponseHeaders(stored.headers), etag: etag)
            if let range = plan.contentRange { fields.set("Content-Range", range) }
            try response.writeHead(HTTPResponseHead(status: plan.status, headers: fields, contentLength: Int64(plan.contentLength)))
            try response.finish()
            return BackendResult(status: plan.status, bytesOut: 0)
        }
        let reader: any RangeDecryptor
        do {
            reader = try plan.makeReader()
        } catch {
            throw failure(error, identity, request)
        }
        var headers = Self.withoutConditionals(request.head.headers)
        headers.remove("Range")
        if let range = plan.backendRange { headers.set("Range", range) }
        // Pin the object the plan was made for: a replacement in between fails instead of mixing objects.
        if let backendETag = stored.header("ETag") { headers.set("If-Match", backendETag) }
        let relay = DecryptingRelay(writer: response, reader: reader, metadata: metadata, etag: etag)
        let forwarded = BackendRequest(method: "GET", bucket: identity.bucket, key: identity.key,
                                       query: request.query.filter { $0.name != "partNumber" }, headers: headers, body: .none,
                                       payloadHash: SigV4.emptyPayloadHash)
        defer { observer.encryptionWork(operation: "GetObject", duration: relay.openTime) }
        do {
            try backend.exchange(forwarded, handler: relay, headWritten: { response.headWritten }, status: { relay.status })
            try relay.finish()
            try response.finish()
        } catch {
            if let tamper = relay.encryptionFailure {
                observer.tamperDetected(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID, error: tamper)
                guard response.headWritten else {
                    throw S3Error.internalError().withLog("encryption \(tamper.code.rawValue): \(tamper.message)")
                }
                throw BackendFailure.aborted("tamper detected: \(tamper)", status: relay.status, backendFault: false)
            }
            if let failure = error as? BackendFailure { throw failure }
            throw BackendFailure.aborted("\(error)", status: relay.status, backendFault: false)
        }
        return BackendResult(status: relay.status, bytesOut: relay.bytesOut)
    }

    /// Forwards a read of an object the HEAD found plain (or missing), refusing an answer that turns
    /// out to carry gateway metadata (the object was replaced by an encrypted one in between).
    private func forwardPlain(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let allowPlaintextReads = allowPlaintextReads
        let relay = TransformingRelay(writer: response) { status, fields, _ in
            if fields.contains(where: { EncryptionMetadata.isReserved(headerName: $0.name) }) { throw S3Error.objectChanged() }
            if (200..<300).contains(status), !allowPlaintextReads { throw S3Error.plaintextObjectRefused() }
            return status
        }
        let forwarded = BackendRequest(method: request.head.method, bucket: request.address.bucket, key: request.address.key,
                                       query: request.query, headers: request.head.headers, body: .none,
                                       payloadHash: SigV4.emptyPayloadHash)
        return try relay.run(forwarded, backend: backend)
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
        switch error.code {
        case .tamperDetected, .truncated, .trailingData, .malformedCiphertext:
            observer.tamperDetected(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID, error: error)
        default:
            break
        }
        return S3Error.internalError().withLog("encryption \(error.code.rawValue): \(error.message)")
    }

    // MARK: CopyObject

    private func copy(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let destination = try Self.identity(of: request)
        guard let source = CopySource.parse(request.head.headers["x-amz-copy-source"]) else {
            throw S3Error.invalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
        }
        let sourceIdentity = ObjectIdentity(bucket: source.bucket, key: source.key)
        let stored = try backend.fetch(BackendRequest(
            method: "HEAD", bucket: source.bucket, key: source.key,
            query: source.versionID.map { [QueryParameter(name: "versionId", value: $0, hasValue: true)] } ?? [],
            headers: HTTPFields(), body: .none, payloadHash: SigV4.emptyPayloadHash), maxBodySize: 0)
        guard (200..<300).contains(stored.status) else {
            // A missing source, or an error the backend explains best.
            return try passthrough.handle(request, body: body, response: response)
        }
        guard let metadata = try readMetadata(stored.headers, sourceIdentity, request) else {
            // A plain source is copied as is, pinned to the object whose conditions were checked: a source
            // replaced by an encrypted object in between must not become a "plain" copy of its ciphertext.
            guard allowPlaintextReads else { throw S3Error.plaintextObjectRefused() }
            let etag = stored.header("ETag") ?? "\"\""
            if ConditionalRequest.evaluateCopySource(headers: request.head.headers, etag: etag,
                                                     lastModified: stored.header("Last-Modified")) != .proceed {
                throw S3Error.preconditionFailed()
            }
            var pinned = request
            pinned.head.headers = Self.pinnedCopyHeaders(request.head.headers, source: source, stored: stored)
            return try passthrough.handle(pinned, body: body, response: response)
        }
        let storedLength = stored.header("Content-Length").flatMap { Int64($0) } ?? 0
        guard storedLength <= PassthroughHandler.maxSingleUpload else {
            throw S3Error.notImplemented("copying encrypted objects larger than 5 GiB is not supported (it needs a multipart copy).")
        }
        let etag = EncryptedResponseHeaders.etag(metadata, backendETag: stored.header("ETag"))
        if ConditionalRequest.evaluateCopySource(headers: request.head.headers, etag: etag,
                                                 lastModified: stored.header("Last-Modified")) != .proceed {
            throw S3Error.preconditionFailed()
        }
        let rewrapped: EncryptionMetadata
        do {
            rewrapped = try encryptor.rewrap(metadata, from: sourceIdentity, to: destination)
        } catch {
            throw failure(error, sourceIdentity, request)
        }
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
        for (name, value) in rewrapped.headers { headers.set(name, value) }
        let answer = try backend.fetch(BackendRequest(method: "PUT", bucket: destination.bucket, key: destination.key,
                                                      query: request.query, headers: headers, body: .bytes([]),
                                                      payloadHash: SigV4.emptyPayloadHash), maxBodySize: Self.maxDocumentSize)
        var document = answer.body
        if answer.status == 200, rewrapped.plaintextMD5 != nil {
            document = Self.replacingETag(in: document, with: etag)
        }
        return try respondBuffered(status: answer.status, headers: answer.headers, body: document, response: response)
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

    /// `<ETag>…</ETag>` of a CopyObjectResult replaced by the plaintext ETag.
    static func replacingETag(in document: [UInt8], with etag: String) -> [UInt8] {
        let text = String(decoding: document, as: UTF8.self)
        guard let open = text.range(of: "<ETag>"), let close = text.range(of: "</ETag>", range: open.upperBound..<text.endIndex) else {
            return document
        }
        return Array((String(text[..<open.upperBound]) + S3XML.escape(etag) + String(text[close.lowerBound...])).utf8)
    }

    // MARK: Listings

    private func list(_ request: S3Request, response: ResponseWriter) throws -> BackendResult {
        // The document is rewritten, so it must arrive uncompressed.
        var headers = request.head.headers
        headers.remove("Accept-Encoding")
        let answer = try backend.fetch(BackendRequest(method: request.head.method, bucket: request.address.bucket, key: nil,
                                                      query: request.query, headers: headers, body: .none,
                                                      payloadHash: SigV4.emptyPayloadHash), maxBodySize: Self.maxDocumentSize)
        let document = answer.status == 200 ? ListingSizeRewriter.rewrite(answer.body) : answer.body
        return try respondBuffered(status: answer.status, headers: answer.headers, body: document, response: response)
    }

    // MARK: Helpers

    func respondBuffered(status: Int, headers: [(name: String, value: String)], body: [UInt8],
                                 response: ResponseWriter) throws -> BackendResult {
        var fields = BackendClient.forwardableResponseHeaders(headers)
        fields.remove("Content-MD5")
        try response.writeHead(HTTPResponseHead(status: status, headers: fields, contentLength: Int64(body.count)))
        if !body.isEmpty { try response.write(body) }
        try response.finish()
        return BackendResult(status: status, bytesOut: Int64(body.count))
    }

    private func respond(_ error: S3Error, request: S3Request, response: ResponseWriter, extraHeaders: HTTPFields) throws -> BackendResult {
        var fields = extraHeaders
        fields.add("Content-Type", "application/xml")
        let xml = request.head.method == "HEAD" ? [] : error.withResource(request.head.rawPath).xml(requestID: request.context.requestID)
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
        var out = withoutConditionals(headers)
        out.remove("Range")
        return out
    }

    static func withoutConditionals(_ headers: HTTPFields) -> HTTPFields {
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

    /// Reads a body of exactly `count` bytes (the verifying body checks the rest).
    static func readExactly(_ body: RequestBody, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count + 1)
        var filled = 0
        while true {
            let n = try out.withUnsafeMutableBytes { all in
                try body.read(into: UnsafeMutableRawBufferPointer(rebasing: all[filled...]))
            }
            if n == 0 { break }
            filled += n
            guard filled <= count else { throw S3Error.incompleteBody() }
        }
        guard filled == count else { throw S3Error.incompleteBody() }
        out.removeLast()
        return out
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
