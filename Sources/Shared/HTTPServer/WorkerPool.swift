import CLinux
import Foundation
import Glibc
import Synchronization

/// A bounded, elastic pool of threads for blocking request work.
///
/// Idle threads wait in `epoll_wait` on the pool's *ready set*, an epoll set that holds two kinds of work:
/// the pool's bell (an eventfd rung when a job is queued with `submit`) and the settled kept-alive
/// connections the event loops parked there (`EventLoop.park`). A connection's next request wakes one idle
/// thread, which reads and serves it itself (`readyHandler`): no queue, no condition variable, no second
/// thread woken. The kernel wakes the thread that waited last (epoll's exclusive waiters are LIFO), whose
/// stack and caches are warm.
///
/// Threads are started when work arrives and none waits, at once up to `growth.eager` threads, and beyond
/// that only when waiting work (queued jobs, or ready connections nobody takes) makes no progress for
/// `growthDelay` (`PoolGrowth`), up to `maxThreads`; meanwhile queued jobs wait in order. A thread idle for
/// `idleExit` ends (down to `minThreads`), so a burst's threads and their stacks go away afterwards.
///
/// **Liveness invariant.** Whenever connections are in the ready set, either some thread waits on it, or
/// the growth watcher is sure to run (watching, or signalled out of its sleep) and to start one when an
/// event waits and nothing makes progress, up to `maxThreads`. So a parked connection's request never
/// waits for another request to end (a slow upload, a slow backend) while the pool may still grow. Kept by
/// one rule, `noWaiter()`: whoever makes "nobody waits" true calls it, with the pure decision in
/// `PoolGrowth.onNoWaiter` (start a thread below the eager count, else make the watcher watch):
/// - a thread that leaves the wait as the last waiter and does not wait again at once: for a
///   connection's event, or for the bell (a queued job);
/// - the loop that registers a connection in the ready set while no thread waits (`register`);
/// - nobody else: a thread whose wait times out ends only while another thread still waits, or while no
///   connection is registered (`PoolGrowth.exitsWhenIdle`); `stop` comes after every connection left.
/// The counters behind it (`waiting`, `registered`, `watcherState`) are sequentially consistent: each side
/// writes its own counter, then reads the other's, so at least one of two racing sides sees the other.
///
/// **Back to the wait without the lock.** A thread that served a ready connection goes straight back to
/// `epoll_wait` unless a job is queued: it counts itself in `waiting`, then reads `queuedJobs`; `submit`
/// counts its job in `queuedJobs`, then reads `waiting` (all sequentially consistent, the same pairing as
/// above). So either the thread sees the job and takes it under the lock, or `submit` sees the thread
/// waiting and rings the bell for it (or, when the waiters are claimed by earlier jobs, starts or watches
/// as for any busy pool): no job is left queued while the thread sleeps. A thread that counted itself and
/// then leaves for the job uncounts itself, and if that leaves nobody waiting it acts as any last waiter
/// leaving for work (`noWaiter`): a `register` may have seen it counted.
final class WorkerPool: @unchecked Sendable {
    typealias Job = () -> Void

    /// The bell's epoll data in the ready set (a connection's is its address, never 0).
    static let bellID: UInt64 = 0

