import Foundation
import Shared
import Synchronization

/// Receives the backend's answer to the ranged GET of a `ReadPlan` and streams verified plaintext
/// to the client. The response head is written only once the backend answered with the object the
/// plan was made for (same gateway metadata); a chunk that fails authentication afterwards makes
/// the transfer fail, and the handler closes the connection: the client never gets wrong bytes.
///
/// A content of `backgroundThreshold` bytes or more is written to the client on a second thread
/// (`BackgroundStage`), so that receiving from the backend and decrypting (libcurl's thread, the caller's)
/// overlaps sending: chunks are decrypted straight from libcurl's buffer into the stage's few bounded buffers,
/// which the stage sends a whole buffer per write, except the first verified chunk (with the head), which it is
/// handed at once so that the client's first byte does not wait for a full buffer. While that stage runs, the client's side of the relay (the
/// writer, what was written) belongs to it; `finish()` ends it, and a verification failure, or reading
/// `clientResponseStarted`, `bytesOut`, `encryptionFailure` or `openTime`, stops it first (the exchange reads
/// `clientResponseStarted` when the backend transfer fails), so after any failure the caller owns the writer
/// again and no thread is left.
///
/// While a stage runs for a content of `openingShareThreshold` or more, every other whole chunk the reader can hand
/// over (`ChunkDeferral`; single-part and multipart readers) is not decrypted here: its ciphertext is copied into the
/// stage's buffer where its plaintext goes, and the stage's thread opens it there before it sends that buffer.
/// Receiving and decrypting everything on one thread bounded a single stream (issue 12: that thread was busy
/// 0.49–0.53 s/GiB, the sending one about 0.2; now each about 0.36–0.39); the copy costs less than the decryption it
/// moves. A chunk that fails there stops the stage before its buffer is sent.
///
/// A second thread only pays while a core would otherwise idle (it costs a hand-off per buffer, ≈ 4 000 wake-ups
/// a side per GiB). So a long read starts one only while the long reads in flight and the second threads already
/// running leave a core for it (`StageRule`, counted by `BackgroundSlots`), and a read that has one gives it up
/// mid-stream once more long reads arrive than that allows: it waits until the stage has sent what it holds and
/// goes on inline. Inline reads decrypt into a `SendBatch` of the stage's buffer size, so they too send a whole
/// buffer per write, not a chunk per write.
final class DecryptingRelay: BackendResponseHandler {
    /// Contents at least this long are decrypted and sent on a second thread.
    static let backgroundThreshold = 1 << 20
    /// Buffers of verified plaintext between the decrypting and the sending thread, and their size: four
    /// default chunks each (one write per buffer), 768 KiB in flight per stream.
    static let backgroundDepth = 3
    static let backgroundBufferSize = 256 << 10
    /// Contents at least this long also share their decryption with the stage's thread. A shorter one (a 1 MiB
    /// range) is over before that pays for a second cipher context and a hand-off per chunk.
    static let openingShareThreshold = 8 << 20
    /// `openingShareThreshold`, unless a test sets it.
    var shareOpeningFrom = DecryptingRelay.openingShareThreshold

    let writer: ResponseWriter
    let reader: any RangeDecryptor
    let metadata: EncryptionMetadata
    let etag: String
    /// Whether a long content may use the second thread (tests compare both ways).
    var background = true
    /// Where a relay counts its long read and takes its permission to use a second thread.
    var slots = BackgroundSlots.shared
    private var holdsSlot = false
    /// This relay's long content is counted in `slots`' streams.
    private var countsStream = false
    private var decidedStatus = 0
    private var plaintextOut: Int64 = 0
    /// The backend answered with an error: relayed as S3 relays it (with the gateway's request id).
    private var errorRelay: ClientRelay?
    var status: Int { errorRelay?.status ?? decidedStatus }
    var bytesOut: Int64 {
        stopStage()
        return errorRelay?.bytesOut ?? plaintextOut
    }
    /// The ciphertext failed verification.
    var encryptionFailure: EncryptionError? {
        stopStage()
        return failure
    }
    private var failure: EncryptionError?
    var openTime: Duration {
        stopStage()
        return decryptTime + (stageOpening?.time ?? .zero)
    }
    private var decryptTime: Duration = .zero
    /// The chunks handed to the stage's thread, while one runs.
    private var stageOpening: StageOpening?
    private var pendingHead: HTTPResponseHead?
    var clientResponseStarted: Bool {
        stopStage()
        return writer.headWritten
    }
    private var finished = false
    /// Headers the handler adds to the client's response head (the checksum record).
    var extraHeaders: [(name: String, value: String)] = []
    /// Decrypts and writes on a second thread (a long content, from its head on).
    private var stage: BackgroundStage?
    /// A long content without a stage gathers its plaintext here, to be sent a buffer per write.
    private var batch: SendBatch?
    /// The stage ended (finished, failed or stopped): later input is refused.
    private var stageEnded = false
    /// Verified plaintext has been queued on the stage or gathered in the batch.
    private var queuedAny = false
    /// True while a stage runs (for tests).
    var decryptsInBackground: Bool { stage != nil && !stageEnded }
    /// The stage, if one was started (for tests: its thread's end).
    var backgroundStage: BackgroundStage? { stage }
    /// Chunks handed to the stage's thread to open (for tests).
    var chunksOpenedOnStage: Int { stageOpening?.handedOver ?? 0 }

