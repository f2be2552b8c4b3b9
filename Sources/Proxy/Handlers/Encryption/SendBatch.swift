import Shared

/// Gathers the verified plaintext of a long content that is decrypted and sent on one thread (no
/// `BackgroundStage`) into one buffer, so that it goes to the client a whole buffer per write instead of a
/// chunk per write: fewer `sendmsg` calls, and fewer wake-ups of the receiving client, which on a busy machine
/// shares the cores with the gateway. The opener decrypts straight into the buffer (`space`/`commit`), so the
/// batch costs no copy; only plaintext decrypted elsewhere (a range's first chunk past its skipped bytes, the
/// final chunk) is copied in (`add`).
///
/// Not thread-safe: one per relay. The buffer comes from a `BufferCache`, which wipes it when the batch is gone
/// (it held plaintext); only its used part is wiped.
final class SendBatch {
    private let buffer: UnsafeMutableRawBufferPointer
    private let cache: BufferCache
    /// Bytes waiting in `buffer`.
    private var filled = 0
    /// How far into `buffer` plaintext was ever written (what is wiped).
    private var used = 0
    /// Where the last `space` began (verified plaintext emitted from there is already in place).
    private var spaceStart: UnsafeRawPointer?

    init(size: Int, cache: BufferCache = .stages) {
        self.cache = cache
        buffer = cache.take(size: size)
    }

    deinit {
        cache.give(buffer, used: used)
    }

    /// Room for at least `minimum` bytes at the end of the batch; a batch that has less room left is sent
    /// first. A `minimum` larger than the whole buffer gets the whole (shorter) buffer, which the opener
    /// declines (it then decrypts into its own buffer and the bytes come through `add`).
    func space(minimum: Int, send: (UnsafeRawBufferPointer) throws -> Void) throws -> UnsafeMutableRawBufferPointer {
        if buffer.count - filled < minimum { try flush(send: send) }
        // The opener may write up to `minimum` bytes here even if they then fail verification (it zeroes them).
        used = max(used, min(buffer.count, filled + minimum))
        let space = UnsafeMutableRawBufferPointer(rebasing: buffer[filled...])
        spaceStart = UnsafeRawPointer(space.baseAddress)
        return space
    }

    /// Adds verified plaintext: in place when it was decrypted at the start of the last `space` (no copy),
    /// otherwise copied in (sending the batch first when it does not fit, or `plaintext` directly when it
    /// is longer than the buffer).
    func add(_ plaintext: UnsafeRawBufferPointer, send: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !plaintext.isEmpty else { return }
        if let start = spaceStart, plaintext.baseAddress == start {
            spaceStart = nil
            filled += plaintext.count
        } else {
            spaceStart = nil
            if buffer.count - filled < plaintext.count { try flush(send: send) }
            guard plaintext.count <= buffer.count else { return try send(plaintext) }
            (buffer.baseAddress! + filled).copyMemory(from: plaintext.baseAddress!, byteCount: plaintext.count)
            filled += plaintext.count
            used = max(used, filled)
        }
        if filled == buffer.count { try flush(send: send) }
    }

    /// Sends what is gathered (nothing when the batch is empty).
    func flush(send: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard filled > 0 else { return }
        let count = filled
        filled = 0
        spaceStart = nil
        try send(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }

    /// Bytes gathered and not yet sent (for tests).
    var pending: Int { filled }
}