    let name: String
    let maxThreads: Int
    let minThreads: Int
    let idleExit: Duration
    let stackSize: Int
    let growth: PoolGrowth
    let growthDelay: Duration
    /// The epoll set idle threads wait on: the bell, and the connections parked there (`EventLoop.park`).
    let readySet: Int32
    /// Rung (made readable) while jobs are queued and threads wait; level-triggered in the ready set, so
    /// it wakes one waiter after another until the queue is empty.
    private let bell: Int32
    /// Serves a ready connection (its epoll data); set once, before any connection is parked.
    var readyHandler: ((UInt64) -> Void)?

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let allGone: UnsafeMutablePointer<pthread_cond_t>
    // Guarded by `mutex`.
    private var queue: [Job] = []
    private var queueHead = 0
    private var threads = 0
    private var stopping = false
    private var bellRung = false
    private let watcherCondition: UnsafeMutablePointer<pthread_cond_t>
    /// Jobs in `queue` (mirrors `queue.count - queueHead`; written under `mutex`, read without it by a thread
    /// on its way back to the wait, see the type's comment).
    private let queuedJobs = Atomic<Int>(0)
    /// Test hook: runs on a pool thread that served a ready connection, after it counted itself waiting
    /// and before it looks for queued jobs (the window `submit` races with). Set before anything is served.
    var beforeLookingForJobs: (() -> Void)?
    /// Waits on the ready set that ended with nothing ready (for tests: an idle thread's decision to end
    /// or to stay has been taken, under `mutex`, by the time this counts it).
    private var idleTimeouts = 0
    // Written under `mutex`, read without it where a stale value only costs a look under the lock.
    /// Threads alive (mirrors `threads`).
    private let threadCount = Atomic<Int>(0)
    /// The growth watcher: 0 not running, 1 watching, 2 asleep on `watcherCondition` until work may wait
    /// (jobs queued, or nobody waits on the ready set while connections are in it). Only then is it
    /// signalled: while it watches it waits out its whole delay anyway, and a signal per queued job would
    /// only wake it for nothing (a futex wake and a context switch per queued request under load).
    private let watcherState = Atomic<Int>(0)
    // Lock-free.
    /// Threads in `epoll_wait` on the ready set (counted from just before the wait, under `mutex`).
    private let waiting = Atomic<Int>(0)
    /// Connections registered in the ready set: parked there, served from it, or back with their loop
    /// for a while (from `register` until `unregister`).
    private let registered = Atomic<Int>(0)
    private let busy = Atomic<Int>(0)
    /// Jobs and ready connections taken by a thread so far: the progress the growth watcher looks at.
    private let started = Atomic<Int>(0)

