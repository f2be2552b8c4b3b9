import Shared

/// An authenticated, classified S3 request, as operation handlers receive it.
struct S3Request {
    var head: HTTPRequestHead
    var address: S3RequestAddress
    /// The query as the handlers and the backend see it: in encrypting mode only the parameters the
    /// gateway understood for `operation` (`S3Operation.understoodParameters`).
    var query: [QueryParameter]
    var operation: S3Operation
    var identity: VerifiedRequest
    var context: RequestContext
}

/// Forwards a request to the backend unchanged (apart from the signature and the query filtering done by
/// the dispatcher): every operation of a pass-through gateway, and the allow-listed operations of an
/// encrypting one. An answer that carries the gateway's own metadata is an encrypted object's content,
/// which is never relayed (whatever the backend made of the request).
struct PassthroughHandler: Sendable {
    let backend: BackendClient
    /// False for a pass-through gateway (`GATEWAY_PASSTHROUGH=true`); only changes the refusal message.
    let encrypting: Bool

    /// Largest single-request body S3 accepts (PutObject, UploadPart).
    static let maxSingleUpload: Int64 = 5 << 30

    init(backend: BackendClient, encrypting: Bool) {
        self.backend = backend
        self.encrypting = encrypting
    }

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
            var byte: UInt8 = 0
            _ = try withUnsafeMutableBytes(of: &byte) { try body.read(into: $0) }
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
            // Lower-case hex, as the backend expects; clients nearly always send it so, and then no copy is made.
            payloadHash = request.identity.payloadHashHeader.asciiLowercased()
        } else {
            payloadHash = SigV4.unsignedPayload
        }
        let operation = request.operation.name
        let encrypting = encrypting
        if request.operation == .getObjectAttributes {
            try screenObject(request, operation: operation)
        }
        let forwarded = BackendRequest(method: method, bucket: request.address.bucket, key: request.address.key,
                                       query: request.query, headers: request.head.headers, body: bodySource,
                                       payloadHash: payloadHash, signing: request.identity.backendSigning)
        return try backend.relay(forwarded, to: response, requestID: request.context.requestID) { status, fields in
            try Self.screen(fields: &fields, operation: operation, encrypting: encrypting)
            return status
        }
    }

    /// GetObjectAttributes answers with a document and no object headers, so nothing in its answer tells an encrypted
    /// object (whose size, ETag and checksums there would be the ciphertext's) from a plain one: the object's own
    /// HEAD decides first, as `screen` would decide a GET or HEAD. An error is left for the request itself.
    private func screenObject(_ request: S3Request, operation: String) throws {
        let head = try backend.fetch(BackendRequest(
            method: "HEAD", bucket: request.address.bucket, key: request.address.key,
            query: request.query.filter { $0.name == "versionId" }, headers: ObjectAccessHeaders.object(request.head.headers), body: .none,
            payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning), maxBodySize: 0)
        guard (200..<300).contains(head.status) else { return }
        var fields = HTTPFields(head.headers)
        try Self.screen(fields: &fields, operation: operation, encrypting: encrypting)
    }

    /// Refuses an answer carrying an encrypted object's metadata (its body is ciphertext) and drops any
    /// other `x-amz-meta-s3eg-*` header: clients never see the gateway's metadata.
    static func screen(fields: inout HTTPFields, operation: String, encrypting: Bool) throws(S3Error) {
        let reserved = fields.filter { EncryptionMetadata.isReserved(headerName: $0.name) }.map(\.name)
        guard !reserved.isEmpty else { return }
        if reserved.contains(where: { $0.lowercased() == FormatV1.versionHeader }) {
            throw encrypting
                ? S3Error.notImplemented("The backend answered \(operation) with the content of an encrypted object; the gateway does not forward it.")
                    .withLog("backend answered \(operation) with gateway metadata")
                : S3Error.notImplemented("The object is encrypted by the gateway; a pass-through gateway (GATEWAY_PASSTHROUGH=true) cannot decrypt it.")
        }
        for name in reserved { fields.remove(name) }
    }
}
