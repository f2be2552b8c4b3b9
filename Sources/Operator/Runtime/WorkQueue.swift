import Foundation

/// What a work queue reports, as client-go's `workqueue` metrics (depth, adds, retries, queue latency,
/// work duration). Calls happen under the queue's lock: implementations must be cheap and never call back.
protocol WorkQueueMetrics: Sendable {
    func depthChanged(_ depth: Int)
    func added()
    func retried()
    /// Time an item waited in the queue between `add` and `get`.
    func queueLatency(_ duration: Duration)
    /// Time between `get` and `done`.
    func workDuration(_ duration: Duration)
}

/// Metrics that go nowhere (unit tests, or when no registry is configured).
struct NoWorkQueueMetrics: WorkQueueMetrics {
    func depthChanged(_ depth: Int) {}
    func added() {}
    func retried() {}
    func queueLatency(_ duration: Duration) {}
    func workDuration(_ duration: Duration) {}
}

/// A rate-limited, delaying work queue with client-go's semantics:
///
/// - per-key dedup: a key added many times before a worker takes it is processed once;
/// - a key is never handed to two workers at once: while it is being processed, re-adds only mark it dirty,
///   and `done` puts it back so it runs once more with the latest state (the `dirty`/`processing` sets);
/// - `addRateLimited` waits a per-key exponential backoff (5 ms doubling to 1000 s); `forget` resets it;
/// - `addAfter` (a reconciler's requeue-after) keeps only the earliest pending time per key.
///
/// Workers block in `get()`, which returns nil once the queue is shut down. Unlike client-go, a shut-down
/// queue hands out no further items: shutdown means "start no new reconcile", and `shutDownWithDrain` waits for
/// the in-flight ones.
final class WorkQueue<Key: Hashable & Sendable>: @unchecked Sendable {
    // All state below is guarded by `condition`'s lock.
    private let condition = NSCondition()
    private var fifo: [Key] = []
    private var fifoHead = 0
    private var dirty: Set<Key> = []
    private var processing: Set<Key> = []
    private var addedAt: [Key: ContinuousClock.Instant] = [:]
    private var startedAt: [Key: ContinuousClock.Instant] = [:]
    private var failures: [Key: Int] = [:]
    private var waiting: [Key: ContinuousClock.Instant] = [:]
    private var waitHeap = DeadlineHeap<Key>()
    private var shuttingDown = false

    let rateLimit: Backoff
    private let metrics: any WorkQueueMetrics
    private let clock = ContinuousClock()

    init(rateLimit: Backoff = .perItem, metrics: any WorkQueueMetrics = NoWorkQueueMetrics()) {
        self.rateLimit = rateLimit
        self.metrics = metrics
    }

    // MARK: Adding

    /// Marks `key` as needing processing. No-op after shutdown.
    func add(_ key: Key) {
        condition.lock()
        defer { condition.unlock() }
        addLocked(key, now: clock.now)
    }

    /// Adds `key` after `delay` (immediately when it is not positive). If the key is already waiting,
    /// the earlier of the two times wins.
    func addAfter(_ key: Key, _ delay: Duration) {
        condition.lock()
        defer { condition.unlock() }
        guard !shuttingDown else { return }
        let now = clock.now
        guard delay > .zero else {
            addLocked(key, now: now)
            return
        }
        let readyAt = now + delay
        if let existing = waiting[key], existing <= readyAt { return }
        waiting[key] = readyAt
        waitHeap.push(readyAt, key)
        // A worker sleeping until a later deadline must recompute its wait.
        condition.broadcast()
    }

    /// Adds `key` after its per-key backoff and counts one more failure for it.
    func addRateLimited(_ key: Key) {
        condition.lock()
        let attempt = failures[key, default: 0]
        failures[key] = attempt + 1
        let stopped = shuttingDown
        condition.unlock()
        guard !stopped else { return }
        metrics.retried()
        addAfter(key, rateLimit.delay(forAttempt: attempt))
    }

    /// Clears `key`'s failure count (after a successful reconcile).
    func forget(_ key: Key) {
        condition.lock()
        defer { condition.unlock() }
        failures[key] = nil
    }

    /// How many rate-limited requeues `key` has had since the last `forget`.
    func numRequeues(_ key: Key) -> Int {
        condition.lock()
        defer { condition.unlock() }
        return failures[key, default: 0]
    }

    // MARK: Working