    /// `eagerThreads`: threads started as soon as work finds no waiting one (nil: all `maxThreads`).
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
        readySet = epoll_create1(Int32(EPOLL_CLOEXEC))
        bell = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(readySet >= 0 && bell >= 0, "worker pool: epoll_create1/eventfd failed (errno \(errno))")
        _ = clinux_epoll_ctl(readySet, EPOLL_CTL_ADD, bell, clinux_epollin(), Self.bellID)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        allGone = .allocate(capacity: 1)
        pthread_cond_init(allGone, nil)
        watcherCondition = Self.monotonicCondition()
    }

    deinit {
        close(readySet)
        close(bell)
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

    /// Threads alive, threads running a job or serving a connection, jobs waiting for a thread.
    var counts: (threads: Int, busy: Int, queued: Int) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return (threads, busy.load(ordering: .relaxed), queue.count - queueHead)
    }

    /// Jobs and ready connections taken by a thread so far (for noticing that requests ran).
    var startedCount: Int { started.load(ordering: .relaxed) }

    /// Threads waiting on the ready set now (for tests).
    var waitingCount: Int { waiting.load(ordering: .sequentiallyConsistent) }

    /// Waits on the ready set that timed out so far (for tests).
    var idleTimeoutCount: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return idleTimeouts
    }

    /// The growth watcher runs and sleeps until work may wait (for tests).
    var watcherIsParked: Bool { watcherState.load(ordering: .sequentiallyConsistent) == 2 }

    /// Loop: a connection is about to enter the ready set for the first time (before its `EPOLL_CTL_ADD`).
    /// If no thread waits, the watcher watches: a thread may have ended, or left the wait, just before it
    /// could see the connection counted. (Usually the thread that served the connection's first request
    /// is on its way back to the wait; the watcher adds one only if an event waits and nothing progresses.)
    func register() {
        registered.add(1, ordering: .sequentiallyConsistent)
        if waiting.load(ordering: .sequentiallyConsistent) == 0 { noWaiter(.connectionEntered) }
    }

    /// Loop: a registered connection is closed (its socket left the ready set).
    func unregister() {
        registered.subtract(1, ordering: .sequentiallyConsistent)
    }

    /// Runs `job` on a pool thread: a waiting one, a new one, or the next one free.
    func submit(_ job: @escaping Job) {
        pthread_mutex_lock(mutex)
        let queued = queue.count - queueHead
        queue.append(job)
        // Counted, then `waiting` read: pairs with a thread going back to the wait without the lock (see
        // the type's comment).
        queuedJobs.store(queued + 1, ordering: .sequentiallyConsistent)
        var spawn = false
        switch growth.onSubmit(threads: threads, waiting: waiting.load(ordering: .sequentiallyConsistent),
                               queued: queued) {
        case .ring:
            ringBell()
        case .startThread:
            spawn = true
            threads += 1
            threadCount.store(threads, ordering: .relaxed)
        case .queueAndWatch:
            wakeWatcher()  // no thread waits: the next one to finish takes the job
        case .queue:
            break
        }
        pthread_mutex_unlock(mutex)
        if spawn { startThread() }
    }

    /// Lets queued and running jobs finish, then ends every thread. Returns when they are gone. Every
    /// connection must have left the ready set before (the event loops close them before they end).
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(watcherCondition)
        ringBell()  // stays rung: wakes every waiter in turn
        while threads > 0 || watcherState.load(ordering: .relaxed) != 0 { pthread_cond_wait(allGone, mutex) }
        pthread_mutex_unlock(mutex)
    }

    /// Must be called with `mutex` held.
    private func ringBell() {
        guard !bellRung else { return }
        bellRung = true
        var one: UInt64 = 1
        _ = write(bell, &one, 8)
    }

    /// Must be called with `mutex` held: the queue is empty, so waiters need not wake for it.
    private func silenceBell() {
        guard bellRung, !stopping else { return }
        bellRung = false
        var value: UInt64 = 0
        _ = read(bell, &value, 8)
    }

    /// Must be called with `mutex` held.
    private func wakeWatcher() {
        switch watcherState.load(ordering: .sequentiallyConsistent) {
        case 0:
            watcherState.store(1, ordering: .sequentiallyConsistent)
            startWatcher()
        case 2:
            pthread_cond_signal(watcherCondition)
        default:
            break
        }
    }

    private func startWatcher() {
        let thread = Thread { [self] in
            KernelThreadName.set("http-grow")
            watchGrowth()
        }
        thread.stackSize = 256 << 10
        thread.start()
    }

    /// Must be called with `mutex` held: work may wait unserved (jobs queued, or connections in the ready
    /// set and no thread waiting there, so a ready one would wait too) and a thread may still be added.
    private func workMayWait() -> Bool {
        guard threads < maxThreads else { return false }
        return queueHead < queue.count
            || (waiting.load(ordering: .sequentiallyConsistent) == 0 && registered.load(ordering: .sequentiallyConsistent) > 0)
    }

    /// The growth watcher: while work may wait unserved (`workMayWait`), it looks every `growthDelay`
    /// whether any work started meanwhile, and adds a thread when work waits and none did. Otherwise it
    /// sleeps on its own condition until `submit` or `noWaiter` signals it.
    private func watchGrowth() {
        pthread_mutex_lock(mutex)
        while !stopping {
            guard workMayWait() else {
                // Announce the sleep, then look again: a thread that left the wait before saw us watching
                // (`noWaiter`'s fast path) and relies on this look; one that leaves after sees us asleep.
                watcherState.store(2, ordering: .sequentiallyConsistent)
                if workMayWait() {
                    watcherState.store(1, ordering: .sequentiallyConsistent)
                    continue
                }
                pthread_cond_wait(watcherCondition, mutex)
                watcherState.store(1, ordering: .sequentiallyConsistent)
                continue
            }
            let before = started.load(ordering: .relaxed)
            var deadline = Self.monotonicDeadline(after: growthDelay)
            // The whole delay: a signal while we watch does not cut it short.
            while !stopping && pthread_cond_timedwait(watcherCondition, mutex, &deadline) != ETIMEDOUT {}
            if stopping { break }
            let workWaits = queueHead < queue.count
                || (waiting.load(ordering: .sequentiallyConsistent) == 0 && readySetHasEvents())
            if growth.grows(workWaits: workWaits, startedMeanwhile: started.load(ordering: .relaxed) - before,
                            threads: threads) {
                threads += 1
                threadCount.store(threads, ordering: .relaxed)
                pthread_mutex_unlock(mutex)
                startThread()
                pthread_mutex_lock(mutex)
            }
        }
        watcherState.store(0, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(allGone)
        pthread_mutex_unlock(mutex)
    }

    /// Whether the ready set holds an event nobody took (polling an epoll set does not take its events).
    private func readySetHasEvents() -> Bool {
        var p = pollfd(fd: readySet, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
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
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
            silenceBell()
        } else if queueHead > 64 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        queuedJobs.store(queue.count - queueHead, ordering: .sequentiallyConsistent)
        started.add(1, ordering: .relaxed)
        busy.add(1, ordering: .relaxed)
        return job
    }

    /// Nobody may be waiting on the ready set: the caller was the last waiter and leaves it, or registered
    /// a connection and saw no waiter. If connections are registered and still nobody waits, start a
    /// thread below the eager count, else make sure the growth watcher watches (the liveness invariant,
    /// see the type's comment). Lock-free when a thread waits again, nothing is registered, or the watcher
    /// already watches (it looks at `waiting` again before it sleeps).
    private func noWaiter(_ cause: PoolGrowth.NoWaiterCause) {
        let registeredNow = registered.load(ordering: .sequentiallyConsistent)
        if waiting.load(ordering: .sequentiallyConsistent) > 0 || registeredNow == 0 { return }
        if growth.onNoWaiter(cause, threads: threadCount.load(ordering: .sequentiallyConsistent), waiting: 0,
                             registered: registeredNow) == .watch,
           watcherState.load(ordering: .sequentiallyConsistent) == 1 {
            return
        }
        // Anything else under the lock, `.nothing` at the maximum included: the count may be stale (a
        // thread that ended just before must not leave the watcher asleep).
        pthread_mutex_lock(mutex)
        let spawn = noWaiterLocked(cause)
        pthread_mutex_unlock(mutex)
        if spawn { startThread() }
    }

    /// `noWaiter` with `mutex` held; true when the caller must start the thread it counted.
    private func noWaiterLocked(_ cause: PoolGrowth.NoWaiterCause) -> Bool {
        guard !stopping else { return false }
        switch growth.onNoWaiter(cause, threads: threads, waiting: waiting.load(ordering: .sequentiallyConsistent),
                                 registered: registered.load(ordering: .sequentiallyConsistent)) {
        case .startThread:
            threads += 1
            threadCount.store(threads, ordering: .sequentiallyConsistent)
            return true
        case .watch:
            wakeWatcher()
        case .nothing:
            break
        }
        return false
    }

    private func run() {
        let idleMilliseconds = ServerSockets.milliseconds(idleExit)
        pthread_mutex_lock(mutex)
        while true {
            if let job = takeQueued() {
                pthread_mutex_unlock(mutex)
                job()
                busy.subtract(1, ordering: .relaxed)
                pthread_mutex_lock(mutex)
                continue
            }
            if stopping { break }
            // Counted before the look `submit` pairs with: a submit that sees no waiter starts a thread
            // instead of ringing.
            waiting.add(1, ordering: .sequentiallyConsistent)
            pthread_mutex_unlock(mutex)
            var event = clinux_epoll_event()
            var n: Int32
            var left: Int
            var forJob = false
            while true {
                n = clinux_epoll_wait(readySet, &event, 1, idleMilliseconds)
                left = waiting.subtract(1, ordering: .sequentiallyConsistent).newValue
                guard n == 1 && event.data != Self.bellID, let serve = readyHandler else { break }
                started.add(1, ordering: .relaxed)
                busy.add(1, ordering: .relaxed)
                if left == 0 { noWaiter(.threadLeft) }
                serve(event.data)
                busy.subtract(1, ordering: .relaxed)
                // Back to the wait without the lock unless a job is queued (see the type's comment).
                waiting.add(1, ordering: .sequentiallyConsistent)
                beforeLookingForJobs?()
                if queuedJobs.load(ordering: .sequentiallyConsistent) == 0 { continue }
                left = waiting.subtract(1, ordering: .sequentiallyConsistent).newValue
                forJob = true
                break
            }
            pthread_mutex_lock(mutex)
            if n == 1 || forJob {
                // The bell, or a job seen on the way back: the job is taken at the top of the loop. The last
                // waiter leaves for it as for a connection's event (a job may block as long as any request).
                if left == 0 && queueHead < queue.count && noWaiterLocked(.threadLeft) {
                    pthread_mutex_unlock(mutex)
                    startThread()
                    pthread_mutex_lock(mutex)
                }
                continue
            }
            if n == 0 {
                idleTimeouts += 1
                // `waiting` as it is now, not `left`: a thread that leaves the wait after this look sees
                // the thread count without this one (it is lowered before the lock is released).
                if !stopping && growth.exitsWhenIdle(threads: threads, minThreads: minThreads,
                                                     queued: queue.count - queueHead,
                                                     othersWaiting: waiting.load(ordering: .sequentiallyConsistent),
                                                     registered: registered.load(ordering: .sequentiallyConsistent)) {
                    break
                }
            }
        }
        threads -= 1
        threadCount.store(threads, ordering: .sequentiallyConsistent)
        if threads == 0 { pthread_cond_broadcast(allGone) }
        pthread_mutex_unlock(mutex)
    }
}

