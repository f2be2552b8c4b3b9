import Foundation
import Shared

/// GetObject and HeadObject: one HEAD for the metadata, conditions and range plan (plus, for a multipart
/// object, a few part-header reads: `plannedRead`), then a ranged GET of the covering chunks pinned to the same
/// object, decrypted by `DecryptingRelay`. Objects without gateway
/// metadata are forwarded as stored (or refused, `allowPlaintextReads`).
extension EncryptedObjectHandler {
    func getObject(_ request: S3Request, response: ResponseWriter, headOnly: Bool) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        // One backend round trip where it can be (FORMAT.md §7): the GET's answer brings the metadata (a HEAD
        // already is one). Only what that answer cannot serve is read the long way below.
        var known: HTTPClientResponse?
        if !headOnly, !request.query.contains(where: { $0.name == "partNumber" }),
           let read = OptimisticRead(rangeHeader: request.head.headers["Range"]) {
            switch try optimisticGet(request, identity: identity, read: read, response: response) {
            case .done(let result): return result
            case .readAgain(let head): known = head
            }
        }
        let stored = try known ?? backend.fetch(BackendRequest(
            method: "HEAD", bucket: identity.bucket, key: identity.key, query: request.query.filter { $0.name == "versionId" },
            headers: Self.metadataRequestHeaders(request.head.headers), body: .none, payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning), maxBodySize: 0)
        let fingerprint = MetadataFingerprint(fields: stored.headers, identity: identity)
        let verified = (200..<300).contains(stored.status) ? encryptor.verifiedMetadata(fingerprint) : nil
        guard (200..<300).contains(stored.status),
              let metadata = try verified?.metadata ?? readMetadata(stored.headers, identity, request) else {
            // A plain object, or an error the backend explains best: forward the request itself.
            return try forwardPlain(request, stored: (200..<300).contains(stored.status) ? stored : nil, response: response)
        }
        let partNumber = try Self.partNumberToRead(request)
        // Unwrapping proves the metadata (and so its ETag record) authentic and the key configured, before
        // a condition is decided on the ETag or a HEAD says 200.
        let dataKey: DataKey
        do {
            dataKey = try verified?.dataKey ?? encryptor.dataKey(of: metadata, identity: identity, remembering: fingerprint)
        } catch {
            throw failure(error, identity, request)
        }
        let backendETag = stored.header("ETag")
        let etag = ClientETag.encrypted(metadata, backendETag: backendETag)
        let lastModified = stored.header("Last-Modified")
        switch ConditionalRequest.evaluate(headers: request.head.headers, etags: ClientETag.seen(primary: etag, backendETag: backendETag),
                                           lastModified: lastModified) {
        case .proceed: break
        case .notModified:
            return try respondNotModified(etag: etag, lastModified: lastModified, response: response)
        case .preconditionFailed:
            throw S3Error.preconditionFailed()
        }
        guard let storedLength = stored.header("Content-Length").flatMap({ Int($0) }) else {
            throw S3Error.internalError().withLog("the backend's HEAD of \(identity.bucket)/\(identity.key) has no Content-Length")
        }
        var rangeHeader = request.head.headers["Range"]
        var part: PartNumberRead?
        var geometry: MultipartGeometry?
        if let partNumber {
            (part, geometry) = try partRead(partNumber, metadata: metadata, identity: identity, stored: stored,
                                            storedLength: storedLength, request: request)
            switch part {
            case .notSatisfiable?: throw S3Error.invalidPartNumber()
            case .empty(let count)?:
                return try respondEmptyPart(stored: stored, etag: etag, partsCount: count, response: response)
            default: rangeHeader = part?.rangeHeader
            }
        }
        let plan = try plannedRead(metadata, dataKey: dataKey, identity: identity, stored: stored, storedLength: storedLength,
                                   rangeHeader: rangeHeader, geometry: geometry, request: request)
        var extraHeaders = EncryptedResponseHeaders.checksum(metadata, requestHeaders: request.head.headers, wholeObject: plan.contentRange == nil)
        if let count = part?.partsCount { extraHeaders.append(("x-amz-mp-parts-count", String(count))) }
        if plan.status == 416 {
            var extra = HTTPFields()
            extra.add("Content-Range", plan.contentRange ?? "bytes */\(plan.plaintextLength)")
            return try respond(S3Error.invalidRange(), request: request, response: response, extraHeaders: extra)
        }
        if headOnly {
            var fields = EncryptedResponseHeaders.clientHeaders(forwardingFrom: stored.headers, etag: etag)
            if let range = plan.contentRange { fields.set("Content-Range", range) }
            for (name, value) in extraHeaders { fields.set(name, value) }
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
        var headers = Self.readHeaders(request.head.headers, range: plan.backendRange)
        // Pin the object the plan was made for: a replacement in between fails instead of mixing objects.
        if let backendETag = stored.header("ETag") { headers.set("If-Match", backendETag) }
        let relay = DecryptingRelay(writer: response, reader: reader, metadata: metadata, etag: etag,
                                    requestID: request.context.requestID)
        relay.extraHeaders = extraHeaders
        let forwarded = BackendRequest(method: "GET", bucket: identity.bucket, key: identity.key,
                                       query: request.query.filter { $0.name != "partNumber" }, headers: headers, body: .none,
                                       payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning)
        defer { observer.encryptionWork(operation: "GetObject", duration: relay.openTime) }
        do {
            try backend.exchange(forwarded, into: relay)
            try relay.finish()
        } catch {
            if let tamper = relay.encryptionFailure {
                observer.tamperDetected(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID.text, error: tamper)
            }
            // `finish` throws outside the exchange; its errors map like a handler's.
            throw (error as? BackendFailure)
                ?? BackendFailure(.handler(error), clientResponseStarted: response.headWritten, status: relay.status)
        }
        do {
            try response.finish()
        } catch {
            throw BackendFailure.aborted("finishing the response: \(error)", status: relay.status, cause: .client)
        }
        return BackendResult(status: relay.status, bytesOut: relay.bytesOut)
    }