    let requestID: RequestID

    init(writer: ResponseWriter, reader: any RangeDecryptor, metadata: EncryptionMetadata, etag: String, requestID: RequestID) {
        self.requestID = requestID
        self.writer = writer
        self.reader = reader
        self.metadata = metadata
        self.etag = etag
    }

    deinit {
        // Every path reads one of the accessors above or calls finish(); this only guards against a new one that does not.
        if !stageEnded { stage?.cancel() }
        if holdsSlot { slots.release() }
        if countsStream { slots.streamEnded() }
    }

    func responseHead(status backendStatus: Int, headers: [(name: String, value: String)]) throws {
        try responseHead(status: backendStatus, headers: headers, metadataChecked: false)
    }

    /// `metadataChecked`: the caller made this relay's `metadata` from these very headers (the single-round-trip
    /// GET decides on the answer's own head), so parsing them again to compare is skipped.
    func responseHead(status backendStatus: Int, headers: [(name: String, value: String)], metadataChecked: Bool) throws {
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
        if !metadataChecked {
            let seen: EncryptionMetadata?
            do {
                seen = try EncryptionMetadata.parse(fields: headers)
            } catch {
                throw S3Error.objectChanged()
            }
            guard seen == metadata else { throw S3Error.objectChanged() }
        }
        let extraHeaders = extraHeaders
        var fields = EncryptedResponseHeaders.clientHeaders(forwardingFrom: headers, etag: etag)
        if let range = reader.contentRange { fields.set("Content-Range", range) }
        for (name, value) in extraHeaders { fields.set(name, value) }
        decidedStatus = reader.status
        // Written with the first verified plaintext, so a failure in the first chunk is still a clean error response.
        pendingHead = HTTPResponseHead(status: status, headers: fields, contentLength: Int64(reader.contentLength))
        guard reader.contentLength >= Self.backgroundThreshold else { return }
        slots.streamStarted()
        countsStream = true
        if background && slots.tryAcquire() {
            holdsSlot = true
            // Weak: the stage's thread must not keep the relay alive (its deinit cancels the stage).
            if reader.contentLength >= shareOpeningFrom { stageOpening = StageOpening() }
            stage = BackgroundStage(depth: Self.backgroundDepth, bufferSize: Self.backgroundBufferSize) { [weak self] plaintext in
                guard let self else { throw BackgroundStage.Stopped() }
                // A stage given up before any chunk verified hands over an empty buffer: that must not send the head.
                guard !plaintext.isEmpty else { return }
                try self.send(plaintext)
            }
        } else {
            batch = SendBatch(size: Self.backgroundBufferSize)
        }
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        if let errorRelay {
            try errorRelay.responseBody(bytes)
            return
        }
        if holdsSlot, slots.tryYield() {
            try yieldStage()
        }
        if let stage, batch == nil {
            guard !stageEnded else { throw failure ?? BackgroundStage.Stopped() }
            // The stage throws only once it has stopped: its consumer's error, or `Stopped` after stopStage().
            do {
                // Made per piece rather than kept, so that its closures need not hold the relay (nor form a cycle).
                let deferral = stageOpening.map { opening in
                    ChunkDeferral(wants: { opening.takesTurn() }, take: { try opening.queue($0, on: stage) })
                }
                try decrypt {
                    try reader.update(bytes, space: { try stage.space(minimum: $0) }, emit: { try queue($0, on: stage) },
                                      deferring: deferral)
                }
            } catch {
                stopStage()
                throw error
            }
            return
        }
        if let batch {
            try decrypt {
                try reader.update(bytes, space: { try batch.space(minimum: $0, send: send) }, emit: { try gather($0, in: batch) })
            }
            return
        }
        try decrypt { try reader.update(bytes, emit: send) }
        try flush()
    }

