import Foundation
import Shared

/// The multipart family of an encrypting gateway (docs/FORMAT.md §9): CreateMultipartUpload stores the
/// version 2 metadata with the backend upload and answers an upload id that carries the wrapped data key;
/// UploadPart seals each part (header + segment) with a fresh salt, from any replica, without state;
/// CompleteMultipartUpload checks the listed parts against what the backend stored before it completes;
/// AbortMultipartUpload, ListParts and ListMultipartUploads translate upload ids and sizes.
extension EncryptedObjectHandler {
    func handleMultipart(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        switch request.operation {
        case .createMultipartUpload: return try createMultipartUpload(request, body: body, response: response)
        case .uploadPart: return try uploadPart(request, body: body, response: response)
        case .uploadPartCopy: return try uploadPartCopy(request, body: body, response: response)
        case .completeMultipartUpload: return try completeMultipartUpload(request, body: body, response: response)
        case .abortMultipartUpload: return try abortMultipartUpload(request, body: body, response: response)
        case .listParts: return try listParts(request, response: response)
        case .listMultipartUploads: return try passthrough.handle(request, body: body, response: response)
        default:
            throw S3Error.internalError().withLog("\(request.operation.name) was dispatched to the multipart handler")
        }
    }

    // MARK: CreateMultipartUpload

    private func createMultipartUpload(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        try Self.drain(body)
        var headers = Self.uploadHeaders(request.head.headers)
        // The client's algorithm is for its plaintext checksums, which the gateway verifies. The backend's is the
        // gateway's: a CRC32 of every (ciphertext) part when it gets upload checksums, else none.
        headers.remove("x-amz-checksum-algorithm")
        headers.remove("x-amz-checksum-type")
        if backend.sendsUploadChecksums { headers.set("x-amz-checksum-algorithm", "CRC32") }
        let pending: PendingUpload
        do {
            pending = try encryptor.beginMultipartObject(identity)
        } catch {
            throw failure(error, identity, request)
        }
        try Self.checkMetadataBudget(user: Self.userMetadataSize(headers), gateway: pending.metadata)
        for (name, value) in pending.metadata.fields { headers.set(name, value) }
        let answer = try backend.fetch(BackendRequest(method: "POST", bucket: identity.bucket, key: identity.key, query: request.query,
                                                      headers: headers, body: .bytes([]), payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning),
                                       maxBodySize: Self.maxDocumentSize)
        guard answer.status == 200 else { return try respondBuffered(status: answer.status, headers: answer.headers, body: answer.body, request: request, response: response) }
        var tree = try MultipartDocuments.parseBackend(answer.body, root: "InitiateMultipartUploadResult")
        guard let backendID = tree.root.child("UploadId")?.text, !backendID.isEmpty else {
            throw S3Error.internalError().withLog("the backend's InitiateMultipartUploadResult has no UploadId")
        }
        let uploadID: String
        do {
            uploadID = try encryptor.uploadID(for: pending, backendUploadID: backendID)
        } catch {
            throw failure(error, identity, request)
        }
        tree.root.setText(uploadID, of: "UploadId")
        var fields = answer.headers.filter { !$0.name.lowercased().hasPrefix("x-amz-checksum-") }
        fields.removeAll { $0.name.lowercased() == "content-length" }
        return try respondBuffered(status: 200, headers: fields, body: tree.bytes, request: request, response: response)
    }

    // MARK: UploadPart

    private func uploadPart(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        let upload = try openUpload(request, identity)
        let partNumber = try Self.partNumber(request)
        guard let declared = body.declaredLength else { throw S3Error.missingContentLength() }
        guard declared <= PassthroughHandler.maxSingleUpload else { throw S3Error.entityTooLarge() }
        return try sendPart(request, identity: identity, upload: upload, partNumber: partNumber, plaintext: body, length: Int(declared),
                            response: response) { fields, md5 in
            // Without the MD5 (the client verified the part with a flexible checksum), the part's ETag is the one
            // ListParts shows for it: the backend's, visibly not an MD5.
            fields.set("ETag", md5.map(ClientETag.md5) ?? ClientETag.opaque(fields["ETag"]))
            // The part's flexible checksum (of the plaintext, verified on the way), as S3 echoes it.
            if let checksum = body.verifiedChecksum { fields.set(checksum.algorithm.headerName, checksum.base64) }
        }
    }

