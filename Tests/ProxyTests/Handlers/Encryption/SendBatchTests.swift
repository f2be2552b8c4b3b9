import Testing
@testable import Proxy
@testable import Shared

/// The inline relay's plaintext batch: bytes written in place or copied in leave in order, a whole buffer per
/// send, and the buffer is wiped as far as it was used when the batch is gone.
@Suite struct SendBatchTests {
    /// Writes `bytes` the way the opener does: asks for space, decrypts (here: copies) into it, emits from there.
    private func addInPlace(_ bytes: [UInt8], to batch: SendBatch, send: (UnsafeRawBufferPointer) throws -> Void) throws {
        let space = try batch.space(minimum: bytes.count, send: send)
        if space.count >= bytes.count {
            bytes.withUnsafeBytes { space.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            try batch.add(UnsafeRawBufferPointer(rebasing: space[0..<bytes.count]), send: send)
        } else {
            try bytes.withUnsafeBytes { try batch.add($0, send: send) }
        }
    }

    @Test func inPlaceAndCopiedBytesLeaveInOrderAWholeBufferPerSend() throws {
        var rng = SplitMix64(seed: 1)
        let stream = rng.bytes(20_000)
        // Pieces of a chunk's size, odd sizes, a piece longer than the buffer (in place or copied), an empty one.
        let sizes = [1000, 1000, 1000, 1000, 1000, 333, 0, 4096, 2500, 5000, 1, 1071]
        #expect(sizes.reduce(0, +) <= stream.count)
        for inPlace in [true, false] {
            let batch = SendBatch(size: 4096, cache: BufferCache(limit: 0))
            var sent: [[UInt8]] = []
            let send: (UnsafeRawBufferPointer) throws -> Void = { sent.append(Array($0)) }
            var offset = 0
            for (i, size) in sizes.enumerated() {
                let piece = Array(stream[offset..<(offset + size)])
                // Alternate the two ways within one stream too.
                if inPlace == (i % 2 == 0) {
                    try addInPlace(piece, to: batch, send: send)
                } else {
                    try piece.withUnsafeBytes { try batch.add($0, send: send) }
                }
                offset += size
                #expect(batch.pending <= 4096)
            }
            try batch.flush(send: send)
            #expect(batch.pending == 0)
            #expect(Array(sent.joined()) == Array(stream[0..<offset]))
            // Gathered, not a piece per send; a piece longer than the buffer goes on its own.
            #expect(sent.allSatisfy { !$0.isEmpty } && sent.count < sizes.count - 1, "\(sent.map(\.count))")
            #expect(sent.contains { $0.count == 5000 })
        }
    }

    @Test func aFullBufferIsSentAtOnce() throws {
        let batch = SendBatch(size: 4096, cache: BufferCache(limit: 0))
        var sent: [Int] = []
        for _ in 0..<4 { try addInPlace([UInt8](repeating: 7, count: 1024), to: batch) { sent.append($0.count) } }
        #expect(sent == [4096] && batch.pending == 0)
        try batch.flush { sent.append($0.count) }
        #expect(sent == [4096], "an empty batch sends nothing")
    }

    /// What the batch held is wiped before its buffer is kept for another owner; a batch that failed after the
    /// opener was given space leaves nothing there either.
    @Test func theUsedPartIsWipedWhenTheBatchIsGone() throws {
        let cache = BufferCache(limit: 1 << 20)
        cache.give(cache.take(size: 8192))  // a wiped buffer kept: the batch takes this one
        do {
            let batch = SendBatch(size: 8192, cache: cache)
            try addInPlace([UInt8](repeating: 0xA5, count: 3000), to: batch) { _ in }
            // Space handed out and written, never added (a chunk whose verification failed mid-write).
            let space = try batch.space(minimum: 2000) { _ in }
            space.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0x5A, count: 2000)
        }
        #expect(cache.bytesKept == 8192)
        let again = cache.take(size: 8192)
        defer { again.deallocate() }
        #expect(again.allSatisfy { $0 == 0 })
    }
}