    /// The `partNumber` of a read, validated as S3 does (nil: none). A part is a range of its own, so it cannot be
    /// combined with a `Range` header.
    static func partNumberToRead(_ request: S3Request) throws -> Int? {
        guard request.query.contains(where: { $0.name == "partNumber" }) else { return nil }
        let number = try partNumber(request)
        if request.head.headers["Range"] != nil {
            throw S3Error.invalidRequest("Cannot specify both Range header and partNumber query parameter.")
        }
        return number
    }

    /// Which plaintext bytes part `partNumber` of the object holds: a single-part object has one part, the whole
    /// object; a multipart object's parts come from its geometry (learned from part headers, or remembered), which
    /// is returned so that planning the range does not learn it again.
    func partRead(_ partNumber: Int, metadata: EncryptionMetadata, identity: ObjectIdentity, stored: HTTPClientResponse,
                  storedLength: Int, request: S3Request) throws -> (PartNumberRead, MultipartGeometry?) {
        switch metadata.layout {
        case .single:
            let length: Int
            do {
                length = try metadata.chunkLayout.plaintextLength(ciphertextLength: storedLength)
            } catch {
                throw failure(error, identity, request)
            }
            return (PartNumberRead.single(partNumber: partNumber, plaintextLength: length), nil)
        case .multipart:
            let setup = try multipartSetup(identity, metadata: metadata, storedLength: storedLength, backendETag: stored.header("ETag") ?? "",
                                           versionQuery: request.query.filter { $0.name == "versionId" }, rangeHeader: nil,
                                           geometry: nil, access: ObjectAccessHeaders.object(request.head.headers), request: request)
            let geometry = setup.geometry.knowing(setup.headers)
            return (PartNumberRead.multipart(partNumber: partNumber, geometry: geometry), geometry)
        }
    }

    /// A part that holds no byte: its head, no body (a `Content-Range` cannot name an empty range).
    private func respondEmptyPart(stored: HTTPClientResponse, etag: String, partsCount: Int?, response: ResponseWriter) throws -> BackendResult {
        var fields = EncryptedResponseHeaders.clientHeaders(forwardingFrom: stored.headers, etag: etag)
        if let partsCount { fields.set("x-amz-mp-parts-count", String(partsCount)) }
        try response.writeHead(HTTPResponseHead(status: 200, headers: fields, contentLength: 0))
        try response.finish()
        return BackendResult(status: 200, bytesOut: 0)
    }

    /// Forwards a read of an object the HEAD found plain (`stored`) or missing (nil), refusing an answer that
    /// turns out to carry gateway metadata (the object was replaced by an encrypted one in between). The
    /// conditions of a plain object's read are decided here against both ETags a client may know it by
    /// (the backend's, and the listing's `-1` form), then pinned to the object the HEAD saw.
    func forwardPlain(_ request: S3Request, stored: HTTPClientResponse?, response: ResponseWriter) throws -> BackendResult {
        var headers = request.head.headers
        if let stored {
            guard allowPlaintextReads else { throw S3Error.plaintextObjectRefused() }
            let backendETag = stored.header("ETag")
            let etags = ClientETag.seen(primary: backendETag ?? "\"\"", backendETag: backendETag)
            switch ConditionalRequest.evaluate(headers: headers, etags: etags, lastModified: stored.header("Last-Modified")) {
            case .proceed:
                headers = Self.withoutConditionals(headers)
                if let backendETag { headers.set("If-Match", backendETag) }
            case .notModified:
                return try respondNotModified(etag: backendETag ?? "\"\"", lastModified: stored.header("Last-Modified"), response: response)
            case .preconditionFailed:
                throw S3Error.preconditionFailed()
            }
        }
        let allowPlaintextReads = allowPlaintextReads
        let forwarded = BackendRequest(method: request.head.method, bucket: request.address.bucket, key: request.address.key,
                                       query: request.query, headers: headers, signing: request.identity.backendSigning)
        return try backend.relay(forwarded, to: response, requestID: request.context.requestID) { status, fields in
            if fields.contains(where: { EncryptionMetadata.isReserved(headerName: $0.name) }) { throw S3Error.objectChanged() }
            // The pin failed: the object changed since the HEAD.
            if status == 412, stored != nil { throw S3Error.objectChanged() }
            if (200..<300).contains(status), !allowPlaintextReads { throw S3Error.plaintextObjectRefused() }
            return status
        }
    }

    /// 304 with the object's validators.
    func respondNotModified(etag: String, lastModified: String?, response: ResponseWriter) throws -> BackendResult {
        var fields = HTTPFields()
        fields.add("ETag", etag)
        if let lastModified { fields.add("Last-Modified", lastModified) }
        try response.writeHead(HTTPResponseHead(status: 304, headers: fields, contentLength: nil))
        try response.finish()
        return BackendResult(status: 304, bytesOut: 0)
    }
}