    /// Verifies the end of the planned ciphertext and writes the last plaintext.
    func finish() throws {
        defer { endStream() }
        if let errorRelay {
            try errorRelay.finish()
            return
        }
        if let stage, batch == nil {
            guard !stageEnded else { throw failure ?? BackgroundStage.Stopped() }
            do {
                try decrypt { try reader.finish(emit: { try queue($0, on: stage) }) }
            } catch {
                stopStage()
                throw error
            }
            // Waits until the stage has opened and written everything.
            defer { stageStopped() }
            try finishStage(stage)
            finished = true
            return
        }
        if let batch {
            try decrypt { try reader.finish(emit: { try gather($0, in: batch) }) }
            try batch.flush(send: send)
        } else {
            try decrypt { try reader.finish(emit: send) }
        }
        finished = true
        try flush()
    }

    /// Runs a step of the reader (timed); remembers a verification failure.
    private func decrypt(_ body: () throws -> Void) throws {
        let started = ContinuousClock.now
        defer { decryptTime += ContinuousClock.now - started }
        do {
            try body()
        } catch let error as EncryptionError {
            failure = error
            throw error
        }
    }

    /// Verified plaintext goes straight to the client writer (which gathers small pieces itself);
    /// the head goes out with the first verified bytes. On the stage's thread while one runs.
    private func send(_ plaintext: UnsafeRawBufferPointer) throws {
        try writePendingHead()
        try writer.write(plaintext)
        plaintextOut += Int64(plaintext.count)
    }

    /// Plaintext the reader decrypted into the stage's space joins the stream as it is; any other (a range's
    /// first chunk past its skipped bytes, a final chunk, a reader with its own buffer) is copied in. The first
    /// is handed over at once: the head and the first bytes go out while the next chunks arrive.
    private func queue(_ plaintext: UnsafeRawBufferPointer, on stage: BackgroundStage) throws {
        if plaintext.baseAddress == stage.nextByte {
            try stage.commit(plaintext.count)
        } else {
            try stage.submit(plaintext)
        }
        if !queuedAny && !plaintext.isEmpty {
            queuedAny = true
            try stage.flush()
        }
    }

    /// Verified plaintext of a long content sent inline joins the batch; the first goes out at once (with the
    /// head), as with a stage.
    private func gather(_ plaintext: UnsafeRawBufferPointer, in batch: SendBatch) throws {
        try batch.add(plaintext, send: send)
        if !queuedAny && !plaintext.isEmpty {
            queuedAny = true
            try batch.flush(send: send)
        }
    }

    /// Gives the second thread up mid-stream (`slots.tryYield()` took its slot back): waits until the stage has
    /// sent everything queued, then goes on inline with a batch. A chunk the opener is still decrypting into the
    /// stage's space stays valid there (the stage, and its buffers, live as long as the relay) and is copied into
    /// the batch once it verifies.
    private func yieldStage() throws {
        holdsSlot = false
        guard let stage, !stageEnded else { return }
        stageEnded = true
        // Its consumer's error (the client went away, a chunk handed over failed) ends the transfer here, as it
        // would on the stage.
        try finishStage(stage)
        batch = SendBatch(size: Self.backgroundBufferSize)
    }

    /// Lets the stage open and send what it holds and stop; a chunk handed over that failed is this relay's
    /// verification failure.
    private func finishStage(_ stage: BackgroundStage) throws {
        do {
            try stage.finish()
        } catch let error as EncryptionError {
            failure = error
            throw error
        }
    }

    /// Ends the stage, dropping what it has not consumed (a failure path: the transfer is over).
    private func stopStage() {
        guard let stage, !stageEnded else { return }
        stage.stop()
        stageStopped()
    }

    /// The stage's thread is done with the relay: later input is refused and the slot goes back.
    private func stageStopped() {
        stageEnded = true
        if holdsSlot {
            holdsSlot = false
            slots.release()
        }
    }

