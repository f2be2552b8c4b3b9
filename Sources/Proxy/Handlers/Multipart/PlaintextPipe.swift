import Foundation
import Shared

/// A bounded hand-over of bytes from one thread (a producer, e.g. a backend download) to another (a consumer
/// reading it as a request body, e.g. a backend upload), so two transfers can stream into each other with
/// memory bounded by `capacity`. Either side can stop the other: a producer error surfaces in the
/// consumer's `read`, a consumer that gives up makes the producer's next `write` throw.
public final class PlaintextPipe: RequestBody, @unchecked Sendable {
    public struct Cancelled: Error, CustomStringConvertible {
        public var description: String { "the reading side of the pipe stopped" }
    }

    public let declaredLength: Int64?
    private let capacity: Int
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var chunks: [[UInt8]] = []
    private var head = 0
    private var offset = 0
    private var buffered = 0
    private var ended = false
    private var failure: (any Error)?
    private var cancelled = false

    /// - Parameters:
    ///   - length: the exact number of bytes the producer will write (the consumer's `declaredLength`).
    ///   - capacity: bytes buffered at most before `write` blocks.
    public init(length: Int64?, capacity: Int = 1 << 20) {
        self.declaredLength = length
        self.capacity = capacity
    }

    // MARK: Producer side

    /// Copies `bytes` in, blocking while the buffer is full; throws `Cancelled` once the consumer gave up.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        condition.lock()
        defer { condition.unlock() }
        while buffered >= capacity && !cancelled { condition.wait() }
        if cancelled { throw Cancelled() }
        chunks.append(Array(bytes))
        buffered += bytes.count
        condition.broadcast()
    }

    /// Ends the stream: cleanly (`error` nil) or with an error the consumer's next `read` throws.
    public func finish(error: (any Error)? = nil) {
        condition.lock()
        defer { condition.unlock() }
        ended = true
        failure = error
        condition.broadcast()
    }

    // MARK: Consumer side

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        condition.lock()
        defer { condition.unlock() }
        while head == chunks.count && !ended && !cancelled { condition.wait() }
        if let failure { throw failure }
        if cancelled { throw Cancelled() }
        guard head < chunks.count else { return 0 }
        let n = chunks[head].withUnsafeBytes { chunk in
            let n = min(buffer.count, chunk.count - offset)
            buffer.baseAddress!.copyMemory(from: chunk.baseAddress! + offset, byteCount: n)
            return n
        }
        offset += n
        buffered -= n
        if offset == chunks[head].count {
            chunks[head] = []
            head += 1
            offset = 0
            if head == chunks.count {
                chunks.removeAll(keepingCapacity: true)
                head = 0
            }
        }
        condition.broadcast()
        return n
    }

    /// The consumer stops: the producer's pending and later writes throw, buffered bytes are dropped.
    public func cancel() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        chunks.removeAll()
        head = 0
        offset = 0
        buffered = 0
        condition.broadcast()
    }
}
