import Shared

/// Receives the backend's answer to the ranged GET of a `ReadPlan` and streams verified plaintext
/// to the client. The response head is written only once the backend answered with the object the
/// plan was made for (same gateway metadata); a chunk that fails authentication afterwards makes
/// the transfer fail, and the handler closes the connection: the client never gets wrong bytes.
final class DecryptingRelay: BackendResponseHandler {
    let writer: ResponseWriter
    let reader: any RangeDecryptor
    let metadata: EncryptionMetadata
    let etag: String
    private var decidedStatus = 0
    private var plaintextOut: Int64 = 0
    /// The backend answered with an error: relayed as S3 relays it (with the gateway's request id).
    private var errorRelay: ClientRelay?
    var status: Int { errorRelay?.status ?? decidedStatus }
    var bytesOut: Int64 { errorRelay?.bytesOut ?? plaintextOut }
    /// The ciphertext failed verification.
    private(set) var encryptionFailure: EncryptionError?
    private(set) var openTime: Duration = .zero
    private var pendingHead: HTTPResponseHead?
    var clientResponseStarted: Bool { writer.headWritten }
    private var finished = false
    /// Headers the handler adds to the client's response head (the checksum record).
    var extraHeaders: [(name: String, value: String)] = []

    let requestID: String

    init(writer: ResponseWriter, reader: any RangeDecryptor, metadata: EncryptionMetadata, etag: String, requestID: String) {
        self.requestID = requestID
        self.writer = writer
        self.reader = reader
        self.metadata = metadata
        self.etag = etag
    }

    func responseHead(status backendStatus: Int, headers: [(name: String, value: String)]) throws {
        if backendStatus == 412 {
            // The If-Match pinning the HEAD's ETag failed: the object was replaced in between.
            throw S3Error.objectChanged()
        }
        guard backendStatus == 200 || backendStatus == 206 else {
            let relay = ClientRelay(writer: writer, requestID: requestID) { status, fields in
                for name in fields.map(\.name) where EncryptionMetadata.isReserved(headerName: name) { fields.remove(name) }
                return status
            }
            errorRelay = relay
            try relay.responseHead(status: backendStatus, headers: headers)
            return
        }
        if backendStatus == 200 && reader.backendRange != nil {
            throw S3Error.internalError().withLog("the backend ignored the Range header of a ranged read")
        }
        let seen: EncryptionMetadata?
        do {
            seen = try EncryptionMetadata.parse(fields: headers)
        } catch {
            throw S3Error.objectChanged()
        }
        guard seen == metadata else { throw S3Error.objectChanged() }
        let extraHeaders = extraHeaders
        var fields = EncryptedResponseHeaders.clientHeaders(BackendClient.forwardableResponseHeaders(headers), etag: etag)
        if let range = reader.contentRange { fields.set("Content-Range", range) }
        for (name, value) in extraHeaders { fields.set(name, value) }
        decidedStatus = reader.status
        // Written with the first verified plaintext, so a failure in the first chunk is still a clean error response.
        pendingHead = HTTPResponseHead(status: status, headers: fields, contentLength: Int64(reader.contentLength))
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        if let errorRelay {
            try errorRelay.responseBody(bytes)
            return
        }
        try decrypt { try reader.update(bytes, emit: $0) }
        try flush()
    }

    /// Verifies the end of the planned ciphertext and writes the last plaintext.
    func finish() throws {
        if let errorRelay {
            try errorRelay.finish()
            return
        }
        try decrypt { try reader.finish(emit: $0) }
        finished = true
        try flush()
    }

    /// Verified plaintext goes straight to the client writer (which gathers small pieces itself);
    /// the head goes out with the first verified bytes.
    private func decrypt(_ body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let started = ContinuousClock.now
        defer { openTime += ContinuousClock.now - started }
        do {
            try body { plaintext in
                try self.writePendingHead()
                try self.writer.write(plaintext)
                self.plaintextOut += Int64(plaintext.count)
            }
        } catch let error as EncryptionError {
            encryptionFailure = error
            throw error
        }
    }

    private func writePendingHead() throws {
        guard let head = pendingHead else { return }
        pendingHead = nil
        try writer.writeHead(head)
    }

    private func flush() throws {
        // An empty plaintext (a zero-length object or range) still needs its head once verified.
        if finished { try writePendingHead() }
    }
}

/// Response headers of an encrypted object as clients see them.
enum EncryptedResponseHeaders {
    /// Drops the gateway's metadata and the backend's checksums (they describe ciphertext), sets the
    /// plaintext ETag; the caller sets Content-Length/Content-Range.
    static func clientHeaders(_ backend: HTTPFields, etag: String) -> HTTPFields {
        var fields = HTTPFields(backend.filter {
            let n = $0.name.lowercased()
            return !EncryptionMetadata.isReserved(headerName: n) && !n.hasPrefix("x-amz-checksum-")
                && n != "content-range" && n != "content-md5" && n != "etag"
        })
        fields.set("ETag", etag)
        return fields
    }
}

extension EncryptedResponseHeaders {
    /// The recorded flexible checksum (`x-amz-checksum-<alg>`, `x-amz-checksum-type: FULL_OBJECT`), as S3
    /// answers a read of the whole object with `x-amz-checksum-mode: ENABLED`; none for ranges (S3 gives none
    /// either) and objects without a record. Call after `dataKey(of:)` verified the metadata.
    static func checksum(_ metadata: EncryptionMetadata, requestHeaders: HTTPFields, wholeObject: Bool) -> [(name: String, value: String)] {
        guard wholeObject, requestHeaders["x-amz-checksum-mode"]?.uppercased() == "ENABLED", let record = metadata.checksum,
              let algorithm = ChecksumAlgorithm(rawValue: record.algorithm) else { return [] }
        return [(algorithm.headerName, ChecksumValue(algorithm: algorithm, bytes: record.value).base64), ("x-amz-checksum-type", "FULL_OBJECT")]
    }
}