/// When a `WorkerPool` starts a thread. Up to `eager` threads start as soon as work finds no waiting one.
/// Beyond that, work waits (jobs in the queue, in order; ready connections in the ready set), and a thread
/// is added (up to `max`) only when waiting work has made no progress, nothing started, for a short delay:
/// then the threads are blocked (on slow clients, slow backends), so one more is needed for anybody else
/// to get served. While they are busy on the CPU instead, more threads would only time-slice the same
/// cores: with ≈ 100 threads for 64 connections on 2 cores, every request waited for its share of many
/// slices (p99), and the extra sleeps and wake-ups cost CPU (measured: 4 × cores eager threads, 64
/// connections of 4 KiB GETs: +20–27 % requests/s, p99 × 0.54–0.69, −27 % CPU per request).
struct PoolGrowth: Equatable, Sendable {
    let eager: Int
    let max: Int

    init(eager: Int, max: Int) {
        self.eager = Swift.max(1, Swift.min(eager, max))
        self.max = max
    }

    enum OnSubmit: Equatable, Sendable {
        /// A thread waits for work that is not yet claimed: ring the bell.
        case ring
        /// Start a thread for the job now.
        case startThread
        /// Queue the job; the growth watcher watches the queue's progress.
        case queueAndWatch
        /// Queue the job (every thread there may be runs).
        case queue
    }

