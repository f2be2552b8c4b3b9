import Testing
@testable import Shared

@Suite struct BufferCacheTests {
    /// A buffer given back is wiped before it is kept, and the next `take` of that size reuses it.
    @Test func keptBuffersAreWipedAndReused() {
        let cache = BufferCache(limit: 1 << 20)
        let buffer = cache.take(size: 4096)
        buffer.initializeMemory(as: UInt8.self, repeating: 0xA5)
        cache.give(buffer)
        #expect(cache.bytesKept == 4096)
        let again = cache.take(size: 4096)
        #expect(again.baseAddress == buffer.baseAddress && again.count == 4096)
        #expect(again.allSatisfy { $0 == 0 })
        #expect(cache.bytesKept == 0)
        cache.give(again)
    }

    /// Sizes are kept apart; no more than `limit` bytes are kept (the rest is freed).
    @Test func keepsAtMostItsLimitBySize() {
        let cache = BufferCache(limit: 3000)
        let a = cache.take(size: 1000), b = cache.take(size: 1000), c = cache.take(size: 1000), d = cache.take(size: 1000)
        let e = cache.take(size: 10)
        for buffer in [a, b, c, d] { cache.give(buffer) }
        #expect(cache.bytesKept == 3000)
        cache.give(e)  // over the limit: freed
        #expect(cache.bytesKept == 3000)
        let small = cache.take(size: 10)  // none of that size kept: a fresh one
        #expect(small.count == 10 && cache.bytesKept == 3000)
        cache.give(small)
        let reused = [cache.take(size: 1000), cache.take(size: 1000), cache.take(size: 1000)]
        #expect(Set(reused.map(\.baseAddress)).isSubset(of: Set([a, b, c, d].map(\.baseAddress))))
        #expect(cache.bytesKept == 0)
        for buffer in reused { cache.give(buffer) }
    }

    @Test func aZeroLimitKeepsNothing() {
        let cache = BufferCache(limit: 0)
        cache.give(cache.take(size: 64))
        #expect(cache.bytesKept == 0)
    }
}