    /// The backend UploadPart that seals `plaintext` (exactly `length` bytes) as part `partNumber`, and its body,
    /// which knows the part's plaintext MD5 once the backend has read it all when `hashingPlaintext`.
    private func sealedPart(_ request: S3Request, identity: ObjectIdentity, upload: MultipartUpload, partNumber: Int,
                            plaintext: RequestBody, length: Int, hashingPlaintext: Bool) throws -> (request: BackendRequest, body: SealingBody) {
        let begun: (header: [UInt8], sealer: ChunkSealer)
        do {
            begun = try encryptor.beginPart(of: upload, partNumber: partNumber, plaintextLength: length)
        } catch {
            throw failure(error, identity, request)
        }
        let storedLength = PartHeader.size + upload.chunkLayout.ciphertextLength(plaintextLength: length)
        let body = SealingBody(source: plaintext, sealer: begun.sealer, ciphertextLength: storedLength,
                               hashingPlaintext: hashingPlaintext, prefix: begun.header)
        var headers = Self.partHeaders(request.head.headers)
        let stream = backend.streamedUpload(body, length: storedLength, headers: &headers)
        let forwarded = BackendRequest(method: "PUT", bucket: identity.bucket, key: identity.key,
                                       query: Self.backendQuery(request.query, uploadID: upload.backendUploadID, partNumber: partNumber),
                                       headers: headers, body: stream.body, payloadHash: stream.payloadHash,
                                       signing: request.identity.backendSigning)
        return (forwarded, body)
    }

    /// UploadPart's backend exchange. When the part's ETag is its plaintext MD5 (`ClientETag.partETagIsPlaintextMD5`),
    /// the MD5 comes from the verifying body, which hashes with its other digests — on their worker thread for parts
    /// of a megabyte and more, overlapping the sealing and sending here — and only once even when the client sent a
    /// Content-MD5. Otherwise no MD5 is computed and `answer` gets nil.
    private func sendPart(_ request: S3Request, identity: ObjectIdentity, upload: MultipartUpload, partNumber: Int, plaintext: VerifyingBody,
                          length: Int, response: ResponseWriter,
                          answer: @escaping (inout HTTPFields, [UInt8]?) throws -> Void) throws -> BackendResult {
        let declaration = plaintext.declaration
        let wantsMD5 = ClientETag.partETagIsPlaintextMD5(contentMD5: declaration.contentMD5 != nil, checksum: declaration.checksum)
        if wantsMD5 { plaintext.computePayloadMD5() }
        let (forwarded, source) = try sealedPart(request, identity: identity, upload: upload, partNumber: partNumber,
                                                 plaintext: plaintext, length: length, hashingPlaintext: false)
        defer { observer.encryptionWork(operation: request.operation.name, duration: source.sealTime) }
        return try backend.relay(forwarded, to: response, requestID: request.context.requestID) { status, fields in
            for name in fields.map(\.name) where name.lowercased().hasPrefix("x-amz-checksum-") { fields.remove(name) }
            guard (200..<300).contains(status) else { return status }
            // The backend answers after the whole body, so it passed its checks: the MD5 is final, or the client's
            // checksum was verified. Anything else is a bug, not a part to acknowledge.
            let md5 = plaintext.payloadMD5
            guard wantsMD5 ? md5 != nil : plaintext.verifiedChecksum != nil else {
                throw S3Error.internalError().withLog("the backend accepted part \(partNumber) before its body ended")
            }
            try answer(&fields, md5)
            return status
        }
    }

    // MARK: UploadPartCopy

