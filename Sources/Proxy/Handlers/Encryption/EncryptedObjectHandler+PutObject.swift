import Foundation
import Shared

/// PutObject: seals the body under a fresh data key. Small bodies are buffered so their MD5 (the ETag)
/// is known before the metadata is written; larger ones stream through `SealingBody` while the verifying body
/// hashes the plaintext on the way, and the authenticated ETag record is attached after the upload by a conditional
/// metadata-replacing self-copy (unless the client's Content-MD5 gave it up front). A flexible checksum
/// (`x-amz-checksum-*`, verified by `VerifyingBody`) is recorded the same way: up front when the client sent
/// it as a header (or the body was buffered), else in that same self-copy, so a streamed upload costs at
/// most one extra request for both records. Conditional writes (`If-Match`, `If-None-Match`) are decided
/// against the ETags clients see and pinned on the backend.
extension EncryptedObjectHandler {
    func putObject(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        guard let declared = body.declaredLength else { throw S3Error.missingContentLength() }
        guard declared <= PassthroughHandler.maxSingleUpload else { throw S3Error.entityTooLarge() }
        let length = Int(declared)
        let clientHeaders = try conditionalWriteHeaders(Self.uploadHeaders(request.head.headers), identity: identity, request: request)
        var headers = clientHeaders
        let userMetadata = Self.userMetadataSize(headers)

        let metadata: EncryptionMetadata
        let backendBody: BackendRequestBody
        let payloadHash: String
        var sealing: SealingBody?
        var sealTime: Duration = .zero
        if length <= Self.bufferedUploadLimit {
            // Small body: sealed as it is read into its one ciphertext buffer (the plaintext is never held whole: one
            // copy of the body per upload, not two); the verifying body hashes the plaintext on the way (the ETag;
            // with a Content-MD5 it is the MD5 checked against it) and checks it before the last byte.
            body.computePayloadMD5()
            let pending = try encryptor.beginPendingObject(identity, plaintextLength: length)
            try Self.checkMetadataBudget(user: userMetadata, gateway: pending.draft)
            var ciphertext: [UInt8] = []
            ciphertext.reserveCapacity(encryptor.layout.ciphertextLength(plaintextLength: length))
            try Self.read(body, exactly: length) { piece in
                let started = ContinuousClock.now
                try pending.sealer.update(piece) { ciphertext.append(contentsOf: $0) }
                sealTime += ContinuousClock.now - started
            }
            let started = ContinuousClock.now
            try pending.sealer.finish { ciphertext.append(contentsOf: $0) }
            guard let md5 = body.payloadMD5 else {
                throw S3Error.internalError().withLog("PUT \(identity.bucket)/\(identity.key): the body ended without its MD5")
            }
            metadata = try pending.metadata(plaintextMD5: md5, checksum: try Self.checksumRecord(body.verifiedChecksum))
            sealTime += ContinuousClock.now - started
            // The backend checks what it stores against the ciphertext's MD5, a signed header (object-lock buckets
            // require one). A signed SHA-256 of the payload would be the same check a second time: one more hash of
            // every byte, and on a small object the costliest step after the MD5s (issue 12).
            headers.set("Content-MD5", Data(Digest.hash(.md5, ciphertext)).base64EncodedString())
            payloadHash = SigV4.unsignedPayload
            backendBody = .bytes(ciphertext)
        } else {
            // Streamed: a client's Content-MD5 (verified on the way) is the ETag up front; otherwise the plaintext
            // is hashed as it passes and the record attached afterwards.
            let md5 = Self.contentMD5(request.head.headers)
            // A checksum header is verified at the end of the body (a mismatch aborts the upload): safe to record now.
            let begun = try encryptor.beginObject(identity, plaintextMD5: md5, checksum: try Self.declaredChecksum(request.head.headers),
                                                  plaintextLength: length)
            metadata = begun.metadata
            try Self.checkMetadataBudget(user: userMetadata, gateway: metadata)
            let ciphertextLength = encryptor.layout.ciphertextLength(plaintextLength: length)
            // The verifying body hashes with its other digests (on their worker thread: overlapped with sealing).
            if md5 == nil { body.computePayloadMD5() }
            let source = SealingBody(source: body, sealer: begun.sealer, ciphertextLength: ciphertextLength)
            sealing = source
            (backendBody, payloadHash) = backend.streamedUpload(source, length: ciphertextLength, headers: &headers)
        }
        for (name, value) in metadata.fields { headers.set(name, value) }
        let forwarded = BackendRequest(method: "PUT", bucket: identity.bucket, key: identity.key, query: request.query,
                                       headers: headers, body: backendBody, payloadHash: payloadHash, signing: request.identity.backendSigning)
        defer { observer.encryptionWork(operation: "PutObject", duration: sealTime + (sealing?.sealTime ?? .zero)) }
        let answer = try backend.fetch(forwarded, maxBodySize: Self.maxDocumentSize)
        var fields = BackendClient.forwardableResponseHeaders(answer.headers)
        // Checksums the backend computed describe the ciphertext, not what the client sent.
        for name in fields.map(\.name) where name.lowercased().hasPrefix("x-amz-checksum-") { fields.remove(name) }
        if (200..<300).contains(answer.status) {
            // Records only known now: the MD5 of a streamed body, a checksum that came in the aws-chunked trailer
            // (or that the gateway computed for `x-amz-sdk-checksum-algorithm`).
            let lateMD5 = metadata.authenticatedMD5 == nil ? body.payloadMD5 : nil
            let lateChecksum = metadata.checksum == nil ? try Self.checksumRecord(body.verifiedChecksum) : nil
            var etag = metadata.authenticatedMD5.map(ClientETag.md5) ?? ClientETag.opaque(answer.header("ETag"))
            if lateMD5 != nil || lateChecksum != nil {
                if Self.recordsMayBeCopied(clientHeaders) {
                    let attached = attachRecords(md5: lateMD5, checksum: lateChecksum, to: metadata, identity: identity,
                                                 uploadHeaders: clientHeaders, put: answer, request: request)
                    if let md5 = lateMD5, attached.recorded { etag = ClientETag.md5(md5) }
                    if let version = attached.versionID { fields.set("x-amz-version-id", version) }
                } else {
                    observer.etagNotRecorded(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID.text,
                                             reason: "the upload puts the object under object lock, whose version a self-copy could not replace")
                }
            }
            fields.set("ETag", etag)
            if let checksum = body.verifiedChecksum {
                // As S3 answers: the checksum of what the client sent (verified), a whole-object one.
                fields.set(checksum.algorithm.headerName, checksum.base64)
                fields.set("x-amz-checksum-type", "FULL_OBJECT")
            }
        }
        var document = answer.body
        if answer.status >= 400, let rewritten = S3ErrorBody.withRequestID(document, request.context.requestID.text) { document = rewritten }
        try response.writeHead(HTTPResponseHead(status: answer.status, headers: fields, contentLength: Int64(document.count)))
        if !document.isEmpty { try response.write(document) }
        try response.finish()
        return BackendResult(status: answer.status, bytesOut: Int64(document.count))
    }

