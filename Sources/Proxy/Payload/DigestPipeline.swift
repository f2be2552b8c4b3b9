import Foundation
import Shared

/// Runs `PayloadDigests` either on the caller's thread or, for large bodies, on a worker thread, so that hashing
/// (SHA-256 runs at about a third of AES-GCM's speed) overlaps with sealing and sending on a second core.
///
/// The caller hands over payload bytes (copied into one of a few fixed slots, so memory stays bounded at
/// `slotCount × slotSize`) and chunk boundaries in order; the worker applies them in the same order. A failure
/// found on the worker (a chunk signature) is thrown by the caller's next call, and `finish()` waits until every
/// byte was hashed, so the end-of-body checks still run before the last payload byte is handed out.
final class DigestPipeline {
    private let digests: PayloadDigests
    private let worker: Worker?

    static let slotSize = 256 << 10
    static let slotCount = 4

    /// - Parameter threaded: hash on a worker thread (worth it for bodies of a megabyte and more).
    init(_ digests: PayloadDigests, threaded: Bool) {
        self.digests = digests
        guard threaded, digests.hasWork else { worker = nil; return }
        let worker = Worker(digests)
        self.worker = worker
        let thread = Thread { worker.run() }  // holds the worker, never the pipeline
        thread.name = "payload-digests"
        thread.start()
    }

    deinit { worker?.stop() }

    func update(_ bytes: UnsafeRawBufferPointer) throws(S3Error) {
        guard let worker else { digests.update(bytes); return }
        var offset = 0
        while offset < bytes.count {
            let n = min(Self.slotSize, bytes.count - offset)
            let slot = try worker.acquireSlot()
            // The slot is this thread's until its task is queued.
            worker.slot(slot).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
            worker.enqueue(.data(slot: slot, count: n))
            offset += n
        }
    }

    func beginChunk(signature: String?, empty: Bool) throws(S3Error) {
        guard let worker else { try digests.beginChunk(signature: signature, empty: empty); return }
        try worker.check()
        worker.enqueue(.beginChunk(signature: signature, empty: empty))
    }

    func endChunk() throws(S3Error) {
        guard let worker else { try digests.endChunk(); return }
        try worker.check()
        worker.enqueue(.endChunk)
    }

    func verifyTrailer(fields: [(name: String, value: String)], signature: String) throws(S3Error) {
        guard let worker else { try digests.verifyTrailer(fields: fields, signature: signature); return }
        worker.enqueue(.trailer(fields: fields, signature: signature))
    }

    /// Waits until every queued task ran, stops the worker and returns the digests (or the worker's failure).
    func finish() throws(S3Error) -> PayloadDigests.Results {
        if let worker { try worker.drainAndStop() }
        return digests.finish()
    }

    /// The worker's side: a task queue and fixed slots under one condition variable.
    private final class Worker: @unchecked Sendable {
        enum Task {
            case data(slot: Int, count: Int)
            case beginChunk(signature: String?, empty: Bool)
            case endChunk
            case trailer(fields: [(name: String, value: String)], signature: String)
        }

        private let digests: PayloadDigests
        private let memory: UnsafeMutableRawPointer
        private let condition = NSCondition()
        private var tasks: [Task] = []
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

        func enqueue(_ task: Task) {
            condition.lock()
            tasks.append(task)
            condition.broadcast()
            condition.unlock()
        }

        func drainAndStop() throws(S3Error) {
            condition.lock()
            while (!tasks.isEmpty || busy) && failure == nil { condition.wait() }
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
                while tasks.isEmpty && !stopped { condition.wait() }
                if stopped || failure != nil {
                    condition.unlock()
                    return
                }
                let task = tasks.removeFirst()
                busy = true
                condition.unlock()
                var failed: S3Error?
                var released: Int?
                do {
                    switch task {
                    case .data(let slot, let count):
                        digests.update(UnsafeRawBufferPointer(start: self.slot(slot), count: count))
                        released = slot
                    case .beginChunk(let signature, let empty):
                        try digests.beginChunk(signature: signature, empty: empty)
                    case .endChunk:
                        try digests.endChunk()
                    case .trailer(let fields, let signature):
                        try digests.verifyTrailer(fields: fields, signature: signature)
                    }
                } catch {
                    failed = error
                }
                condition.lock()
                busy = false
                if let released { freeSlots.append(released) }
                if let failed { failure = failed }
                condition.broadcast()
                condition.unlock()
            }
        }
    }
}