    private func uploadPartCopy(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        let upload = try openUpload(request, identity)
        let partNumber = try Self.partNumber(request)
        try Self.drain(body)
        guard let source = CopySource.parse(request.head.headers["x-amz-copy-source"]) else {
            throw S3Error.invalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
        }
        let sourceIdentity = ObjectIdentity(bucket: source.bucket, key: source.key)
        let versionQuery = source.versionID.map { [QueryParameter(name: "versionId", value: $0, hasValue: true)] } ?? []
        let sourceAccess = ObjectAccessHeaders.copySource(request.head.headers)
        let stored = try backend.fetch(BackendRequest(method: "HEAD", bucket: source.bucket, key: source.key, query: versionQuery,
                                                      headers: sourceAccess, body: .none, payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning), maxBodySize: 0)
        guard (200..<300).contains(stored.status) else {
            return try respondWithReadError(bucket: source.bucket, key: source.key, versionQuery: versionQuery, headers: sourceAccess,
                                            request: request, response: response)
        }
        guard let storedLength = stored.header("Content-Length").flatMap({ Int($0) }), let backendETag = stored.header("ETag") else {
            throw S3Error.internalError().withLog("the backend's HEAD of \(source.bucket)/\(source.key) lacks Content-Length or ETag")
        }
        let reading = try sourceReading(request, sourceIdentity, stored: stored, storedLength: storedLength)
        if ConditionalRequest.evaluateCopySource(headers: request.head.headers,
                                                 etags: ClientETag.seen(primary: reading.visibleETag, backendETag: backendETag),
                                                 lastModified: stored.header("Last-Modified")) != .proceed {
            throw S3Error.preconditionFailed()
        }
        // x-amz-copy-source-range is inclusive and must lie inside the source's plaintext.
        var first = 0, last = reading.plaintextLength - 1
        if let rangeText = request.head.headers["x-amz-copy-source-range"] {
            guard case .closed(let a, let b)? = ByteRange.parse(rangeText), b < reading.plaintextLength else {
                throw S3Error.invalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy, inside the source object of \(reading.plaintextLength) bytes.")
            }
            (first, last) = (a, b)
        }
        let length = last - first + 1
        guard length <= PassthroughHandler.maxSingleUpload else { throw S3Error.entityTooLarge() }

        var pin = sourceAccess
        pin.set("If-Match", backendETag)
        let plaintext: RequestBody
        var copySource: PartCopySource?
        if length == 0 {
            plaintext = EmptyBody()
        } else {
            let (backendRange, makeReader) = try reading.plan(first: first, last: last, request: request, handler: self,
                                                              identity: sourceIdentity, storedLength: storedLength, backendETag: backendETag,
                                                              versionQuery: versionQuery)
            var headers = pin
            if let backendRange { headers.set("Range", backendRange) }
            let get = BackendRequest(method: "GET", bucket: source.bucket, key: source.key, query: versionQuery, headers: headers,
                                     body: .none, payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning)
            let pipe = PartCopySource(length: length, request: get, backend: backend, makeReader: makeReader)
            copySource = pipe
            plaintext = pipe
        }
        defer { copySource?.close() }
        let (forwarded, sealed) = try sealedPart(request, identity: identity, upload: upload, partNumber: partNumber,
                                                 plaintext: plaintext, length: length, hashingPlaintext: true)
        let answer: HTTPClientResponse
        do {
            answer = try backend.fetch(forwarded, maxBodySize: Self.maxDocumentSize)
        } catch {
            copySource?.close()
            if let tamper = copySource?.failure as? EncryptionError {
                observer.tamperDetected(bucket: sourceIdentity.bucket, key: sourceIdentity.key, requestID: request.context.requestID.text, error: tamper)
            }
            throw error
        }
        observer.encryptionWork(operation: request.operation.name, duration: sealed.sealTime)
        guard (200..<300).contains(answer.status) else {
            return try respondBuffered(status: answer.status, headers: answer.headers, body: answer.body, request: request, response: response)
        }
        guard let md5 = sealed.plaintextMD5 else {
            throw S3Error.internalError().withLog("the backend accepted part \(partNumber) before its body ended")
        }
        let result = XMLTree.Element(name: "CopyPartResult", children: [
            XMLTree.Element(name: "LastModified", text: Self.now()),
            XMLTree.Element(name: "ETag", text: "\"\(Encoding.hex(md5))\""),
        ])
        var fields: [(name: String, value: String)] = [(name: "Content-Type", value: "application/xml")]
        if let version = stored.header("x-amz-version-id") { fields.append((name: "x-amz-copy-source-version-id", value: version)) }
        return try respondBuffered(status: 200, headers: fields, body: XMLTree(root: result).bytes, request: request, response: response)
    }

