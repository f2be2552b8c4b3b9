import Foundation
import Synchronization
import Testing
import TestSupport
@testable import Proxy

@Suite struct UnwrappedKeyCacheTests {
    @Test func entriesExpireAfterTheTTL() throws {
        let clock = ManualClock()
        let cache = UnwrappedKeyCache(capacity: 10, ttl: .seconds(60), clock: clock.read)
        cache.insert([1], for: [0xA])
        #expect(cache.value(for: [0xA]) == [1])
        clock.advance(.seconds(59))
        #expect(cache.value(for: [0xA]) == [1])
        clock.advance(.seconds(2))
        #expect(cache.value(for: [0xA]) == nil)
        var loads = 0
        let (value, hit) = try cache.value(for: [0xA]) { () throws(KeyProviderError) -> [UInt8] in loads += 1; return [2] }
        #expect(value == [2] && !hit && loads == 1)
        #expect(try cache.value(for: [0xA]) { () throws(KeyProviderError) -> [UInt8] in loads += 1; return [3] }.hit)
        #expect(loads == 1)
    }

    @Test func capacityEvictsTheLeastRecentlyUsed() {
        let cache = UnwrappedKeyCache(capacity: 8, ttl: .seconds(60))
        for i in 0..<8 { cache.insert([UInt8(i)], for: [UInt8(i)]) }
        _ = cache.value(for: [0])  // recently used: survives
        cache.insert([99], for: [99])
        #expect(cache.count <= 8)
        #expect(cache.value(for: [0]) == [0])
        #expect(cache.value(for: [99]) == [99])
        #expect(cache.value(for: [1]) == nil)
    }

    @Test func disabledCacheAlwaysLoadsAndFailuresAreNotCached() throws {
        let off = UnwrappedKeyCache(capacity: 10, ttl: .zero)
        off.insert([1], for: [1])
        #expect(off.value(for: [1]) == nil)
        var loads = 0
        for _ in 0..<3 { _ = try off.value(for: [1]) { () throws(KeyProviderError) -> [UInt8] in loads += 1; return [1] } }
        #expect(loads == 3)

        let on = UnwrappedKeyCache(capacity: 10, ttl: .seconds(60))
        #expect(throws: KeyProviderError.self) {
            try on.value(for: [7]) { () throws(KeyProviderError) -> [UInt8] in throw KeyProviderError(.unavailable, "down") }
        }
        #expect(try on.value(for: [7]) { () throws(KeyProviderError) -> [UInt8] in [7] }.value == [7])
    }

    @Test func concurrentMissesMakeOneCall() async throws {
        let cache = UnwrappedKeyCache(capacity: 10, ttl: .seconds(60))
        let loads = Atomic<Int>(0)
        let gate = DispatchSemaphore(value: 0)
        let started = Atomic<Int>(0)
        let group = DispatchGroup()
        let results = Mutex<[[UInt8]]>([])
        for _ in 0..<8 {
            group.enter()
            Thread.detachNewThread {
                started.add(1, ordering: .relaxed)
                let value = try? cache.value(for: [1]) { () throws(KeyProviderError) -> [UInt8] in
                    loads.add(1, ordering: .relaxed)
                    gate.wait()  // hold the call open until every thread asked
                    return [42]
                }.value
                results.withLock { $0.append(value ?? []) }
                group.leave()
            }
        }
        while started.load(ordering: .relaxed) < 8 { usleep(1000) }
        usleep(20_000)  // let them reach the cache (late ones find the value cached: still one call)
        for _ in 0..<8 { gate.signal() }  // enough for a broken cache's extra loaders, so it fails instead of hanging
        group.wait()
        #expect(loads.load(ordering: .relaxed) == 1)
        #expect(results.withLock { $0 } == Array(repeating: [42], count: 8))
    }
}
