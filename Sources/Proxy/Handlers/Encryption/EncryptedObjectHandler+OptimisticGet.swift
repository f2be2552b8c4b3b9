import Shared

/// GetObject in one backend round trip (issue 12, docs/FORMAT.md §7): one GET for the covering ciphertext of the
/// default chunk size, whose answer's head brings the metadata and the stored size. Conditions are decided on that
/// head and a 304/416 goes out before any body; the body is decrypted as it arrives when it holds exactly the
/// plan's bytes. Otherwise (another chunk size, a plain or multipart object) the read is done again the long way
/// (`getObject`), with what a HEAD would have said whenever the answer showed it.
extension EncryptedObjectHandler {
    enum OptimisticGetResult {
        case done(BackendResult)
        /// Read the object again the long way; with the HEAD-equivalent answer when this one showed the object.
        case readAgain(HTTPClientResponse?)
    }

    func optimisticGet(_ request: S3Request, identity: ObjectIdentity, read: OptimisticRead,
                       response: ResponseWriter) throws -> OptimisticGetResult {
        let headers = Self.readHeaders(request.head.headers, range: read.backendRange)
        let relay = OptimisticReadRelay(writer: response) { [self] status, fields in
            try decideOnHead(request, identity: identity, read: read, status: status, fields: fields, response: response)
        }
        // No If-Match: the metadata and the bytes come in the same answer, so they belong to one object.
        let forwarded = BackendRequest(method: "GET", bucket: identity.bucket, key: identity.key, query: request.query,
                                       headers: headers, body: .none, payloadHash: SigV4.emptyPayloadHash,
                                       signing: request.identity.backendSigning)
        var decrypting: DecryptingRelay? {
            if case .decrypting(let inner)? = relay.outcome { return inner }
            return nil
        }
        defer {
            if let decrypting { observer.encryptionWork(operation: "GetObject", duration: decrypting.openTime) }
        }
        do {
            try backend.exchange(forwarded, into: relay)
            switch relay.outcome {
            case .decrypting(let inner)?: try inner.finish()
            case .relayingError(let inner)?: try inner.finish()
            case .answered, .redo, nil: break
            }
        } catch {
            // A transfer stopped on purpose: its outcome says what to do.
            switch relay.outcome {
            case .answered(let result)?: return .done(result)
            case .redo(let head)?: return .readAgain(head)
            case .decrypting, .relayingError, nil: break
            }
            if let tamper = decrypting?.encryptionFailure {
                observer.tamperDetected(bucket: identity.bucket, key: identity.key, requestID: request.context.requestID.text, error: tamper)
            }
            throw (error as? BackendFailure)
                ?? BackendFailure(.handler(error), clientResponseStarted: response.headWritten, status: relay.status)
        }
        let bytesOut: Int64
        switch relay.outcome {
        case .answered(let result)?: return .done(result)
        case .redo(let head)?: return .readAgain(head)
        case .decrypting(let inner)?: bytesOut = inner.bytesOut
        case .relayingError(let inner)?: bytesOut = inner.bytesOut
        case nil: throw S3Error.internalError().withLog("the backend's answer to GET \(identity.bucket)/\(identity.key) had no head")
        }
        do {
            try response.finish()
        } catch {
            throw BackendFailure.aborted("finishing the response: \(error)", status: relay.status, cause: .client)
        }
        return .done(BackendResult(status: relay.status, bytesOut: bytesOut))
    }

    /// Everything `getObject` decides after its HEAD, decided on the head of the GET's answer.
    private func decideOnHead(_ request: S3Request, identity: ObjectIdentity, read: OptimisticRead, status: Int,
                              fields: [(name: String, value: String)], response: ResponseWriter) throws -> OptimisticReadRelay.Outcome {
        guard (200..<300).contains(status) else {
            // 416: the range starts past the stored bytes; the client's 416 needs the size, which only a HEAD tells.
            if status == 416 { return .redo(nil) }
            // Any other error answers a GET of this key as it answers the client's own GET.
            return .relayingError(ClientRelay(writer: response, requestID: request.context.requestID) { status, fields in
                for name in fields.map(\.name) where EncryptionMetadata.isReserved(headerName: name) { fields.remove(name) }
                return status
            })
        }
        // What a HEAD would have said, for the long way; only a redo needs it.
        var head: HTTPClientResponse? {
            OptimisticRead.receivedRange(status: status, headers: fields)
                .map { OptimisticReadRelay.headEquivalent(fields, storedLength: $0.storedLength) }
        }
        // Headers verified before (a hot object) need no parse, unwrap or MAC: the fingerprint holds every byte
        // both depend on.
        let fingerprint = MetadataFingerprint(fields: fields, identity: identity)
        let verified = encryptor.verifiedMetadata(fingerprint)
        // A plain object (forwarded or refused as configured), or a multipart one (its plan reads part headers).
        guard let metadata = try verified?.metadata ?? readMetadata(fields, identity, request), case .single = metadata.layout else {
            return .redo(head)
        }
        let decision: OptimisticRead.Decision?
        do {
            decision = try read.decide(status: status, headers: fields, layout: metadata.chunkLayout)
        } catch {
            throw failure(error, identity, request)
        }
        guard let decision else { return .redo(nil) }
        if case .redo = decision { return .redo(head) }
        // As after a HEAD: the metadata (and its ETag record) proven authentic before a condition is decided on it.
        let dataKey: DataKey
        do {
            dataKey = try verified?.dataKey ?? encryptor.dataKey(of: metadata, identity: identity, remembering: fingerprint)
        } catch {
            throw failure(error, identity, request)
        }
        let backendETag = fields.first { $0.name.caseInsensitiveEquals("etag") }?.value
        let lastModified = fields.first { $0.name.caseInsensitiveEquals("last-modified") }?.value
        let etag = ClientETag.encrypted(metadata, backendETag: backendETag)
        switch ConditionalRequest.evaluate(headers: request.head.headers, etags: ClientETag.seen(primary: etag, backendETag: backendETag),
                                           lastModified: lastModified) {
        case .proceed: break
        case .notModified:
            return .answered(try respondNotModified(etag: etag, lastModified: lastModified, response: response))
        case .preconditionFailed:
            throw S3Error.preconditionFailed()
        }
        switch decision {
        case .unsatisfiable(let plan):
            var extra = HTTPFields()
            extra.add("Content-Range", plan.contentRange ?? "bytes */\(plan.plaintextLength)")
            return .answered(try respond(S3Error.invalidRange(), request: request, response: response, extraHeaders: extra))
        case .read(let plan):
            let reader: PlannedReader
            do {
                reader = try PlannedReader(plan: plan, encryptor: encryptor, metadata: metadata, dataKey: dataKey)
            } catch {
                throw failure(error, identity, request)
            }
            let relay = DecryptingRelay(writer: response, reader: reader, metadata: metadata, etag: etag,
                                        requestID: request.context.requestID)
            relay.extraHeaders = EncryptedResponseHeaders.checksum(metadata, requestHeaders: request.head.headers,
                                                                   wholeObject: plan.contentRange == nil)
            return .decrypting(relay)
        case .redo:
            return .redo(head)
        }
    }
}