    /// How to read a copy source: its plaintext size and client-visible ETag, and how to plan a range of it.
    struct SourceReading {
        var plaintextLength: Int
        var visibleETag: String
        var metadata: EncryptionMetadata?
        var dataKey: DataKey?
        var geometry: MultipartGeometry?

        /// The backend range covering plaintext `first…last` and the decryptor for it (nil: a plain source).
        func plan(first: Int, last: Int, request: S3Request, handler: EncryptedObjectHandler, identity: ObjectIdentity,
                  storedLength: Int, backendETag: String, versionQuery: [QueryParameter]) throws
            -> (String?, (@Sendable () throws -> any RangeDecryptor)?) {
            let range = "bytes=\(first)-\(last)"
            guard let metadata else { return (range, nil) }
            let encryptor = handler.encryptor
            switch metadata.layout {
            case .single:
                let plan: ReadPlan
                do {
                    plan = try ReadPlan(storedLength: storedLength, layout: metadata.chunkLayout, rangeHeader: range)
                } catch {
                    throw handler.failure(error, identity, request)
                }
                guard let dataKey else { throw S3Error.internalError().withLog("encrypted source without its data key") }
                return (plan.backendRange, { try PlannedReader(plan: plan, encryptor: encryptor, metadata: metadata, dataKey: dataKey) })
            case .multipart:
                guard let geometry, let dataKey else { throw S3Error.internalError().withLog("multipart source without geometry") }
                let setup = try handler.multipartSetup(identity, metadata: metadata, storedLength: storedLength, backendETag: backendETag,
                                                       versionQuery: versionQuery, rangeHeader: range, geometry: geometry,
                                                       access: ObjectAccessHeaders.copySource(request.head.headers), request: request)
                return (setup.plan.backendRange, {
                    try MultipartRangeReader(plan: setup.plan, geometry: setup.geometry, headers: setup.headers, encryptor: encryptor,
                                             metadata: metadata, dataKey: dataKey)
                })
            }
        }
    }

    private func sourceReading(_ request: S3Request, _ identity: ObjectIdentity, stored: HTTPClientResponse,
                               storedLength: Int) throws -> SourceReading {
        let backendETag = stored.header("ETag") ?? ""
        guard let metadata = try readMetadata(stored.headers, identity, request) else {
            guard allowPlaintextReads else { throw S3Error.plaintextObjectRefused() }
            return SourceReading(plaintextLength: storedLength, visibleETag: backendETag)
        }
        let dataKey: DataKey
        do {
            dataKey = try encryptor.dataKey(of: metadata, identity: identity)
        } catch {
            throw failure(error, identity, request)
        }
        let visible = ClientETag.encrypted(metadata, backendETag: backendETag)
        switch metadata.layout {
        case .single:
            do {
                return SourceReading(plaintextLength: try metadata.chunkLayout.plaintextLength(ciphertextLength: storedLength),
                                     visibleETag: visible, metadata: metadata, dataKey: dataKey)
            } catch {
                throw failure(error, identity, request)
            }
        case .multipart:
            let versionQuery = stored.header("x-amz-version-id").map { [QueryParameter(name: "versionId", value: $0, hasValue: true)] } ?? []
            let setup = try multipartSetup(identity, metadata: metadata, storedLength: storedLength, backendETag: backendETag,
                                           versionQuery: versionQuery, rangeHeader: nil, geometry: nil,
                                           access: ObjectAccessHeaders.copySource(request.head.headers), request: request)
            return SourceReading(plaintextLength: setup.geometry.plaintextLength, visibleETag: visible, metadata: metadata,
                                 dataKey: dataKey, geometry: setup.geometry)
        }
    }

