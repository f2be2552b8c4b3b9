import Foundation
import Shared

/// ListObjects, ListObjectsV2, ListObjectVersions: the backend's document with plaintext sizes.
extension EncryptedObjectHandler {
    func listObjects(_ request: S3Request, response: ResponseWriter) throws -> BackendResult {
        // The document is rewritten, so it must arrive uncompressed.
        var headers = request.head.headers
        headers.remove("Accept-Encoding")
        let answer = try backend.fetch(BackendRequest(method: request.head.method, bucket: request.address.bucket, key: nil,
                                                      query: request.query, headers: headers, body: .none,
                                                      payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning), maxBodySize: Self.maxDocumentSize)
        let document = answer.status == 200 ? ListingSizeRewriter.rewrite(answer.body) : answer.body
        return try respondBuffered(status: answer.status, headers: answer.headers, body: document, response: response)
    }
}
