import CLinux
import Foundation
import Glibc

/// A bounded, elastic pool of threads for blocking request work.
///
/// Threads are started when work arrives and none is idle, at once up to `growth.eager` threads, and
/// beyond that only when queued work makes no progress for `growthDelay` (`PoolGrowth`), up to
/// `maxThreads`; meanwhile work waits in a queue, in order. A thread idle for `idleExit` ends (down to
/// `minThreads`), so a burst's threads and their stacks go away afterwards. Work is handed straight to the
/// idle thread that waited last (its stack and caches are warm); each thread waits on its own condition,
/// so a hand-off wakes exactly one thread.
final class WorkerPool: @unchecked Sendable {
    typealias Job = () -> Void

    /// One pool thread's hand-off slot. Only touched under the pool mutex.
    private final class Worker {
        var job: Job?
        let condition: UnsafeMutablePointer<pthread_cond_t>

        init() {
            condition = WorkerPool.monotonicCondition()
        }

        deinit {
            pthread_cond_destroy(condition)
            condition.deallocate()
        }
    }

    let name: String
    let maxThreads: Int
    let minThreads: Int
    let idleExit: Duration
    let stackSize: Int
    let growth: PoolGrowth
    let growthDelay: Duration

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let allGone: UnsafeMutablePointer<pthread_cond_t>
    // Guarded by `mutex`.
    private var idle: [Worker] = []
    private var queue: [Job] = []
    private var queueHead = 0
    private var threads = 0
    private var busy = 0
    private var stopping = false
    /// Queued jobs taken by a thread so far: the progress the growth watcher looks at.
    private var started = 0
    /// The growth watcher's thread runs (it starts with the first job queued beyond `growth.eager`).
    private var watcherRunning = false
    /// The watcher sleeps on `watcherCondition` until work is queued (nothing waits). Only then does a
    /// submit signal it: while it watches it waits out its whole delay anyway, and a signal would only wake
    /// it for nothing (a futex wake and a context switch per queued request under load).
    private var watcherParked = false
    private let watcherCondition: UnsafeMutablePointer<pthread_cond_t>

    /// `eagerThreads`: threads started as soon as work finds no idle one (nil: all `maxThreads`).
    init(name: String, maxThreads: Int, minThreads: Int = 0, eagerThreads: Int? = nil,
         growthDelay: Duration = .milliseconds(2), idleExit: Duration = .seconds(10), stackSize: Int = 4 << 20) {
        precondition(maxThreads >= 1 && minThreads >= 0 && minThreads <= maxThreads)
        self.name = name
        self.maxThreads = maxThreads
        self.minThreads = minThreads
        self.growth = PoolGrowth(eager: eagerThreads ?? maxThreads, max: maxThreads)
        self.growthDelay = growthDelay
        self.idleExit = idleExit
        self.stackSize = stackSize
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        allGone = .allocate(capacity: 1)
        pthread_cond_init(allGone, nil)
        watcherCondition = Self.monotonicCondition()
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        pthread_cond_destroy(allGone)
        allGone.deallocate()
        pthread_cond_destroy(watcherCondition)
        watcherCondition.deallocate()
    }

    /// `CLOCK_MONOTONIC` now plus `duration`, for `pthread_cond_timedwait` on a `monotonicCondition()`.
    private static func monotonicDeadline(after duration: Duration) -> timespec {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let (seconds, attoseconds) = duration.components
        deadline.tv_sec += Int(seconds)
        deadline.tv_nsec += Int(attoseconds / 1_000_000_000)
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        return deadline
    }

