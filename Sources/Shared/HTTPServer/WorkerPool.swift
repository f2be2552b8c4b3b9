import CLinux
import Foundation
import Glibc

/// A bounded, elastic pool of threads for blocking request work.
///
/// Threads are started when work arrives and none is idle, up to `maxThreads`; beyond that, work waits in
/// a queue. A thread idle for `idleExit` ends (down to `minThreads`), so a burst's threads and their stacks
/// go away afterwards. Work is handed straight to the idle thread that waited last (its stack and caches
/// are warm); each thread waits on its own condition, so a hand-off wakes exactly one thread.
final class WorkerPool: @unchecked Sendable {
    typealias Job = () -> Void

    /// One pool thread's hand-off slot. Only touched under the pool mutex.
    private final class Worker {
        var job: Job?
        let condition: UnsafeMutablePointer<pthread_cond_t>

        init() {
            condition = .allocate(capacity: 1)
            var attr = pthread_condattr_t()
            pthread_condattr_init(&attr)
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
            pthread_cond_init(condition, &attr)
            pthread_condattr_destroy(&attr)
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

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let allGone: UnsafeMutablePointer<pthread_cond_t>
    // Guarded by `mutex`.
    private var idle: [Worker] = []
    private var queue: [Job] = []
    private var queueHead = 0
    private var threads = 0
    private var busy = 0
    private var stopping = false

    init(name: String, maxThreads: Int, minThreads: Int = 0, idleExit: Duration = .seconds(10),
         stackSize: Int = 4 << 20) {
        precondition(maxThreads >= 1 && minThreads >= 0 && minThreads <= maxThreads)
        self.name = name
        self.maxThreads = maxThreads
        self.minThreads = minThreads
        self.idleExit = idleExit
        self.stackSize = stackSize
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        allGone = .allocate(capacity: 1)
        pthread_cond_init(allGone, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        pthread_cond_destroy(allGone)
        allGone.deallocate()
    }

    /// Threads alive and threads running a job.
    var counts: (threads: Int, busy: Int, queued: Int) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return (threads, busy, queue.count - queueHead)
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
        if threads < maxThreads {
            threads += 1
            spawn = true
        }
        pthread_mutex_unlock(mutex)
        if spawn { startThread() }
    }

    /// Lets queued and running jobs finish, then ends every thread. Returns when they are gone.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        for worker in idle { pthread_cond_signal(worker.condition) }
        while threads > 0 { pthread_cond_wait(allGone, mutex) }
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
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let (seconds, attoseconds) = idleExit.components
            deadline.tv_sec += Int(seconds)
            deadline.tv_nsec += Int(attoseconds / 1_000_000_000)
            if deadline.tv_nsec >= 1_000_000_000 {
                deadline.tv_sec += 1
                deadline.tv_nsec -= 1_000_000_000
            }
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
