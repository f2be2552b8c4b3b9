import Foundation
import Shared

/// Runs `PayloadDigests` either on the caller's thread or, for large bodies, on a worker thread, so that hashing
/// (SHA-256 runs at about a third of AES-GCM's speed) overlaps with sealing and sending on a second core. Only
/// while a core is to spare (`BackgroundSlots`, shared with the encrypted reads' stages): under many concurrent
/// uploads every core is busy anyway, and a thread and four slots per upload only cost memory and switches.
///
/// The caller fills one of a few fixed slots with payload bytes (memory stays bounded at `slotCount × slotSize`)
/// and records chunk boundaries at their offsets in the slot; a slot goes to the worker when it is full (or a
/// trailer or the end comes), and the worker applies bytes and boundaries in the same order. Handing over whole
/// slots rather than every read and every boundary keeps the two threads from waking each other per aws-chunked
/// chunk (64 KiB chunks cost a lock round-trip and a wake-up each, and that cost more than the checksum itself).
/// A failure found on the worker (a chunk signature) is thrown by the caller's next slot hand-over or boundary,
/// and `finish()` waits until every byte was hashed, so the end-of-body checks still run before the last payload
/// byte is handed out.
final class DigestPipeline {
    private let digests: PayloadDigests
    private let threaded: Bool
    private let slots: BackgroundSlots
    /// This body counts among `slots`' long transfers (until its end), and holds one of its second threads.
    private var countsStream = false
    private var holdsSlot = false
    /// Started on the first byte or boundary (so that `computeMD5()` can still add work before it).
    private var worker: Worker?
    private var started = false
    /// `digests.verifiesChunks`, read once before the worker starts: the worker mutates the digests' signature
    /// chain while the caller records boundaries, so the caller must not read the digests after that.
    private let verifiesChunks: Bool
    /// The slot the caller is filling, not yet handed to the worker.
    private var batch: Batch?

    static let slotSize = 256 << 10
    static let slotCount = 4
    /// Most chunk boundaries one slot carries (tiny chunks would otherwise queue unbounded signatures).
    static let maxMarksPerSlot = 256

    /// - Parameters:
    ///   - threaded: hash on a worker thread when `slots` has one to spare (worth it for bodies of a megabyte and more).
    ///   - slots: the process's long transfers and second threads.
    init(_ digests: PayloadDigests, threaded: Bool, slots: BackgroundSlots = .shared) {
        self.digests = digests
        self.threaded = threaded
        self.slots = slots
        verifiesChunks = digests.verifiesChunks
    }

    deinit {
        worker?.stop()
        leaveSlots()
    }

    /// Gives back the second thread's slot and stops counting the body as a long transfer: once its last byte was
    /// read (`finish`), or when it is dropped.
    private func leaveSlots() {
        if holdsSlot { slots.release() }
        if countsStream { slots.streamEnded() }
        holdsSlot = false
        countsStream = false
    }

    /// Also computes the payload's MD5 (for an ETag), on the worker when threaded. Only before the first byte.
    func computeMD5() {
        precondition(!started, "computeMD5() after the payload began")
        digests.computeMD5()
    }

    /// Whether a worker thread was started (only while `slots` had one to spare).
    var workerStarted: Bool { worker != nil }

    /// The worker, started with the first byte or boundary when the pipeline is threaded and has work.
    private func start() -> Worker? {
        if started { return worker }
        started = true
        guard threaded else { return nil }
        // A long body keeps a core busy (read, sealed, sent) whether or not its hashing needs a second thread.
        slots.streamStarted()
        countsStream = true
        guard digests.worthAWorker, slots.tryAcquire() else { return nil }
        holdsSlot = true
        let worker = Worker(digests)
        self.worker = worker
        let thread = Thread { worker.run() }  // holds the worker, never the pipeline
        thread.name = "payload-digests"
        thread.start()
        return worker
    }

    func update(_ bytes: UnsafeRawBufferPointer) throws(S3Error) {
        guard let worker = start() else { digests.update(bytes); return }
        var offset = 0
        while offset < bytes.count {
            var current = try openBatch(worker)
            let n = min(Self.slotSize - current.count, bytes.count - offset)
            // The slot is this thread's until the batch is queued.
            (worker.slot(current.slot) + current.count).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
            current.count += n
            offset += n
            batch = current
            if current.count == Self.slotSize { flush(worker) }
        }
    }

    func beginChunk(signature: String?, empty: Bool) throws(S3Error) {
        guard verifiesChunks else { return }
        guard let worker = start() else { try digests.beginChunk(signature: signature, empty: empty); return }
        try mark(worker, .beginChunk(signature: signature, empty: empty))
    }

    func endChunk() throws(S3Error) {
        guard verifiesChunks else { return }
        guard let worker = start() else { try digests.endChunk(); return }
        try mark(worker, .endChunk)
    }

