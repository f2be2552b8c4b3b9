import Foundation
import Synchronization
import Testing
@testable import Shared

@Suite struct ParkedThreadsTests {
    /// The thread a job ran on (pthread identity).
    static var here: String { "\(pthread_self())" }

    /// Runs `job` on `pool` and waits until it has run; returns the thread it ran on.
    static func runAndWait(_ pool: ParkedThreads, _ job: @escaping @Sendable () -> Void = {}) -> String? {
        let ran = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        pool.run {
            job()
            ran.withLock { $0 = ParkedThreadsTests.here }
            done.signal()
        }
        guard done.wait(timeout: .now() + 20) == .success else { return nil }
        return ran.withLock { $0 }
    }

    @Test func jobsOneAfterAnotherReuseOneParkedThread() {
        let pool = ParkedThreads(name: "test", maxParked: 2, idleTimeout: .seconds(60))
        var threads: Set<String> = []
        for _ in 0..<5 {
            let thread = Self.runAndWait(pool)
            #expect(thread != nil && thread != Self.here)
            threads.insert(thread ?? "")
            #expect(eventually { pool.parkedCount == 1 })
        }
        #expect(threads.count == 1)
        #expect(pool.threadsStarted == 1)
    }

    /// A job never waits for another one: with every thread busy, the next job gets a new thread.
    @Test func concurrentJobsGetThreadsOfTheirOwn() {
        let pool = ParkedThreads(name: "test", maxParked: 1, idleTimeout: .seconds(60))
        let release = DispatchSemaphore(value: 0)
        let blocked = DispatchSemaphore(value: 0)
        for _ in 0..<3 {
            pool.run {
                blocked.signal()
                release.wait()
            }
        }
        // All three run at the same time (none queued behind another).
        for _ in 0..<3 { #expect(blocked.wait(timeout: .now() + 20) == .success) }
        #expect(pool.threadsStarted == 3)
        for _ in 0..<3 { release.signal() }
        // Only `maxParked` of them stay; the others end.
        #expect(eventually { pool.parkedCount == 1 })
        #expect(Self.runAndWait(pool) != nil)
        #expect(pool.threadsStarted == 3)
    }

    /// A parked thread ends after its idle timeout; the next job starts a new one.
    @Test func parkedThreadsEndAfterTheirIdleTimeout() {
        let pool = ParkedThreads(name: "test", maxParked: 4, idleTimeout: .milliseconds(20))
        #expect(Self.runAndWait(pool) != nil)
        #expect(eventually { pool.parkedCount == 0 })
        #expect(Self.runAndWait(pool) != nil)
        #expect(pool.threadsStarted == 2)
    }

    /// Jobs keep arriving while parked threads time out: every job runs exactly once.
    @Test func jobsRacingTimeoutsAllRun() {
        let pool = ParkedThreads(name: "test", maxParked: 2, idleTimeout: .milliseconds(1))
        let count = Atomic<Int>(0)
        let group = DispatchGroup()
        for i in 0..<300 {
            group.enter()
            pool.run {
                count.add(1, ordering: .relaxed)
                group.leave()
            }
            if i % 10 == 0 { usleep(1000) }  // let some threads park and time out in between
        }
        #expect(group.wait(timeout: .now() + 20) == .success)
        #expect(count.load(ordering: .relaxed) == 300)
    }

    @Test func noneParkedWhenMaxParkedIsZero() {
        let pool = ParkedThreads(name: "test", maxParked: 0, idleTimeout: .seconds(60))
        #expect(Self.runAndWait(pool) != nil)
        #expect(Self.runAndWait(pool) != nil)
        #expect(pool.parkedCount == 0)
        #expect(pool.threadsStarted == 2)
    }

    /// A parked thread does not hold on to its last job (a stage, a relay, what they hold).
    @Test func aParkedThreadReleasesItsLastJob() {
        final class Held: Sendable {}
        let pool = ParkedThreads(name: "test", maxParked: 1, idleTimeout: .seconds(60))
        weak var weakHeld: Held?
        do {
            let held = Held()
            weakHeld = held
            #expect(Self.runAndWait(pool) { _ = held } != nil)
        }
        #expect(eventually { pool.parkedCount == 1 && weakHeld == nil })
    }

    /// The threads carry the pool's name in the kernel (top -H, perf), also when reused.
    @Test func threadsCarryThePoolsKernelName() {
        let pool = ParkedThreads(name: "test-parked", maxParked: 1, idleTimeout: .seconds(60))
        for _ in 0..<2 {
            let name = Mutex<String>("")
            #expect(Self.runAndWait(pool) { name.withLock { $0 = KernelThreadName.current() } } != nil)
            #expect(name.withLock { $0 } == "test-parked")
            #expect(eventually { pool.parkedCount == 1 })
        }
    }
}