    /// The geometry, plan and checked part headers for a read of a multipart object (docs/FORMAT.md §9.2): a few
    /// 36-byte ranged GETs, each pinned to the object version the HEAD saw, fewer when the geometry is known
    /// (`geometry`, else `multipartGeometries`, which learns the result). `access`: what every read of the object
    /// carries (`ObjectAccessHeaders`: the object's own, or a copy source's).
    func multipartSetup(_ identity: ObjectIdentity, metadata: EncryptionMetadata, storedLength: Int, backendETag: String,
                        versionQuery: [QueryParameter], rangeHeader: String?, geometry: MultipartGeometry?,
                        access: HTTPFields, request: S3Request) throws -> MultipartReadSetup {
        let cacheKey = backendETag.isEmpty ? nil
            : MultipartGeometryCache.Key(bucket: identity.bucket, key: identity.key, backendETag: backendETag, storedLength: storedLength)
        do {
            var known = geometry
            if known == nil, let cacheKey { known = multipartGeometries.geometry(cacheKey, layout: try metadata.chunkLayout) }
            let setup = try MultipartReadSetup.prepare(storedLength: storedLength, chunkLayout: metadata.chunkLayout,
                                                       partCountHint: ListingRewriter.partCount(backendETag), rangeHeader: rangeHeader,
                                                       geometry: known) { offset in
                var headers = access
                headers.set("Range", "bytes=\(offset)-\(offset + PartHeader.size - 1)")
                headers.set("If-Match", backendETag)
                let answer = try backend.fetch(BackendRequest(method: "GET", bucket: identity.bucket, key: identity.key, query: versionQuery,
                                                              headers: headers, body: .none, payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning),
                                               maxBodySize: PartHeader.size)
                if answer.status == 412 { throw S3Error.objectChanged() }
                guard answer.status == 206, answer.body.count == PartHeader.size else {
                    throw S3Error.internalError().withLog("a part header read of \(identity.bucket)/\(identity.key) answered \(answer.status) with \(answer.body.count) bytes")
                }
                return answer.body
            }
            // Remember the geometry with the headers this read checked (`setup.headers` were verified against it).
            let learned = setup.geometry.knowing(setup.headers)
            if let cacheKey, learned != known { multipartGeometries.store(cacheKey, .geometry(learned)) }
            return setup
        } catch let error as EncryptionError {
            throw failure(error, identity, request)
        }
    }

    /// Now as S3 writes dates in XML (`2009-10-12T17:50:30.123Z`), by Shared's fixed-format writer.
    static func now() -> String {
        let seconds = Date().timeIntervalSince1970
        return HTTPDate.formatISO8601(Int64(seconds.rounded(.down)), milliseconds: Int(seconds.truncatingRemainder(dividingBy: 1) * 1000))
    }

    // MARK: CompleteMultipartUpload

