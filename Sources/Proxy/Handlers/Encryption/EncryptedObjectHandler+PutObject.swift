import Foundation
import Shared

/// PutObject: seals the body under a fresh data key. Small bodies are buffered so their MD5 (the ETag)
/// is known before the metadata is written; larger ones stream through `SealingBody`.
extension EncryptedObjectHandler {
    func putObject(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
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
        let forwarded = BackendRequest(method: "PUT", bucket: identity.bucket, key: identity.key, query: request.query,
                                       headers: headers, body: backendBody, payloadHash: payloadHash, signing: request.identity.backendSigning)
        defer { observer.encryptionWork(operation: "PutObject", duration: sealTime + (sealing?.sealTime ?? .zero)) }
        return try backend.relay(forwarded, to: response) { status, fields in
            if (200..<300).contains(status), let clientETag { fields.set("ETag", clientETag) }
            // Checksums the backend computed describe the ciphertext, not what the client sent.
            for name in fields.map(\.name) where name.lowercased().hasPrefix("x-amz-checksum-") { fields.remove(name) }
            return status
        }
    }
}