    /// Blocks until a key is ready, marks it processing and returns it; nil once the queue is shut down.
    /// Every returned key must be passed to `done`.
    func get() -> Key? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if shuttingDown { return nil }
            let now = clock.now
            promoteDue(now: now)
            if fifoHead < fifo.count { break }
            if let next = waitHeap.peekDeadline {
                let remaining = now.duration(to: next)
                _ = condition.wait(until: Date(timeIntervalSinceNow: max(0, remaining.runtimeSeconds)))
            } else {
                condition.wait()
            }
        }
        let key = fifo[fifoHead]
        fifoHead += 1
        compactFIFO()
        let now = clock.now
        if let added = addedAt.removeValue(forKey: key) { metrics.queueLatency(added.duration(to: now)) }
        startedAt[key] = now
        processing.insert(key)
        dirty.remove(key)
        metrics.depthChanged(fifo.count - fifoHead)
        return key
    }

    /// Ends processing of `key`; if it was re-added meanwhile, it goes back into the queue.
    func done(_ key: Key) {
        condition.lock()
        defer { condition.unlock() }
        let now = clock.now
        if let started = startedAt.removeValue(forKey: key) { metrics.workDuration(started.duration(to: now)) }
        processing.remove(key)
        if dirty.contains(key) {
            fifo.append(key)
            addedAt[key] = now
            metrics.depthChanged(fifo.count - fifoHead)
            condition.signal()
        }
        if processing.isEmpty { condition.broadcast() }
    }

    /// Items ready to be handed out (not counting delayed ones).
    var depth: Int {
        condition.lock()
        defer { condition.unlock() }
        promoteDue(now: clock.now)
        return fifo.count - fifoHead
    }

    /// Keys currently being processed.
    var processingCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return processing.count
    }

    var isShuttingDown: Bool {
        condition.lock()
        defer { condition.unlock() }
        return shuttingDown
    }

    // MARK: Shutdown

    /// Stops the queue: `get()` returns nil from now on, adds are ignored, delayed adds are dropped.
    func shutDown() {
        condition.lock()
        defer { condition.unlock() }
        shutDownLocked()
    }

    /// Shuts down, then waits until every key handed out has been passed to `done`, at most `timeout`.
    /// Returns whether the queue drained in time.
    @discardableResult
    func shutDownWithDrain(timeout: Duration) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        shutDownLocked()
        let deadline = Date(timeIntervalSinceNow: timeout.runtimeSeconds)
        while !processing.isEmpty {
            if !condition.wait(until: deadline) { return processing.isEmpty }
        }
        return true
    }

    // MARK: Private (lock held)

    private func shutDownLocked() {
        shuttingDown = true
        waiting.removeAll()
        waitHeap.removeAll()
        condition.broadcast()
    }

    private func addLocked(_ key: Key, now: ContinuousClock.Instant) {
        guard !shuttingDown else { return }
        if dirty.contains(key) { return }
        metrics.added()
        dirty.insert(key)
        // The key re-enters the FIFO from `done`; queuing it now would let a second worker take it.
        if processing.contains(key) { return }
        fifo.append(key)
        addedAt[key] = now
        metrics.depthChanged(fifo.count - fifoHead)
        condition.signal()
    }

    private func promoteDue(now: ContinuousClock.Instant) {
        while let (deadline, key) = waitHeap.popIfDue(now: now) {
            // Stale heap entries (the key was re-scheduled earlier) are skipped.
            guard waiting[key] == deadline else { continue }
            waiting[key] = nil
            addLocked(key, now: now)
        }
    }

    private func compactFIFO() {
        if fifoHead == fifo.count {
            fifo.removeAll(keepingCapacity: true)
            fifoHead = 0
        } else if fifoHead > 1024, fifoHead * 2 > fifo.count {
            fifo.removeFirst(fifoHead)
            fifoHead = 0
        }
    }
}

/// A binary min-heap of (deadline, key), ties broken by insertion order so equal deadlines keep FIFO order.
struct DeadlineHeap<Key> {
    private var entries: [(deadline: ContinuousClock.Instant, seq: UInt64, key: Key)] = []
    private var nextSeq: UInt64 = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var peekDeadline: ContinuousClock.Instant? { entries.first?.deadline }

    mutating func removeAll() { entries.removeAll() }

    mutating func push(_ deadline: ContinuousClock.Instant, _ key: Key) {
        entries.append((deadline, nextSeq, key))
        nextSeq += 1
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popIfDue(now: ContinuousClock.Instant) -> (ContinuousClock.Instant, Key)? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        return pop().map { ($0.0, $0.1) }
    }

    mutating func pop() -> (ContinuousClock.Instant, Key)? {
        guard !entries.isEmpty else { return nil }
        entries.swapAt(0, entries.count - 1)
        let top = entries.removeLast()
        var parent = 0
        while true {
            let l = 2 * parent + 1, r = l + 1
            var smallest = parent
            if l < entries.count, less(l, smallest) { smallest = l }
            if r < entries.count, less(r, smallest) { smallest = r }
            if smallest == parent { break }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.deadline, top.key)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        let x = entries[a], y = entries[b]
        return x.deadline != y.deadline ? x.deadline < y.deadline : x.seq < y.seq
    }
}