    func verifyTrailer(fields: [(name: String, value: String)], signature: String) throws(S3Error) {
        guard let worker = start() else { try digests.verifyTrailer(fields: fields, signature: signature); return }
        try mark(worker, .trailer(fields: fields, signature: signature))
        flush(worker)
    }

    /// Waits until every queued byte and boundary was applied, stops the worker and returns the digests (or the
    /// worker's failure).
    func finish() throws(S3Error) -> PayloadDigests.Results {
        started = true
        defer { leaveSlots() }
        if let worker {
            flush(worker)
            try worker.drainAndStop()
        }
        return digests.finish()
    }

    // MARK: Batches

    /// A boundary between payload bytes, at `offset` bytes into its batch's slot.
    enum Mark {
        case beginChunk(signature: String?, empty: Bool)
        case endChunk
        case trailer(fields: [(name: String, value: String)], signature: String)
    }

    /// One slot's worth of work: `count` payload bytes and the boundaries among them, in order.
    struct Batch {
        var slot: Int
        var count = 0
        var marks: [(offset: Int, mark: Mark)] = []
    }

    private func openBatch(_ worker: Worker) throws(S3Error) -> Batch {
        if let batch { return batch }
        return Batch(slot: try worker.acquireSlot())
    }

    private func mark(_ worker: Worker, _ mark: Mark) throws(S3Error) {
        try worker.check()
        var current = try openBatch(worker)
        current.marks.append((offset: current.count, mark: mark))
        batch = current
        if current.marks.count >= Self.maxMarksPerSlot { flush(worker) }
    }

    private func flush(_ worker: Worker) {
        guard let current = batch.take() else { return }
        worker.enqueue(current)
    }

    /// The worker's side: a queue of batches and the fixed slots under one condition variable.
    private final class Worker: @unchecked Sendable {
        private let digests: PayloadDigests
        private let memory: UnsafeMutableRawPointer
        private let condition = NSCondition()
        private var queue: [Batch] = []
        private var freeSlots = Array(0..<DigestPipeline.slotCount)
        private var failure: S3Error?
        private var stopped = false
        private var busy = false

        init(_ digests: PayloadDigests) {
            self.digests = digests
            memory = .allocate(byteCount: DigestPipeline.slotSize * DigestPipeline.slotCount, alignment: 64)
        }

        deinit { memory.deallocate() }

        func slot(_ index: Int) -> UnsafeMutableRawPointer { memory + index * DigestPipeline.slotSize }

        func acquireSlot() throws(S3Error) -> Int {
            condition.lock()
            defer { condition.unlock() }
            while freeSlots.isEmpty && failure == nil && !stopped { condition.wait() }
            if let failure { throw failure }
            return freeSlots.removeLast()
        }

        func check() throws(S3Error) {
            condition.lock()
            defer { condition.unlock() }
            if let failure { throw failure }
        }

        func enqueue(_ batch: Batch) {
            condition.lock()
            queue.append(batch)
            condition.broadcast()
            condition.unlock()
        }

        func drainAndStop() throws(S3Error) {
            condition.lock()
            while (!queue.isEmpty || busy) && failure == nil { condition.wait() }
            stopped = true
            let failed = failure
            condition.broadcast()
            condition.unlock()
            if let failed { throw failed }
        }

        func stop() {
            condition.lock()
            stopped = true
            condition.broadcast()
            condition.unlock()
        }

        func run() {
            while true {
                condition.lock()
                while queue.isEmpty && !stopped { condition.wait() }
                if stopped || failure != nil {
                    condition.unlock()
                    return
                }
                let batch = queue.removeFirst()
                busy = true
                condition.unlock()
                var failed: S3Error?
                do {
                    try apply(batch)
                } catch {
                    failed = error
                }
                condition.lock()
                busy = false
                freeSlots.append(batch.slot)
                if let failed { failure = failed }
                condition.broadcast()
                condition.unlock()
            }
        }

        /// Bytes up to each boundary, the boundary, and so on.
        private func apply(_ batch: Batch) throws(S3Error) {
            let base = slot(batch.slot)
            var done = 0
            for (offset, mark) in batch.marks {
                if offset > done { digests.update(UnsafeRawBufferPointer(start: base + done, count: offset - done)) }
                done = offset
                switch mark {
                case .beginChunk(let signature, let empty): try digests.beginChunk(signature: signature, empty: empty)
                case .endChunk: try digests.endChunk()
                case .trailer(let fields, let signature): try digests.verifyTrailer(fields: fields, signature: signature)
                }
            }
            if batch.count > done { digests.update(UnsafeRawBufferPointer(start: base + done, count: batch.count - done)) }
        }
    }
}
