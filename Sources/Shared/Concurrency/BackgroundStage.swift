import Foundation

/// Runs the second half of a stream on a thread of its own, at most a few buffers behind the first half, so
/// that one transfer can use two cores (e.g. receive and decrypt on one; send on the other).
///
/// `submit` copies bytes into one of `depth` buffers of `bufferSize` bytes and hands full ones over; it blocks
/// only while every buffer waits for the consumer. A producer that can write its bytes in place (a decryptor
/// that decrypts into a given buffer) asks `space(minimum:)` and `commit`s what it wrote instead, without a copy.
/// A commit may carry work for the stage's thread to finish on those bytes first (a chunk whose decryption the
/// producer leaves to the stage, to share a stream's crypto between two cores): it runs, in order, right before
/// its buffer is consumed; when it throws, that buffer is not consumed and the stage stops as when `consume` throws.
/// Memory is bounded by `depth × bufferSize` whatever the stream's length. When `consume` throws, the stage stops
/// and the producer's next `submit`, `space`, `commit` or `finish` throws that error. The owner must end every stage with `finish()` or `stop()` (the thread waits until then).
///
/// A stage is cheap to start: its thread comes from `ParkedThreads` and its buffers from `BufferCache` (wiped when
/// the stage is gone), so a short stream (a 1 MiB range) does not pay a thread's start or fresh pages.
public final class BackgroundStage: @unchecked Sendable {
    // Everything below is guarded by `condition`, except `filling`/`filled`, which only the producer touches.
    private let condition = NSCondition()
    private let buffers: [UnsafeMutableRawBufferPointer]
    private var free: [UnsafeMutableRawBufferPointer]
    private var ready: [(buffer: UnsafeMutableRawBufferPointer, count: Int, work: [() throws -> Void])] = []
    private var consume: ((UnsafeRawBufferPointer) throws -> Void)?
    private var failure: (any Error)?
    private var closed = false
    private var cancelled = false
    private var stopped = false
    private var filling: UnsafeMutableRawBufferPointer?
    private var filled = 0
    /// Work committed with the bytes of `filling`, handed over with it.
    private var fillingWork: [() throws -> Void] = []
    private let bufferSize: Int
    private let cache: BufferCache

    /// Thrown by `submit` and `finish` after `stop()` or `cancel()`.
    public struct Stopped: Error {
        public init() {}
    }

    public init(depth: Int = 4, bufferSize: Int = 128 << 10, threads: ParkedThreads = .stages, buffers cache: BufferCache = .stages,
                consume: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        precondition(depth >= 1 && bufferSize >= 1, "a stage needs a buffer")
        self.bufferSize = bufferSize
        self.cache = cache
        buffers = (0..<depth).map { _ in cache.take(size: bufferSize) }
        free = buffers
        self.consume = consume
        threads.run { [self] in run() }
    }

    deinit {
        // The buffers held a stream's bytes (decrypted plaintext for a decrypting relay): the cache wipes them
        // before it keeps or frees them.
        for buffer in buffers { cache.give(buffer) }
    }

    /// Copies `bytes` into the stage (blocking while all buffers are in use).
    public func submit(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let target: UnsafeMutableRawBufferPointer
            if let filling {
                target = filling
            } else {
                target = try takeFree()
                filling = target
            }
            let n = min(bufferSize - filled, bytes.count - offset)
            (target.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
            filled += n
            offset += n
            if filled == bufferSize { try handOver() }
        }
    }

    /// Room for `minimum` bytes written straight into the stage, without a copy: the free end of the buffer being
    /// filled, or (once that is shorter) a fresh buffer, the filled one handed over first; blocks while every
    /// buffer is in use. A fresh buffer is shorter than `minimum` when `minimum > bufferSize`. Bytes written there
    /// join the stream with `commit(_:)`; what is not committed is overwritten.
    public func space(minimum: Int) throws -> UnsafeMutableRawBufferPointer {
        if let filling, filled == 0 || bufferSize - filled >= minimum {
            return UnsafeMutableRawBufferPointer(rebasing: filling[filled...])
        }
        try handOver()
        let target = try takeFree()
        filling = target
        return target
    }

    /// Adds the first `count` bytes of the last `space(minimum:)` to the stream (a full buffer is handed over).
    /// `work`, if any, runs on the stage's thread before the buffer holding these bytes is consumed (after the work
    /// committed before it); it must touch only these bytes.
    public func commit(_ count: Int, finishing work: (() throws -> Void)? = nil) throws {
        precondition(filling != nil && count <= bufferSize - filled, "commit beyond the space given")
        filled += count
        if let work { fillingWork.append(work) }
        if filled == bufferSize { try handOver() }
    }

    /// Hands over what is buffered now, without waiting for its buffer to fill (the next bytes start a fresh
    /// buffer): for bytes that should not wait, such as the first of a response.
    public func flush() throws {
        if filled > 0 { try handOver() }
    }

    /// Where the next committed byte goes: the start of the last `space(minimum:)` (nil before the first).
    public var nextByte: UnsafeRawPointer? {
        filling.map { UnsafeRawPointer($0.baseAddress! + filled) }
    }

    /// Hands over what is buffered, waits until the consumer has taken everything and stops the stage;
    /// throws the consumer's error, if any.
    public func finish() throws {
        try handOver()
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while !stopped { condition.wait() }
        if let failure { throw failure }
        if cancelled { throw Stopped() }
    }

    /// Stops the stage without waiting for buffers not yet consumed (they are dropped); returns once the
    /// consumer is idle for good. Idempotent.
    public func stop() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        condition.broadcast()
        while !stopped { condition.wait() }
    }

    /// Asks the stage to stop without waiting for it (for a `deinit`, or on the consumer's own thread, where
    /// `stop()` would wait for itself); a buffer being consumed is finished, later ones are dropped.
    public func cancel() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        condition.broadcast()
    }

    private func takeFree() throws -> UnsafeMutableRawBufferPointer {
        condition.lock()
        defer { condition.unlock() }
        while free.isEmpty && !stopped { condition.wait() }
        if let failure { throw failure }
        if stopped { throw Stopped() }
        return free.removeLast()
    }

    private func handOver() throws {
        guard let buffer = filling else { return }
        let count = filled
        let work = fillingWork
        filling = nil
        filled = 0
        fillingWork = []
        condition.lock()
        guard !stopped else {
            free.append(buffer)
            let error = failure ?? Stopped()
            condition.unlock()
            throw error
        }
        ready.append((buffer, count, work))
        condition.unlock()
        // Woken after the unlock: a consumer woken while the lock is still held only blocks on it again, two more
        // futex calls and a context switch per buffer.
        condition.broadcast()
    }

    private func run() {
        while true {
            condition.lock()
            while ready.isEmpty && !closed && !cancelled { condition.wait() }
            if cancelled || ready.isEmpty {
                stopped = true
                consume = nil  // releases what the consumer holds (it may hold the stage's owner)
                condition.broadcast()
                condition.unlock()
                return
            }
            let next = ready.removeFirst()
            let consume = consume!
            condition.unlock()
            var thrown: (any Error)?
            do {
                for work in next.work { try work() }
                try consume(UnsafeRawBufferPointer(rebasing: next.buffer[0..<next.count]))
            } catch {
                thrown = error
            }
            condition.lock()
            free.append(next.buffer)
            if let thrown {
                failure = thrown
                stopped = true
                self.consume = nil
            }
            condition.unlock()
            // After the unlock, as in `handOver` (the job's closure keeps the stage alive until `run` returns).
            condition.broadcast()
            if thrown != nil { return }
        }
    }
}
