import Shared

/// What the key providers and the per-bucket policy change in request handling (docs/keys.md):
/// key-manager failures become S3 errors, and buckets the policy keeps plain bypass encryption for
/// writes and listings (reads always follow the object's own metadata).
enum KeyPolicyRouting {
    /// `503 ServiceUnavailable` when the key manager is unreachable, `403 AccessDenied` when it refuses
    /// the key; nil for every other encryption error. The key manager's message goes to the log only.
    static func s3Error(for error: EncryptionError) -> S3Error? {
        switch error.code {
        case .keyUnavailable:
            return S3Error.serviceUnavailable("The key manager that protects this object's key is unavailable. Please retry.")
                .withLog("key provider unavailable: \(error.message)")
        case .keyAccessDenied:
            return S3Error.accessDenied("The key that protects this object is disabled, revoked or not permitted in the key manager.")
                .withLog("key provider denied: \(error.message)")
        default:
            return nil
        }
    }

    /// Whether a request in a bucket the policy keeps plain goes straight to the backend. New objects,
    /// new multipart uploads and listings do; reads and copies never do (they follow the object's
    /// metadata, and a copy of an encrypted source must be re-wrapped); requests of a multipart upload
    /// the gateway encrypted (its upload id says so) stay on the encrypted path whatever the policy.
    static func bypassesEncryption(_ request: S3Request, decision: BucketDecision) -> Bool {
        guard case .plain = decision else { return false }
        switch request.operation {
        case .putObject, .createMultipartUpload, .listObjects, .listObjectsV2, .listObjectVersions, .listMultipartUploads:
            return true
        case .uploadPart, .uploadPartCopy, .completeMultipartUpload, .abortMultipartUpload, .listParts:
            let uploadID = request.query.first { $0.name == "uploadId" }?.value ?? ""
            return !uploadID.hasPrefix(UploadToken.prefix)
        default:
            return false
        }
    }

    /// UploadPartCopy into a plain upload copies bytes as stored: an encrypted source would land as
    /// ciphertext in a plain object. Refused unless the source has no gateway metadata.
    static func checkPlainCopySource(_ request: S3Request, backend: BackendClient) throws {
        guard case .uploadPartCopy = request.operation,
              let source = CopySource.parse(request.head.headers["x-amz-copy-source"]) else { return }
        let stored = try backend.fetch(BackendRequest(
            method: "HEAD", bucket: source.bucket, key: source.key,
            query: source.versionID.map { [QueryParameter(name: "versionId", value: $0, hasValue: true)] } ?? [],
            headers: ObjectAccessHeaders.copySource(request.head.headers), body: .none, payloadHash: SigV4.emptyPayloadHash,
            signing: request.identity.backendSigning), maxBodySize: 0)
        if stored.headers.contains(where: { EncryptionMetadata.isReserved(headerName: $0.name) }) {
            throw S3Error.notImplemented("UploadPartCopy from an encrypted object into a bucket the encryption policy keeps plain "
                + "is not supported (the copy would store ciphertext); download and upload the data instead.")
        }
    }
}
