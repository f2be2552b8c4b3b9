import Shared

/// The multipart family of an encrypting gateway (CreateMultipartUpload, UploadPart, UploadPartCopy,
/// CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads). Owned by the
/// multipart work (issue 7 §2); until it lands, the operations that write object bytes are refused so
/// that plaintext never reaches the backend, and the ones that only manage uploads are forwarded.
extension EncryptedObjectHandler {
    func handleMultipart(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        switch request.operation {
        case .createMultipartUpload, .uploadPart, .uploadPartCopy, .completeMultipartUpload:
            throw S3Error.notImplemented("multipart uploads are not supported by an encrypting gateway yet; raise the client's "
                + "multipart threshold (e.g. boto3 TransferConfig(multipart_threshold=...), aws s3 --expected-size / "
                + "multipart_threshold, rclone --s3-upload-cutoff=5G) so objects up to 5 GiB are sent with a single PUT.")
        case .abortMultipartUpload, .listParts, .listMultipartUploads:
            return try passthrough.handle(request, body: body, response: response)
        default:
            throw S3Error.internalError().withLog("\(request.operation.name) was dispatched to the multipart handler")
        }
    }
}
