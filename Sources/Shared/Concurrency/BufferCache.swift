import Synchronization

/// Equal-sized buffers kept for reuse between short-lived owners (stages), so that each does not map, fault in
/// and unmap fresh memory (buffers of 128 KiB and more come from `mmap` in glibc). Every buffer is wiped before it
/// is kept or freed, since it may hold plaintext; at most `limit` bytes are kept.
public final class BufferCache: Sendable {
    /// The buffers of `BackgroundStage`s: up to four stages' worth of the relay's 3 × 256 KiB.
    public static let stages = BufferCache(limit: 3 << 20)

    public let limit: Int
    private let kept = Mutex<(buffers: [Int: [Block]], bytes: Int)>(([:], 0))

    /// A kept buffer; only one owner at a time uses it (the cache, or whoever took it).
    private struct Block: @unchecked Sendable {
        let buffer: UnsafeMutableRawBufferPointer
    }

    public init(limit: Int) {
        precondition(limit >= 0, "a negative limit")
        self.limit = limit
    }

    /// Bytes held now.
    public var bytesKept: Int { kept.withLock { $0.bytes } }

    /// A buffer of exactly `size` bytes (16-byte aligned), reused when one is kept; its contents are zero or
    /// unspecified.
    public func take(size: Int) -> UnsafeMutableRawBufferPointer {
        precondition(size >= 1, "an empty buffer")
        let reused = kept.withLock { state -> Block? in
            guard let block = state.buffers[size]?.popLast() else { return nil }
            state.bytes -= size
            return block
        }
        return reused?.buffer ?? .allocate(byteCount: size, alignment: 16)
    }

    /// Wipes `buffer` (one from `take`) and keeps it, or frees it when the cache is full.
    public func give(_ buffer: UnsafeMutableRawBufferPointer) {
        give(buffer, used: buffer.count)
    }

    /// `give(_:)` for an owner that wrote only the first `used` bytes: only those are wiped (the rest is still as
    /// wiped, or as fresh, as it came from `take`).
    public func give(_ buffer: UnsafeMutableRawBufferPointer, used: Int) {
        SecureMemory.cleanse(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(max(used, 0), buffer.count)]))
        let block = Block(buffer: buffer)
        let keeps = kept.withLock { state -> Bool in
            guard state.bytes + block.buffer.count <= limit else { return false }
            state.buffers[block.buffer.count, default: []].append(block)
            state.bytes += block.buffer.count
            return true
        }
        if !keeps { buffer.deallocate() }
    }
}
