import Foundation
import Synchronization

/// Threads for short jobs that are kept parked between them, so that a job does not pay a thread's start and
/// end (clone, stack, Foundation's thread object: tens of microseconds, more than a 1 MiB range's hand-offs).
///
/// `run` hands a job to a parked thread, or starts a new one when none is parked: jobs never wait for each other.
/// After a job a thread parks again if fewer than `maxParked` are parked, and ends otherwise, or once it has been
/// parked for `idleTimeout`; so at most `maxParked` threads outlive their jobs, for at most that long.
public final class ParkedThreads: Sendable {
    /// The threads of `BackgroundStage`s (one per relay that decrypts on a second thread).
    public static let stages = ParkedThreads(name: "stage", maxParked: 4, idleTimeout: .seconds(10))

    let name: String
    let maxParked: Int
    let idleTimeout: Duration
    private let parked = Mutex<[Worker]>([])
    private let started = Atomic<Int>(0)

    public init(name: String, maxParked: Int, idleTimeout: Duration) {
        precondition(maxParked >= 0, "a negative number of threads")
        self.name = name
        self.maxParked = maxParked
        self.idleTimeout = idleTimeout
    }

    /// How many threads are parked now.
    public var parkedCount: Int { parked.withLock { $0.count } }
    /// How many threads this pool has started so far (a reused thread is not counted again).
    public var threadsStarted: Int { started.load(ordering: .relaxed) }

    /// Runs `job` on a thread of its own: a parked one if there is one, a new one otherwise.
    public func run(_ job: @escaping @Sendable () -> Void) {
        if let worker = parked.withLock({ $0.popLast() }) {
            worker.assign(job)
            return
        }
        started.add(1, ordering: .relaxed)
        let worker = Worker()
        worker.assign(job)
        let thread = Thread { [self] in
            KernelThreadName.set(name)  // what top -H and perf show (Thread.name does not set it)
            work(worker)
        }
        thread.name = name
        thread.start()
    }

    private func work(_ worker: Worker) {
        while true {
            worker.runJob()
            let parks = parked.withLock { list -> Bool in
                guard list.count < maxParked else { return false }
                list.append(worker)
                return true
            }
            guard parks, worker.waitForJob(timeout: idleTimeout, unpark: { unpark(worker) }) else { return }
        }
    }

    /// Takes `worker` off the parked list; false when `run` took it first (a job is on its way to it).
    private func unpark(_ worker: Worker) -> Bool {
        parked.withLock { list in
            guard let index = list.firstIndex(where: { $0 === worker }) else { return false }
            list.remove(at: index)
            return true
        }
    }

    /// One parked thread's mailbox.
    private final class Worker: @unchecked Sendable {
        private let condition = NSCondition()
        private var job: (@Sendable () -> Void)?  // guarded by `condition`

        func assign(_ job: @escaping @Sendable () -> Void) {
            condition.lock()
            self.job = job
            condition.signal()
            condition.unlock()
        }

        /// Runs the assigned job; it (and what it holds) is released before this returns, not kept while parked.
        func runJob() {
            condition.lock()
            let job = self.job
            self.job = nil
            condition.unlock()
            job?()
        }

        /// Waits for a job; false once the thread has waited `timeout` and taken itself off the parked list.
        func waitForJob(timeout: Duration, unpark: () -> Bool) -> Bool {
            let deadline = Date(timeIntervalSinceNow: Double(timeout.components.seconds)
                + Double(timeout.components.attoseconds) * 1e-18)
            condition.lock()
            defer { condition.unlock() }
            while job == nil {
                if !condition.wait(until: deadline) && job == nil {
                    // Timed out. Whoever took this worker off the list is about to assign a job: wait for it.
                    condition.unlock()
                    let gone = unpark()
                    condition.lock()
                    if gone { return false }
                    while job == nil { condition.wait() }
                }
            }
            return true
        }
    }
}
