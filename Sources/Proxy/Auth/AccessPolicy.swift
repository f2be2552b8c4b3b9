import Shared

/// What an authenticated credential may do: its bucket allow-list and read-only flag. Pure.
///
/// Checked after the operation is classified and before anything reaches the backend. The backend's
/// own permissions still apply on top (per-credential backend keys), this only narrows.
enum AccessPolicy {
    /// - Parameters:
    ///   - copySourceBucket: the bucket of `x-amz-copy-source` (CopyObject, UploadPartCopy), which is read.
    static func check(_ credential: Credential?, method: String, operation: S3Operation, bucket: String?,
                      copySourceBucket: String?) throws(AuthenticationFailure) {
        guard let credential else { return }  // anonymous: the backend decides
        if credential.readOnly, !isRead(method: method, operation: operation) {
            throw denied(credential, "this credential is read-only")
        }
        if credential.buckets != nil {
            guard let bucket else {
                // Only ListBuckets addresses no bucket; it names buckets but touches none.
                guard operation == .listBuckets else { throw denied(credential, "this credential is limited to some buckets") }
                return
            }
            guard credential.allows(bucket: bucket) else { throw denied(credential, "bucket \(bucket) is not in this credential's list") }
            if let source = copySourceBucket, !credential.allows(bucket: source) {
                throw denied(credential, "copy source bucket \(source) is not in this credential's list")
            }
        }
    }

    /// GET and HEAD read; so does POST `?select` (SelectObjectContent) but it is treated as a write here:
    /// a read-only credential is refused rather than trusted with an operation the gateway does not inspect.
    static func isRead(method: String, operation: S3Operation) -> Bool {
        method == "GET" || method == "HEAD"
    }

    private static func denied(_ credential: Credential, _ why: String) -> AuthenticationFailure {
        var error = S3Error.accessDenied()
        error.logDetail = why
        return AuthenticationFailure(reason: .accessDenied, error: error, accessKey: credential.accessKey)
    }
}
