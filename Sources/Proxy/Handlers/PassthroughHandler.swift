import Shared

/// An authenticated, classified S3 request, as operation handlers receive it.
struct S3Request {
    var head: HTTPRequestHead
    var address: S3RequestAddress
    var query: [QueryParameter]
    var operation: S3Operation
    var identity: VerifiedRequest
    var context: RequestContext
}

/// Forwards a request to the backend unchanged (apart from the signature): the behaviour of every
/// operation the gateway does not transform.
struct PassthroughHandler: Sendable {
    let backend: BackendClient

    /// Largest single-request body S3 accepts (PutObject, UploadPart).
    static let maxSingleUpload: Int64 = 5 << 30

    func handle(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let method = request.head.method
        let bodySource: BackendRequestBody
        switch body.declaredLength {
        case nil:
            // S3 needs a Content-Length on uploads; an unframed chunked body cannot be forwarded as is.
            guard method != "PUT" && method != "POST" else { throw S3Error.missingContentLength() }
            bodySource = .none
        case 0?:
            // Run the end-of-body checks (signed hash of the empty body, Content-MD5) before forwarding.
            var empty = [UInt8](repeating: 0, count: 1)
            _ = try empty.withUnsafeMutableBytes { try body.read(into: $0) }
            // PUT/POST always carry a Content-Length, even when it is 0.
            bodySource = method == "PUT" || method == "POST" ? .bytes([]) : .none
        case let length?:
            if length > Self.maxSingleUpload, request.operation == .putObject || request.operation == .uploadPart {
                throw S3Error.entityTooLarge()
            }
            bodySource = .stream(body, length: length)
        }
        // A client-signed hash still describes the forwarded body, so the backend re-verifies it too.
        let payloadHash: String
        if case .signedHash = request.identity.payload {
            payloadHash = request.identity.payloadHashHeader.lowercased()
        } else {
            payloadHash = SigV4.unsignedPayload
        }
        let forwarded = BackendRequest(method: method, bucket: request.address.bucket, key: request.address.key,
                                       query: request.query, headers: request.head.headers, body: bodySource,
                                       payloadHash: payloadHash, signing: request.identity.backendSigning)
        return try backend.forward(forwarded, to: response)
    }
}
