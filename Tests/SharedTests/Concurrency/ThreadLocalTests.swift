import Foundation
import Shared
import Synchronization
import Testing

@Suite struct ThreadLocalTests {
    final class Counter {
        static let live = Atomic<Int>(0)
        var value = 0
        init() { Self.live.add(1, ordering: .relaxed) }
        deinit { Self.live.subtract(1, ordering: .relaxed) }
    }

    static let local = ThreadLocal { Counter() }

    /// One object per thread: the same one on every call of a thread, another on another thread, and
    /// released when its thread ends.
    @Test func oneObjectPerThreadReleasedWithTheThread() {
        let mine = Self.local.current
        mine.value += 1
        #expect(Self.local.current === mine)
        let liveBefore = Counter.live.load(ordering: .relaxed)
        let done = DispatchSemaphore(value: 0)
        let sawOwn = Mutex(false)
        let thread = Thread {
            let theirs = Self.local.current
            theirs.value += 10
            sawOwn.withLock { $0 = Self.local.current === theirs && theirs.value == 10 }
            done.signal()
        }
        thread.start()
        done.wait()
        #expect(sawOwn.withLock { $0 })
        #expect(mine.value == 1)
        // The other thread's object goes when that thread exits (shortly after it signalled).
        var released = false
        for _ in 0..<500 where !released {
            released = Counter.live.load(ordering: .relaxed) <= liveBefore
            if !released { usleep(10_000) }
        }
        #expect(released)
    }
}
