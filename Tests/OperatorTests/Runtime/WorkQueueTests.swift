import Foundation
import Synchronization
import Testing
@testable import Operator

/// Runs `body` on a new thread; `join()` waits for it.
final class TestThread: Sendable {
    private let finished = StopSignal()
    init(_ body: @escaping @Sendable () -> Void) {
        let t = Thread { [finished] in
            body()
            finished.stop()
        }
        t.start()
    }
    func join() { finished.wait() }
}

final class CountingMetrics: WorkQueueMetrics, @unchecked Sendable {
    private let lock = NSLock()
    private var _adds = 0, _retries = 0, _latencies = 0, _durations = 0, _depth = 0
    func depthChanged(_ depth: Int) { lock.withLock { _depth = depth } }
    func added() { lock.withLock { _adds += 1 } }
    func retried() { lock.withLock { _retries += 1 } }
    func queueLatency(_ duration: Duration) { lock.withLock { _latencies += 1 } }
    func workDuration(_ duration: Duration) { lock.withLock { _durations += 1 } }
    var snapshot: (adds: Int, retries: Int, latencies: Int, durations: Int, depth: Int) {
        lock.withLock { (_adds, _retries, _latencies, _durations, _depth) }
    }
}

@Suite struct WorkQueueTests {
    @Test func deduplicatesKeysWaitingInTheQueue() {
        let metrics = CountingMetrics()
        let q = WorkQueue<String>(metrics: metrics)
        q.add("a"); q.add("b"); q.add("a"); q.add("a")
        #expect(q.depth == 2)
        #expect(q.get() == "a")
        #expect(q.get() == "b")
        #expect(q.depth == 0)
        #expect(metrics.snapshot.adds == 2)
        #expect(metrics.snapshot.latencies == 2)
        q.done("a"); q.done("b")
        #expect(metrics.snapshot.durations == 2)
    }

    @Test func keyReaddedWhileProcessingRunsOnceMoreAfterDone() {
        let q = WorkQueue<String>()
        q.add("a")
        #expect(q.get() == "a")
        q.add("a"); q.add("a")
        // Not handed out while processing, even though it is dirty.
        #expect(q.depth == 0)
        q.add("b")
        #expect(q.get() == "b")
        q.done("b")
        q.done("a")
        #expect(q.depth == 1)
        #expect(q.get() == "a")
        q.done("a")
        #expect(q.depth == 0)
    }

    @Test func doneWithoutReaddDoesNotRequeue() {
        let q = WorkQueue<Int>()
        q.add(1)
        #expect(q.get() == 1)
        q.done(1)
        #expect(q.depth == 0)
        #expect(q.processingCount == 0)
    }

    @Test func rateLimitedRequeueBacksOffPerKeyAndForgetResets() {
        let metrics = CountingMetrics()
        let q = WorkQueue<String>(rateLimit: Backoff(initial: .milliseconds(1), cap: .milliseconds(4)), metrics: metrics)
        q.add("k")
        for expected in 1...4 {
            let key = q.get()
            #expect(key == "k")
            q.addRateLimited("k")
            q.done("k")
            #expect(q.numRequeues("k") == expected)
        }
        #expect(q.rateLimit.delay(forAttempt: q.numRequeues("k")) == .milliseconds(4))
        #expect(q.get() == "k")  // comes back after its delay
        q.forget("k")
        #expect(q.numRequeues("k") == 0)
        q.done("k")
        #expect(metrics.snapshot.retries == 4)
        // Other keys have their own counters.
        q.addRateLimited("other")
        #expect(q.numRequeues("other") == 1)
        #expect(q.numRequeues("k") == 0)
    }

    @Test func addAfterHandsOutInDeadlineOrder() {
        let q = WorkQueue<String>()
        q.addAfter("late", .milliseconds(300))
        q.addAfter("early", .milliseconds(60))
        q.addAfter("middle", .milliseconds(180))
        q.add("now")
        #expect(q.get() == "now")
        #expect(q.get() == "early")
        #expect(q.get() == "middle")
        #expect(q.get() == "late")
    }

    @Test func addAfterKeepsTheEarliestTimeForAKey() {
        let q = WorkQueue<String>()
        q.addAfter("a", .seconds(3600))
        q.addAfter("a", .milliseconds(20))
        q.addAfter("a", .seconds(7200))
        q.addAfter("b", .milliseconds(200))
        #expect(q.get() == "a")
        q.done("a")
        #expect(q.get() == "b")
        q.done("b")
        // The one-hour entries for "a" were superseded: nothing else is ready.
        #expect(q.depth == 0)
    }

    @Test func addAfterWithNonPositiveDelayAddsNow() {
        let q = WorkQueue<String>()
        q.addAfter("a", .zero)
        q.addAfter("b", .milliseconds(-5))
        #expect(q.depth == 2)
    }