    /// Whether a streamed upload's late records may be attached by a self-copy. Not when the upload puts the object
    /// under object lock (a retention or a legal hold): its version could not be deleted after the copy, so both
    /// would stay, locked, doubling the object's storage for as long as the lock lasts. The ETag then stays visibly
    /// not an MD5. (A bucket's default retention is not visible in the request; docs/encryption.md.)
    static func recordsMayBeCopied(_ uploadHeaders: HTTPFields) -> Bool {
        if uploadHeaders["x-amz-object-lock-mode"] != nil || uploadHeaders["x-amz-object-lock-retain-until-date"] != nil {
            return false
        }
        return uploadHeaders["x-amz-object-lock-legal-hold"]?.uppercased() != "ON"
    }

    /// Records the plaintext MD5 and/or the flexible checksum of a streamed upload with one metadata-replacing copy
    /// of the object onto itself, conditional on the backend ETag the PUT returned (a concurrent overwrite makes
    /// the copy fail, and the upload keeps the records it has). In a versioned bucket the copy is a new version;
    /// the PUT's own version, now a duplicate, is deleted so a client's PUT still leaves one version. Returns
    /// whether the records were stored and the version id the client gets.
    func attachRecords(md5: [UInt8]?, checksum: ChecksumRecord?, to metadata: EncryptionMetadata, identity: ObjectIdentity,
                       uploadHeaders: HTTPFields, put: HTTPClientResponse, request: S3Request) -> (recorded: Bool, versionID: String?) {
        let fallback = (recorded: false, versionID: put.header("x-amz-version-id"))
        guard let backendETag = put.header("ETag"), !backendETag.isEmpty else { return fallback }
        do {
            let updated = try encryptor.attachRecords(metadata, plaintextMD5: md5, checksum: checksum, identity: identity)
            var headers = uploadHeaders
            for name in ConditionalRequest.headerNames { headers.remove(name) }
            headers.remove("Content-MD5")
            for (name, value) in updated.fields { headers.set(name, value) }
            headers.set("x-amz-copy-source", BackendClient.copySource(bucket: identity.bucket, key: identity.key))
            // An object stored under SSE-C is read by the copy with the key it was written with.
            for (name, value) in ObjectAccessHeaders.selfCopySource(uploadHeaders) { headers.set(name, value) }
            headers.set("x-amz-metadata-directive", "REPLACE")
            // AWS reads the first name, Ceph RGW (Pacific) only the second; each ignores the other.
            headers.set("x-amz-copy-source-if-match", backendETag)
            headers.set("x-amz-copy-if-match", backendETag)
            let copied = try backend.fetch(BackendRequest(method: "PUT", bucket: identity.bucket, key: identity.key,
                                                          headers: headers, body: .bytes([]), signing: request.identity.backendSigning), maxBodySize: Self.maxDocumentSize)
            guard copied.status == 200, S3ErrorDocument.parse(copied.body) == nil else {
                observer.etagNotRecorded(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID.text,
                                         reason: "self-copy answered \(copied.status) \(S3ErrorDocument.parse(copied.body)?.code ?? "")")
                return fallback
            }
            let copyVersion = copied.header("x-amz-version-id")
            if let putVersion = put.header("x-amz-version-id"), putVersion != "null", let copyVersion, copyVersion != putVersion {
                let deleted = try backend.fetch(BackendRequest(method: "DELETE", bucket: identity.bucket, key: identity.key,
                                                               query: [QueryParameter(name: "versionId", value: putVersion, hasValue: true)], signing: request.identity.backendSigning))
                if !(200..<300).contains(deleted.status) {
                    observer.etagNotRecorded(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID.text,
                                             reason: "the upload's own version \(putVersion) stays as a non-current version: delete answered \(deleted.status)")
                }
            }
            return (true, copyVersion ?? fallback.versionID)
        } catch {
            observer.etagNotRecorded(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID.text,
                                     reason: "\(error)")
            return fallback
        }
    }