    private func completeMultipartUpload(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        let clientID = try Self.uploadIDParameter(request)
        guard let backendID = ObjectEncryptor.backendUploadID(of: clientID), let layout = ObjectEncryptor.chunkLayout(of: clientID) else {
            throw S3Error.noSuchUpload("Complete the upload with the upload id CreateMultipartUpload returned; the backend's own upload id (as ListMultipartUploads shows it) can only be listed or aborted through an encrypting gateway.")
        }
        let document: [UInt8]
        do {
            document = try body.readAll(limit: MultipartDocuments.maxCompleteBodySize)
        } catch is BodyTooLarge {
            throw S3Error.malformedXML("the CompleteMultipartUpload body is larger than \(MultipartDocuments.maxCompleteBodySize) bytes")
        }
        let requested = try MultipartDocuments.parseCompleteRequest(document)

        // What the backend holds for this upload, by part number.
        var stored: [Int: MultipartDocuments.PartsPage.Part] = [:]
        var marker: Int?
        repeat {
            let page = try listBackendParts(identity, backendID: backendID, marker: marker, request: request)
            for part in page.parts { stored[part.partNumber] = part }
            marker = page.isTruncated ? page.nextPartNumberMarker : nil
        } while marker != nil
        var listed: [MultipartDocuments.PartsPage.Part] = []
        for part in requested {
            guard let match = stored[part.partNumber] else {
                throw S3Error.invalidPart("Part \(part.partNumber) was not uploaded to this upload (or was uploaded and then replaced).")
            }
            listed.append(match)
        }
        switch PartListCheck.check(listed.map { ($0.partNumber, $0.size) }, layout: layout) {
        case .success: break
        case .failure(.notGatewayPart(let number, let size)):
            throw S3Error.invalidPart("Part \(number) (\(size) bytes stored) was not written through an encrypting gateway.")
        case .failure(.ambiguousSizes(let number)):
            throw S3Error.invalidPart("The parts before part \(number) have sizes an encrypting gateway cannot locate safely in ranged reads; upload the parts with equal sizes (the last may be smaller).")
        }

        // The SSE-C key too: S3's documentation requires it on the Complete of an upload created with a checksum
        // algorithm, as BACKEND_UPLOAD_CHECKSUM creates them (not checked against AWS here).
        var headers = ObjectAccessHeaders.object(request.head.headers)
        for name in ["If-None-Match", "If-Match"] {
            if let value = request.head.headers[name] { headers.set(name, value) }
        }
        // Conditions compare the ETags clients see, then pin the object checked on the backend (as PutObject).
        headers = try conditionalWriteHeaders(headers, identity: identity, request: request)
        // Parts the backend verified a CRC32 for (`BACKEND_UPLOAD_CHECKSUM`) are listed with it, as S3 requires of an
        // upload created with the algorithm.
        let xml = MultipartDocuments.completeRequest(listed.map { ($0.partNumber, $0.etag) }, checksumsCRC32: listed.map(\.checksumCRC32))
        let answer = try backend.fetch(BackendRequest(method: "POST", bucket: identity.bucket, key: identity.key,
                                                      query: Self.backendQuery(request.query, uploadID: backendID, partNumber: nil),
                                                      headers: headers, body: .bytes(xml),
                                                      payloadHash: Encoding.hex(Digest.hash(.sha256, xml)), signing: request.identity.backendSigning),
                                       maxBodySize: Self.maxDocumentSize)
        guard answer.status == 200, var tree = try? XMLTree.parse(answer.body), tree.root.name == "CompleteMultipartUploadResult" else {
            // Errors (including S3's "200 with an Error document") are the backend's to explain.
            return try respondBuffered(status: answer.status, headers: answer.headers, body: answer.body, request: request, response: response)
        }
        // Ceph answers an empty ETag; the multipart ETag is the MD5 of the parts' MD5s, then "-N".
        let etag = tree.root.child("ETag")?.text ?? ""
        if etag.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).isEmpty {
            tree.root.setText(Self.multipartETag(listed.map(\.etag)), of: "ETag")
        }
        tree.root.children.removeAll { $0.name.hasPrefix("Checksum") }
        let fields = answer.headers.filter { !$0.name.lowercased().hasPrefix("x-amz-checksum-") && $0.name.lowercased() != "etag" }
        return try respondBuffered(status: 200, headers: fields, body: tree.bytes, request: request, response: response)
    }

    /// S3's multipart ETag over the backend's part ETags: `"hex(MD5(MD5_1 || … || MD5_N))-N"`.
    static func multipartETag(_ partETags: [String]) -> String {
        var digests: [UInt8] = []
        for etag in partETags {
            let hex = etag.trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
            digests += Encoding.fromHex(String(hex.prefix(32))) ?? []
        }
        return "\"\(Encoding.hex(Digest.hash(.md5, digests)))-\(partETags.count)\""
    }

    private func listBackendParts(_ identity: ObjectIdentity, backendID: String, marker: Int?,
                                  request: S3Request) throws -> MultipartDocuments.PartsPage {
        var query = [QueryParameter(name: "uploadId", value: backendID, hasValue: true),
                     QueryParameter(name: "max-parts", value: "1000", hasValue: true)]
        if let marker { query.append(QueryParameter(name: "part-number-marker", value: String(marker), hasValue: true)) }
        let answer = try backend.fetch(BackendRequest(method: "GET", bucket: identity.bucket, key: identity.key, query: query,
                                                      headers: ObjectAccessHeaders.object(request.head.headers), body: .none,
                                                      payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning),
                                       maxBodySize: Self.maxDocumentSize)
        guard answer.status == 200 else {
            if answer.status == 404 { throw S3Error.noSuchUpload() }
            throw S3Error.internalError().withLog("ListParts of \(identity.bucket)/\(identity.key) answered \(answer.status)")
        }
        return try MultipartDocuments.parsePartsPage(MultipartDocuments.parseBackend(answer.body, root: "ListPartsResult",
                                                                          alternatives: MultipartDocuments.listPartsRootAlternatives))
    }

    // MARK: AbortMultipartUpload, ListParts

    private func abortMultipartUpload(_ request: S3Request, body: VerifyingBody, response: ResponseWriter) throws -> BackendResult {
        var forwarded = request
        forwarded.query = Self.backendQuery(request.query, uploadID: try backendUploadID(request), partNumber: nil)
        return try passthrough.handle(forwarded, body: body, response: response)
    }

    private func listParts(_ request: S3Request, response: ResponseWriter) throws -> BackendResult {
        let identity = try Self.identity(of: request)
        let clientID = try Self.uploadIDParameter(request)
        let layout = ObjectEncryptor.chunkLayout(of: clientID) ?? encryptor.layout
        var headers = request.head.headers
        headers.remove("Accept-Encoding")
        let answer = try backend.fetch(BackendRequest(method: "GET", bucket: identity.bucket, key: identity.key,
                                                      query: Self.backendQuery(request.query, uploadID: try backendUploadID(request), partNumber: nil),
                                                      headers: headers, body: .none, payloadHash: SigV4.emptyPayloadHash, signing: request.identity.backendSigning),
                                       maxBodySize: Self.maxDocumentSize)
        guard answer.status == 200 else { return try respondBuffered(status: answer.status, headers: answer.headers, body: answer.body, request: request, response: response) }
        var tree = try MultipartDocuments.parseBackend(answer.body, root: "ListPartsResult",
                                                                          alternatives: MultipartDocuments.listPartsRootAlternatives)
        tree.root.setText(clientID, of: "UploadId")
        for i in tree.root.children.indices where tree.root.children[i].name == "Part" {
            var part = tree.root.children[i]
            // Plaintext sizes; the part's ETag describes ciphertext, so it is shown in a form that is visibly not an MD5.
            if let size = part.child("Size").flatMap({ MultipartDocuments.decimal($0.text) }),
               let plain = PartListCheck.plaintextLength(storedSize: size, layout: layout) {
                part.setText(String(plain), of: "Size")
            }
            if let etag = part.child("ETag")?.text {
                part.setText(ClientETag.opaque(etag), of: "ETag")
            }
            part.children.removeAll { $0.name.hasPrefix("Checksum") }
            tree.root.children[i] = part
        }
        let fields = answer.headers.filter { $0.name.lowercased() != "content-length" }
        return try respondBuffered(status: 200, headers: fields, body: tree.bytes, request: request, response: response)
    }

    // MARK: Reads (GET/HEAD of either layout)

    /// What a GET or HEAD of an encrypted object answers, decided before any body byte moves, and the decryptor
    /// of the backend range it fetches.
    struct PlannedRead {
        var status: Int
        var plaintextLength: Int
        var contentLength: Int
        var contentRange: String?
        var backendRange: String?
        var makeReader: () throws -> any RangeDecryptor
    }

    /// Single-part objects map the range onto chunks from the stored size (FORMAT.md §7); multipart objects learn
    /// their part geometry from a few part headers first (§9.2), so a HEAD of a multipart object costs two or three
    /// small backend reads, none when `multipartGeometries` knows the object. `dataKey` was unwrapped (and the
    /// metadata verified) by the caller.
    func plannedRead(_ metadata: EncryptionMetadata, dataKey: DataKey, identity: ObjectIdentity, stored: HTTPClientResponse,
                     storedLength: Int, rangeHeader: String?, geometry: MultipartGeometry? = nil,
                     request: S3Request) throws -> PlannedRead {
        let encryptor = encryptor
        switch metadata.layout {
        case .single:
            let plan: ReadPlan
            do {
                plan = try ReadPlan(storedLength: storedLength, layout: metadata.chunkLayout, rangeHeader: rangeHeader)
            } catch {
                throw failure(error, identity, request)
            }
            return PlannedRead(status: plan.status, plaintextLength: plan.plaintextLength, contentLength: plan.contentLength,
                               contentRange: plan.contentRange, backendRange: plan.backendRange) {
                try PlannedReader(plan: plan, encryptor: encryptor, metadata: metadata, dataKey: dataKey)
            }
        case .multipart:
            let setup = try multipartSetup(identity, metadata: metadata, storedLength: storedLength, backendETag: stored.header("ETag") ?? "",
                                           versionQuery: request.query.filter { $0.name == "versionId" }, rangeHeader: rangeHeader,
                                           geometry: geometry, access: ObjectAccessHeaders.object(request.head.headers), request: request)
            let plan = setup.plan
            return PlannedRead(status: plan.status, plaintextLength: plan.plaintextLength, contentLength: plan.contentLength,
                               contentRange: plan.contentRange, backendRange: plan.backendRange) {
                try MultipartRangeReader(plan: plan, geometry: setup.geometry, headers: setup.headers, encryptor: encryptor,
                                         metadata: metadata, dataKey: dataKey)
            }
        }
    }

    // MARK: Helpers

    /// The client's upload id opened for `identity`: NoSuchUpload when it is not one this gateway issued for this
    /// object; key-provider failures keep their mapping.
    func openUpload(_ request: S3Request, _ identity: ObjectIdentity) throws -> MultipartUpload {
        let clientID = try Self.uploadIDParameter(request)
        do {
            return try encryptor.openUpload(clientID, identity: identity)
        } catch where error.code == .invalidParameter {
            if ObjectEncryptor.backendUploadID(of: clientID) == nil {
                throw S3Error.noSuchUpload("This upload id was not issued by an encrypting gateway (the backend's own upload ids, as ListMultipartUploads shows them, carry no data key); start a new upload.")
            }
            throw S3Error.noSuchUpload().withLog("upload id refused: \(error.message)")
        } catch {
            throw failure(error, identity, request)
        }
    }

    /// The backend's upload id for the client's (the gateway's own, or the backend's as listed).
    private func backendUploadID(_ request: S3Request) throws -> String {
        let clientID = try Self.uploadIDParameter(request)
        return ObjectEncryptor.backendUploadID(of: clientID) ?? clientID
    }

    static func uploadIDParameter(_ request: S3Request) throws -> String {
        guard let id = request.query.first(where: { $0.name == "uploadId" })?.value, !id.isEmpty else {
            throw S3Error.invalidArgument("This operation needs an uploadId.")
        }
        return id
    }

    static func partNumber(_ request: S3Request) throws -> Int {
        guard let text = request.query.first(where: { $0.name == "partNumber" })?.value,
              let n = MultipartDocuments.decimal(text), (1...FormatV1.maxPartNumber).contains(n) else {
            throw S3Error.invalidArgument("Part number must be an integer between 1 and \(FormatV1.maxPartNumber), inclusive")
        }
        return n
    }

    /// The request's query with the backend's upload id (and the part number, when given).
    static func backendQuery(_ query: [QueryParameter], uploadID: String, partNumber: Int?) -> [QueryParameter] {
        query.map { parameter in
            var p = parameter
            if p.name == "uploadId" { p.value = uploadID; p.hasValue = true }
            if p.name == "partNumber", let partNumber { p.value = String(partNumber); p.hasValue = true }
            return p
        }
    }

    /// Client headers for a part upload: no plaintext digests, no metadata (parts carry none).
    static func partHeaders(_ headers: HTTPFields) -> HTTPFields {
        HTTPFields(uploadHeaders(headers).filter { !$0.name.lowercased().hasPrefix("x-amz-copy-source") })
    }

    /// Reads (and so verifies) a body the operation does not use; S3 ignores one, up to a point.
    static func drain(_ body: RequestBody) throws {
        do {
            _ = try body.readAll(limit: 1 << 20)
        } catch is BodyTooLarge {
            throw S3Error.invalidRequest("This operation takes no request body.")
        }
    }
}

/// A body of no bytes (an UploadPartCopy of an empty range).
final class EmptyBody: RequestBody {
    var declaredLength: Int64? { 0 }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { 0 }
}