    @Test func shutDownWakesBlockedWorkersAndIgnoresAdds() {
        let q = WorkQueue<String>()
        let results = Mutex<[String?]>([])
        let workers = (0..<3).map { _ in TestThread { let k = q.get(); results.withLock { $0.append(k) } } }
        q.shutDown()
        for w in workers { w.join() }
        #expect(results.withLock { $0 } == [nil, nil, nil])
        q.add("x")
        q.addAfter("y", .milliseconds(1))
        #expect(q.depth == 0)
        #expect(q.get() == nil)
    }

    @Test func shutDownWithDrainWaitsForInFlightWork() {
        let q = WorkQueue<String>()
        q.add("a")
        q.add("b")
        #expect(q.get() == "a")
        let finishedWork = Mutex(false)
        let worker = TestThread {
            Thread.sleep(forTimeInterval: 0.1)
            finishedWork.withLock { $0 = true }
            q.done("a")
        }
        #expect(q.shutDownWithDrain(timeout: .seconds(60)))
        #expect(finishedWork.withLock { $0 })
        // Queued-but-unstarted work is not handed out after shutdown.
        #expect(q.get() == nil)
        worker.join()
    }

    @Test func shutDownWithDrainGivesUpAfterTimeout() {
        let q = WorkQueue<String>()
        q.add("stuck")
        #expect(q.get() == "stuck")
        #expect(q.shutDownWithDrain(timeout: .milliseconds(50)) == false)
        #expect(q.processingCount == 1)
    }

    /// Several producers and workers hammer a handful of keys. Invariants: no key is ever processed by two workers
    /// at once, and every add is followed by a processing run that started after it (no lost update).
    @Test func stressNeverProcessesAKeyConcurrentlyAndLosesNoAdd() {
        struct Book {
            var inFlight: Set<Int> = []
            var violations = 0
            var addGeneration: [Int: Int] = [:]
            var processedGeneration: [Int: Int] = [:]
            var runs = 0
        }
        let q = WorkQueue<Int>(rateLimit: Backoff(initial: .microseconds(100), cap: .milliseconds(2)))
        let book = Mutex(Book())
        let keys = 0..<8
        let workers = (0..<4).map { _ in
            TestThread {
                while let key = q.get() {
                    let seen = book.withLock { b -> Int in
                        if !b.inFlight.insert(key).inserted { b.violations += 1 }
                        b.runs += 1
                        return b.addGeneration[key, default: 0]
                    }
                    if Int.random(in: 0..<4) == 0 { Thread.sleep(forTimeInterval: 0.0002) }
                    book.withLock { b in
                        b.inFlight.remove(key)
                        b.processedGeneration[key] = max(b.processedGeneration[key, default: 0], seen)
                    }
                    if Int.random(in: 0..<8) == 0 { q.forget(key) }
                    q.done(key)
                }
            }
        }
        let producers = (0..<3).map { _ in
            TestThread {
                for _ in 0..<3000 {
                    let key = Int.random(in: keys)
                    // Bump the generation before adding: a run that starts afterwards must see it.
                    book.withLock { $0.addGeneration[key, default: 0] += 1 }
                    // Mix the three ways in: plain, delayed and rate-limited adds share the same invariants.
                    switch Int.random(in: 0..<10) {
                    case 0: q.addAfter(key, .microseconds(Int64.random(in: 1...3000)))
                    case 1: q.addRateLimited(key)
                    default: q.add(key)
                    }
                }
            }
        }
        for p in producers { p.join() }
        let idle = eventually {
            q.depth == 0 && q.processingCount == 0
                && book.withLock { b in keys.allSatisfy { b.processedGeneration[$0, default: 0] >= b.addGeneration[$0, default: 0] } }
        }
        q.shutDown()
        for w in workers { w.join() }
        let final = book.withLock { $0 }
        #expect(idle)
        #expect(final.violations == 0)
        #expect(final.runs > 0 && final.runs <= 9000)
        for key in keys {
            #expect(final.processedGeneration[key, default: 0] == final.addGeneration[key, default: 0])
        }
    }
}

@Suite struct DeadlineHeapTests {
    @Test func popsInDeadlineThenInsertionOrder() {
        var heap = DeadlineHeap<Int>()
        let base = ContinuousClock.now
        var rng = SystemRandomNumberGenerator()
        var expected: [(Int, Int)] = []
        for i in 0..<500 {
            let offset = Int.random(in: 0..<50, using: &rng)
            heap.push(base + .milliseconds(offset), i)
            expected.append((offset, i))
        }
        expected.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var popped: [Int] = []
        while let (_, key) = heap.pop() { popped.append(key) }
        #expect(popped == expected.map(\.1))
        #expect(heap.popIfDue(now: base + .seconds(10)) == nil)
        heap.push(base + .seconds(5), 1)
        #expect(heap.popIfDue(now: base) == nil)
        #expect(heap.popIfDue(now: base + .seconds(5))?.1 == 1)
    }
}