    /// The client's `Content-MD5` as bytes, known before the body: the record of a streamed upload, which
    /// `VerifyingBody` aborts on the read that delivers the last byte if the body does not match it.
    static func contentMD5(_ headers: HTTPFields) -> [UInt8]? {
        headers["Content-MD5"].flatMap { Data(base64Encoded: $0.trimmingCharacters(in: .whitespaces)) }.map { Array($0) }
    }

    /// A verified flexible checksum as the format records it (`CRC32:…`).
    static func checksumRecord(_ value: ChecksumValue?) throws -> ChecksumRecord? {
        guard let value else { return nil }
        return try ChecksumRecord(algorithm: value.algorithm.rawValue, value: value.bytes)
    }

    /// The client's `x-amz-checksum-<alg>` header, known before the body (`VerifyingBody` checks it at the end
    /// and aborts the upload on a mismatch); nil when the checksum comes in a trailer or not at all.
    static func declaredChecksum(_ headers: HTTPFields) throws -> ChecksumRecord? {
        for field in headers {
            guard let algorithm = ChecksumAlgorithm(headerName: field.name) else { continue }
            return try checksumRecord(ChecksumValue.parse(algorithm, base64: field.value))
        }
        return nil
    }

    /// `If-Match` / `If-None-Match` of PutObject (and CompleteMultipartUpload) decided against the ETags clients
    /// see — the backend's ETag of an encrypted object is the MD5 of its ciphertext — and pinned on the backend:
    /// the returned headers carry, instead of the client's conditions, `If-Match: <backend ETag>` of the object
    /// that was checked (or `If-None-Match: *` when there was none), so the write fails if the object changes
    /// in between. Without conditions the headers come back unchanged; `If-None-Match: *` alone is forwarded
    /// as it is (the backend decides it atomically).
    func conditionalWriteHeaders(_ headers: HTTPFields, identity: ObjectIdentity, request: S3Request) throws -> HTTPFields {
        let ifMatch = headers["If-Match"]
        let ifNoneMatch = headers["If-None-Match"]
        guard ifMatch != nil || ifNoneMatch != nil else { return headers }
        var out = headers
        out.remove("If-Match")
        out.remove("If-None-Match")
        if ifMatch == nil, ifNoneMatch?.trimmingCharacters(in: .whitespaces) == "*" {
            out.set("If-None-Match", "*")
            return out
        }
        let current = try backend.fetch(BackendRequest(method: "HEAD", bucket: identity.bucket, key: identity.key,
                                                       headers: ObjectAccessHeaders.object(request.head.headers),
                                                       signing: request.identity.backendSigning), maxBodySize: 0)
        if current.status == 404 {
            if ifMatch != nil {
                throw S3Error(code: "NoSuchKey", message: "The specified key does not exist.", status: 404)
            }
            out.set("If-None-Match", "*")
            return out
        }
        guard (200..<300).contains(current.status) else {
            throw S3Error.serviceUnavailable().withLog("conditional write: the backend's HEAD answered \(current.status)")
        }
        let backendETag = current.header("ETag")
        let primary: String
        if let metadata = try readMetadata(current.headers, identity, request) {
            do { _ = try encryptor.dataKey(of: metadata, identity: identity) } catch { throw failure(error, identity, request) }
            primary = ClientETag.encrypted(metadata, backendETag: backendETag)
        } else {
            primary = backendETag ?? "\"\""
        }
        let etags = ClientETag.seen(primary: primary, backendETag: backendETag)
        if let ifMatch, !ConditionalRequest.matches(ifMatch, etags: etags) { throw S3Error.preconditionFailed() }
        if let ifNoneMatch, ifNoneMatch.trimmingCharacters(in: .whitespaces) == "*" || ConditionalRequest.matches(ifNoneMatch, etags: etags) {
            throw S3Error.preconditionFailed()
        }
        if let backendETag { out.set("If-Match", Self.writePin(backendETag, answer: current)) }
        return out
    }

    /// The `If-Match` value that pins a write to the object of `answer`. Ceph RGW (Pacific) compares a PUT's
    /// If-Match with the ETag without its quotes (its GETs and copies take it quoted, as AWS and moto do
    /// everywhere); it marks object answers with `x-rgw-object-type`.
    static func writePin(_ etag: String, answer: HTTPClientResponse) -> String {
        guard answer.header("x-rgw-object-type") != nil else { return etag }
        return etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
}