    /// A job arrives; `threads` are alive, `waiting` of them wait for work, `queued` jobs wait already
    /// (each claims a waiter).
    func onSubmit(threads: Int, waiting: Int, queued: Int) -> OnSubmit {
        if waiting > queued { return .ring }
        if threads < eager { return .startThread }
        return threads < max ? .queueAndWatch : .queue
    }

    enum OnNoWaiter: Equatable, Sendable {
        /// Start a thread to wait for the next ready connection.
        case startThread
        /// The growth watcher must watch: a ready connection would now wait for a thread.
        case watch
        case nothing
    }

    enum NoWaiterCause: Equatable, Sendable {
        /// The last thread waiting on the ready set left it for work (a connection's event, a queued job).
        case threadLeft
        /// A connection entered the ready set while no thread waited.
        case connectionEntered
    }

    /// Nobody may wait on the ready set (`cause`); `threads` are alive, `waiting` wait there now (one that
    /// came back takes over), `registered` connections are in the set. A ready connection must never wait
    /// for another request to end while the pool may grow. A thread that left for work may be held by it
    /// for as long as any request: one starts at once below the eager count, else the watcher watches
    /// (`grows`). A connection that entered with nobody waiting gets the watcher only: the thread that
    /// served its first request is usually on its way back to the wait.
    func onNoWaiter(_ cause: NoWaiterCause, threads: Int, waiting: Int, registered: Int) -> OnNoWaiter {
        if waiting > 0 || registered == 0 { return .nothing }
        if cause == .threadLeft && threads < eager { return .startThread }
        return threads < max ? .watch : .nothing
    }

    /// A thread's wait on the ready set timed out (`idleExit`): whether it ends. Not below `minThreads`,
    /// not while jobs are queued, and not as the last waiter while connections are in the ready set:
    /// then nobody would wait for their next request, and it would wait for a busy thread to finish.
    func exitsWhenIdle(threads: Int, minThreads: Int, queued: Int, othersWaiting: Int, registered: Int) -> Bool {
        threads > minThreads && queued == 0 && (othersWaiting > 0 || registered == 0)
    }

    /// After a delay of watching: whether to add a thread.
    func grows(workWaits: Bool, startedMeanwhile: Int, threads: Int) -> Bool {
        workWaits && startedMeanwhile == 0 && threads < max
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