    private static func monotonicCondition() -> UnsafeMutablePointer<pthread_cond_t> {
        let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attr)
        pthread_condattr_destroy(&attr)
        return condition
    }

    /// Threads alive and threads running a job.
    var counts: (threads: Int, busy: Int, queued: Int) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return (threads, busy, queue.count - queueHead)
    }

    /// The growth watcher runs and sleeps until work is queued (for tests).
    var watcherIsParked: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return watcherRunning && watcherParked
    }

    /// Runs `job` on a pool thread: an idle one, a new one, or the next one free.
    func submit(_ job: @escaping Job) {
        pthread_mutex_lock(mutex)
        if let worker = idle.popLast() {
            worker.job = job
            busy += 1
            pthread_cond_signal(worker.condition)
            pthread_mutex_unlock(mutex)
            return
        }
        queue.append(job)
        var spawn = false
        switch growth.onSubmit(threads: threads) {
        case .startThread:
            threads += 1
            spawn = true
        case .queueAndWatch:
            if watcherRunning {
                if watcherParked { pthread_cond_signal(watcherCondition) }
            } else {
                watcherRunning = true
                startWatcher()
            }
        case .queue:
            break
        }
        pthread_mutex_unlock(mutex)
        if spawn { startThread() }
    }

    /// Lets queued and running jobs finish, then ends every thread. Returns when they are gone.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(watcherCondition)
        for worker in idle { pthread_cond_signal(worker.condition) }
        while threads > 0 || watcherRunning { pthread_cond_wait(allGone, mutex) }
        pthread_mutex_unlock(mutex)
    }

    private func startWatcher() {
        let thread = Thread { [self] in
            KernelThreadName.set("http-grow")
            watchGrowth()
        }
        thread.stackSize = 256 << 10
        thread.start()
    }

    /// The growth watcher: while work waits beyond `growth.eager` threads, it looks every `growthDelay`
    /// whether any queued job started meanwhile, and adds a thread when none did. It sleeps (on its own
    /// condition) while nothing waits.
    private func watchGrowth() {
        pthread_mutex_lock(mutex)
        while !stopping {
            guard queueHead < queue.count else {
                watcherParked = true
                pthread_cond_wait(watcherCondition, mutex)
                watcherParked = false
                continue
            }
            let before = started
            var deadline = Self.monotonicDeadline(after: growthDelay)
            // The whole delay: only `stop` signals while we watch, and that ends the wait.
            while !stopping && pthread_cond_timedwait(watcherCondition, mutex, &deadline) != ETIMEDOUT {}
            if stopping { break }
            if growth.grows(queued: queue.count - queueHead, startedMeanwhile: started - before, threads: threads) {
                threads += 1
                pthread_mutex_unlock(mutex)
                startThread()
                pthread_mutex_lock(mutex)
            }
        }
        watcherRunning = false
        pthread_cond_broadcast(allGone)
        pthread_mutex_unlock(mutex)
    }

    private func startThread() {
        let thread = Thread { [self] in
            KernelThreadName.set(name)
            run()
        }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }

    /// Must be called with `mutex` held.
    private func takeQueued() -> Job? {
        guard queueHead < queue.count else { return nil }
        let job = queue[queueHead]
        queueHead += 1
        started += 1
        if queueHead > 64 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        busy += 1
        return job
    }

    private func run() {
        let me = Worker()
        pthread_mutex_lock(mutex)
        while true {
            if let job = me.job ?? takeQueued() {
                me.job = nil
                pthread_mutex_unlock(mutex)
                job()
                pthread_mutex_lock(mutex)
                busy -= 1
                continue
            }
            if stopping { break }
            idle.append(me)
            var deadline = Self.monotonicDeadline(after: idleExit)
            let rc = pthread_cond_timedwait(me.condition, mutex, &deadline)
            if me.job != nil { continue }  // handed a job (submit already took us off the idle list)
            idle.removeAll { $0 === me }
            if stopping { break }
            if rc == ETIMEDOUT && threads > minThreads { break }
        }
        threads -= 1
        if threads == 0 { pthread_cond_broadcast(allGone) }
        pthread_mutex_unlock(mutex)
    }
}

/// When a `WorkerPool` starts a thread. Up to `eager` threads start as soon as work finds no idle one.
/// Beyond that, work waits in the queue, in order, and a thread is added (up to `max`) only when queued
/// work has made no progress, no queued job started, for a short delay: then the threads are blocked
/// (on slow clients, slow backends), so one more is needed for anybody else to get served. While they
/// are busy on the CPU instead, more threads would only time-slice the same cores: with ≈ 100 threads for
/// 64 connections on 2 cores, every request waited for its share of many slices (p99), and the extra
/// sleeps and wake-ups cost CPU (measured: 4 × cores eager threads, 64 connections of 4 KiB GETs:
/// +20–27 % requests/s, p99 × 0.54–0.69, −27 % CPU per request).
struct PoolGrowth: Equatable, Sendable {
    let eager: Int
    let max: Int

    init(eager: Int, max: Int) {
        self.eager = Swift.max(1, Swift.min(eager, max))
        self.max = max
    }

    enum OnSubmit: Equatable, Sendable {
        /// Start a thread for the job now.
        case startThread
        /// Queue the job; the growth watcher watches the queue's progress.
        case queueAndWatch
        /// Queue the job (every thread there may be runs).
        case queue
    }

    /// A job arrives and no thread is idle; `threads` are alive.
    func onSubmit(threads: Int) -> OnSubmit {
        if threads < eager { return .startThread }
        return threads < max ? .queueAndWatch : .queue
    }

    /// After a delay of watching: whether to add a thread.
    func grows(queued: Int, startedMeanwhile: Int, threads: Int) -> Bool {
        queued > 0 && startedMeanwhile == 0 && threads < max
    }
}

/// The kernel's name of the calling thread (what `top -H`, `/proc/<pid>/task/*/comm` and `perf` show).
/// Foundation's `Thread.name` does not set it, so without this every thread carries the binary's name.
enum KernelThreadName {
    /// Sets it to `name` (the kernel keeps the first 15 bytes).
    static func set(_ name: String) {
        _ = clinux_set_thread_name(name)
    }

    /// The calling thread's kernel name.
    static func current() -> String {
        var buffer = [CChar](repeating: 0, count: 16)
        guard clinux_get_thread_name(&buffer) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