    /// The long read is over (finished or failed): it no longer counts against other reads' second threads.
    private func endStream() {
        guard countsStream else { return }
        countsStream = false
        slots.streamEnded()
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

/// Which chunks of a long read go to the stage's thread to be opened there (every other one offered; the first
/// stays with the receiving thread, so the head goes out with plaintext opened at once), and the time that thread
/// spent opening them. Apart from the relay: the stage's thread touches only this and the chunks.
private final class StageOpening {
    private var turn = 0
    /// Chunks queued for the stage's thread.
    private(set) var handedOver = 0
    /// Written by the stage's thread, read once it stopped.
    private(set) var time: Duration = .zero

    func takesTurn() -> Bool {
        turn += 1
        return turn % 2 == 0
    }

    /// A chunk the reader handed over: its ciphertext lies at the stage's next byte; the stage's thread opens it
    /// there before it sends that buffer (a failure stops the stage, and the producer's next step throws it).
    func queue(_ chunk: DeferredChunk, on stage: BackgroundStage) throws {
        guard UnsafeRawPointer(chunk.target.baseAddress) == stage.nextByte else {
            throw EncryptionError(.internalFailure, "a chunk was handed over outside the stage's buffer")
        }
        handedOver += 1
        try stage.commit(chunk.target.count, finishing: { [self] in
            let started = ContinuousClock.now
            defer { time += ContinuousClock.now - started }
            try chunk.open()
        })
    }
}

/// Response headers of an encrypted object as clients see them.
enum EncryptedResponseHeaders {
    /// Drops the gateway's metadata and the backend's checksums (they describe ciphertext), sets the
    /// plaintext ETag; the caller sets Content-Length/Content-Range.
    static func clientHeaders(_ backend: HTTPFields, etag: String) -> HTTPFields {
        var fields = HTTPFields(withoutCiphertextFields(backend.entries, extra: 1))
        fields.add("ETag", etag)
        return fields
    }

    /// `clientHeaders` of a backend answer's headers: what describes the ciphertext (the dozen `x-amz-meta-s3eg-*`
    /// headers of an encrypted object's answer among them) goes first, in one pass with one cheap check per header,
    /// so that the forwarding rules' per-name comparisons do not run on it (issue 12: this ran as three filters,
    /// each growing its array, about a sixth of an encrypted 4 KiB GET's own work). Dropping some names before the
    /// rules gives what dropping them after gives: the rules decide on each name alone (and `Connection`'s tokens).
    static func clientHeaders(forwardingFrom backend: [(name: String, value: String)], etag: String) -> HTTPFields {
        var fields = BackendClient.forwardableResponseHeaders(withoutCiphertextFields(backend, extra: 0))
        fields.add("ETag", etag)
        return fields
    }

    /// `fields` without the gateway's metadata, the backend's checksums, `Content-Range`, `Content-MD5` and `ETag`
    /// (they describe the ciphertext), in their order; room for `extra` more.
    private static func withoutCiphertextFields(_ fields: [(name: String, value: String)], extra: Int)
        -> [(name: String, value: String)]
    {
        var kept: [(name: String, value: String)] = []
        kept.reserveCapacity(fields.count + extra)
        for field in fields where !describesCiphertext(field.name) { kept.append(field) }
        return kept
    }

    /// Compared ASCII case-insensitively in place, not through `lowercased()` (a String allocation per header), and
    /// only against the names that start with the same letter.
    static func describesCiphertext(_ name: String) -> Bool {
        guard let first = name.utf8.first else { return false }
        switch first | 0x20 {
        case UInt8(ascii: "x"):
            return EncryptionMetadata.isReserved(headerName: name) || name.caseInsensitiveHasPrefix("x-amz-checksum-")
        case UInt8(ascii: "c"):
            return name.caseInsensitiveEquals("content-range") || name.caseInsensitiveEquals("content-md5")
        case UInt8(ascii: "e"):
            return name.caseInsensitiveEquals("etag")
        default:
            return false
        }
    }
}

extension EncryptedResponseHeaders {
    /// The recorded flexible checksum (`x-amz-checksum-<alg>`, `x-amz-checksum-type: FULL_OBJECT`), as S3
    /// answers a read of the whole object with `x-amz-checksum-mode: ENABLED`; none for ranges (S3 gives none
    /// either) and objects without a record. Call after `dataKey(of:)` verified the metadata.
    static func checksum(_ metadata: EncryptionMetadata, requestHeaders: HTTPFields, wholeObject: Bool) -> [(name: String, value: String)] {
        // The record first: most objects have none, and then the request's headers need no search.
        guard wholeObject, let record = metadata.checksum, requestHeaders["x-amz-checksum-mode"]?.uppercased() == "ENABLED",
              let algorithm = ChecksumAlgorithm(rawValue: record.algorithm) else { return [] }
        return [(algorithm.headerName, ChecksumValue(algorithm: algorithm, bytes: record.value).base64), ("x-amz-checksum-type", "FULL_OBJECT")]
    }
}
