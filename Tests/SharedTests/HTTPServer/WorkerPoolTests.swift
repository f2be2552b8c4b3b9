import CLinux
import Foundation
import Glibc
import Synchronization
import Testing
@testable import Shared

struct PoolGrowthTests {
    /// A job arrives: (eager, max, threads alive, threads waiting, jobs queued) → what the pool does.
    @Test(arguments: [
        (4, 16, 2, 1, 0, PoolGrowth.OnSubmit.ring),
        (4, 16, 2, 2, 1, .ring),  // a second waiter for the second job
        (4, 16, 2, 1, 1, .startThread),  // the only waiter is claimed by the job before
        (4, 16, 0, 0, 0, .startThread),
        (4, 16, 3, 0, 0, .startThread),
        (4, 16, 4, 0, 0, .queueAndWatch),
        (4, 16, 15, 0, 3, .queueAndWatch),
        (4, 16, 16, 0, 0, .queue),
        (4, 4, 4, 0, 0, .queue),
        (32, 8, 7, 0, 0, .startThread),  // eager is never above max
        (32, 8, 8, 0, 0, .queue),
    ])
    func onSubmit(eager: Int, max: Int, threads: Int, waiting: Int, queued: Int, expected: PoolGrowth.OnSubmit) {
        #expect(PoolGrowth(eager: eager, max: max).onSubmit(threads: threads, waiting: waiting, queued: queued)
                == expected)
    }

    /// Nobody may wait on the ready set: (cause, eager, max, threads alive, threads waiting now, connections
    /// in the set) → what the pool does.
    @Test(arguments: [
        (PoolGrowth.NoWaiterCause.threadLeft, 4, 16, 1, 0, 1, PoolGrowth.OnNoWaiter.startThread),
        (.threadLeft, 4, 16, 3, 0, 5, .startThread),
        (.threadLeft, 4, 16, 4, 0, 5, .watch),
        (.threadLeft, 4, 16, 15, 0, 5, .watch),
        (.threadLeft, 4, 16, 16, 0, 5, .nothing),  // at the maximum, nothing can be added
        (.threadLeft, 4, 4, 4, 0, 5, .nothing),
        (.threadLeft, 4, 16, 1, 1, 5, .nothing),  // another thread came back to the wait and takes over
        (.threadLeft, 4, 16, 1, 0, 0, .nothing),  // no connection to wait for (a job's bell, no ready set use)
        (.connectionEntered, 4, 16, 1, 0, 1, .watch),  // the thread that served it is on its way back
        (.connectionEntered, 4, 16, 4, 0, 3, .watch),
        (.connectionEntered, 4, 16, 16, 0, 3, .nothing),
        (.connectionEntered, 4, 16, 2, 1, 3, .nothing),
    ])
    func onNoWaiter(cause: PoolGrowth.NoWaiterCause, eager: Int, max: Int, threads: Int, waiting: Int, registered: Int,
                    expected: PoolGrowth.OnNoWaiter) {
        #expect(PoolGrowth(eager: eager, max: max).onNoWaiter(cause, threads: threads, waiting: waiting,
                                                              registered: registered) == expected)
    }

    /// A thread's wait on the ready set timed out: (threads alive, minimum, jobs queued, other threads
    /// waiting, connections in the set) → does it end?
    @Test func exitsWhenIdleOnlyIfAnotherThreadStillWaitsForParkedConnections() {
        let growth = PoolGrowth(eager: 4, max: 16)
        let table: [(String, Int, Int, Int, Int, Int, Bool)] = [
            ("another thread waits for the parked connections", 3, 1, 0, 1, 10, true),
            ("the last waiter, connections parked: the others are busy, it stays", 3, 1, 0, 0, 10, false),
            ("the last waiter, nothing parked", 3, 1, 0, 0, 0, true),
            ("at the minimum", 1, 1, 0, 0, 0, false),
            ("at the minimum though others wait", 2, 2, 0, 1, 10, false),
            ("jobs queued", 3, 1, 2, 1, 0, false),
            ("minimum 0, nothing parked, the last thread", 1, 0, 0, 0, 0, true),
        ]
        for (name, threads, minimum, queued, others, registered, exits) in table {
            #expect(growth.exitsWhenIdle(threads: threads, minThreads: minimum, queued: queued, othersWaiting: others,
                                         registered: registered) == exits, "\(name)")
        }
    }

    /// After a delay of watching: (work waits, work started meanwhile, threads alive) → add one?
    @Test func growsOnlyWhenWaitingWorkMadeNoProgress() {
        let growth = PoolGrowth(eager: 4, max: 16)
        let table: [(String, Bool, Int, Int, Bool)] = [
            ("work waits and none of it started: the threads are blocked", true, 0, 4, true),
            ("work waits but some started: the threads are busy on the cores", true, 1, 4, false),
            ("nothing waits", false, 0, 4, false),
            ("at max", true, 0, 16, false),
        ]
        for (name, waits, started, threads, grows) in table {
            #expect(growth.grows(workWaits: waits, startedMeanwhile: started, threads: threads) == grows, "\(name)")
        }
    }
}

@Suite(.serialized) struct WorkerPoolTests {
    final class Gate: Sendable {
        let open = Atomic<Bool>(false)
        let entered = Atomic<Int>(0)
        let finished = Atomic<Int>(0)

        func job() {
            entered.add(1, ordering: .sequentiallyConsistent)
            let until = ContinuousClock.now + .seconds(20)
            while !open.load(ordering: .sequentiallyConsistent) && ContinuousClock.now < until { usleep(1_000) }
            finished.add(1, ordering: .sequentiallyConsistent)
        }
    }

    /// Jobs that block (as on slow clients) get threads beyond the eager ones, up to the maximum; the
    /// rest wait in the queue; `stop` ends the threads and the growth watcher.
    @Test func blockedJobsGetMoreThreadsUpToTheMaximum() {
        let pool = WorkerPool(name: "test-pool", maxThreads: 5, eagerThreads: 2, growthDelay: .milliseconds(2))
        let gate = Gate()
        for _ in 0..<7 { pool.submit { gate.job() } }
        #expect(waitUntil { gate.entered.load(ordering: .sequentiallyConsistent) == 5 })
        let counts = pool.counts
        #expect(counts.threads == 5)
        #expect(counts.queued == 2)
        gate.open.store(true, ordering: .sequentiallyConsistent)
        #expect(waitUntil { gate.finished.load(ordering: .sequentiallyConsistent) == 7 })
        pool.stop()
        #expect(pool.counts.threads == 0)
    }

    /// The growth watcher is signalled only while it sleeps for want of queued work: once a burst has
    /// drained, its threads have ended and the watcher sleeps, the next stall of blocked jobs still gets
    /// threads beyond the eager one. The jobs of each stall are as many as the pool's maximum: growth
    /// adds a thread whenever queued work makes no progress for `growthDelay`, and on a loaded machine a
    /// thread woken or started for a job may not run within it, so beyond the threads the blocked jobs
    /// need the count is the scheduler's, not the design's; filling the pool makes it exact. Without the
    /// signal only the eager thread exists and the second job never starts.
    @Test func aSleepingGrowthWatcherWakesForTheNextStall() {
        let pool = WorkerPool(name: "test-pool", maxThreads: 3, eagerThreads: 1, growthDelay: .milliseconds(2),
                              idleExit: .milliseconds(20))
        let first = Gate()
        for _ in 0..<3 { pool.submit { first.job() } }  // one started at once, two grown
        #expect(waitUntil { first.entered.load(ordering: .sequentiallyConsistent) == 3 })
        #expect(pool.counts.threads == 3)
        first.open.store(true, ordering: .sequentiallyConsistent)
        #expect(waitUntil { first.finished.load(ordering: .sequentiallyConsistent) == 3 })
        // Drained: the threads end when idle (no connection registered), the watcher sleeps.
        #expect(waitUntil { pool.counts.threads == 0 && pool.watcherIsParked })
        let second = Gate()
        for _ in 0..<3 { pool.submit { second.job() } }  // the eager one started at once; two need the watcher
        #expect(waitUntil { second.entered.load(ordering: .sequentiallyConsistent) == 3 })
        #expect(pool.counts.threads == 3)
        second.open.store(true, ordering: .sequentiallyConsistent)
        #expect(waitUntil { second.finished.load(ordering: .sequentiallyConsistent) == 3 })
        pool.stop()
        #expect(pool.counts.threads == 0)
    }

    /// Without growth beyond the eager threads (the watcher never adds one), every job still runs, in
    /// the order submitted.
    @Test func queuedJobsRunInOrderOnTheEagerThreads() {
        let pool = WorkerPool(name: "test-pool", maxThreads: 1, eagerThreads: 1)
        let order = Mutex<[Int]>([])
        let done = Atomic<Int>(0)
        for i in 0..<50 {
            pool.submit {
                order.withLock { $0.append(i) }
                done.add(1, ordering: .sequentiallyConsistent)
            }
        }
        #expect(waitUntil { done.load(ordering: .sequentiallyConsistent) == 50 })
        #expect(order.withLock { $0 } == Array(0..<50))
        pool.stop()
    }

    /// An eventfd in `pool`'s ready set standing in for a parked connection (epoll data `id`, armed once).
    private func fakeConnection(in pool: WorkerPool, id: UInt64) -> Int32 {
        let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        _ = clinux_epoll_ctl(pool.readySet, EPOLL_CTL_ADD, fd, clinux_epollin() | clinux_epolloneshot(), id)
        return fd
    }

    private func makeReady(_ fd: Int32) {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// A job submitted while the thread that served a ready connection is on its way back to the wait (the
    /// window between counting itself waiting and looking for jobs) runs: either the thread sees it, or
    /// `submit` sees the thread waiting and rings for it. With one thread at most, `submit` can neither
    /// start nor grow one, so looking before counting would leave the job queued while the thread sleeps.
    @Test func aJobSubmittedAsAThreadGoesBackToTheWaitRuns() {
        let pool = WorkerPool(name: "test-pool", maxThreads: 1, eagerThreads: 1, idleExit: .seconds(60))
        let served = Atomic<Int>(0)
        pool.readyHandler = { _ in served.add(1, ordering: .sequentiallyConsistent) }
        let ran = Atomic<Bool>(false)
        let hooked = Atomic<Bool>(false)
        pool.beforeLookingForJobs = {
            if !hooked.exchange(true, ordering: .sequentiallyConsistent) {
                pool.submit { ran.store(true, ordering: .sequentiallyConsistent) }
            }
        }
        pool.submit {}  // starts the thread
        #expect(waitUntil { pool.waitingCount == 1 })
        let fd = fakeConnection(in: pool, id: 1)
        makeReady(fd)
        #expect(waitUntil { ran.load(ordering: .sequentiallyConsistent) })
        #expect(served.load(ordering: .sequentiallyConsistent) == 1)
        pool.stop()
        close(fd)
    }

    /// A thread on its way back to the wait that leaves again for a queued job, as the last waiter, keeps
    /// the liveness invariant: a connection registered while it was counted waiting (so `register` did not
    /// act) is still served while the job blocks, by a thread the growth watcher adds.
    @Test func leavingForAJobOnTheWayBackStillGetsParkedConnectionsServed() {
        let pool = WorkerPool(name: "test-pool", maxThreads: 3, eagerThreads: 1, growthDelay: .milliseconds(2),
                              idleExit: .seconds(60))
        let servedB = Atomic<Bool>(false)
        pool.readyHandler = { id in
            if id == 2 { servedB.store(true, ordering: .sequentiallyConsistent) }
        }
        let gate = Gate()
        let hooked = Atomic<Bool>(false)
        let b = Atomic<Int32>(-1)
        pool.beforeLookingForJobs = {
            guard !hooked.exchange(true, ordering: .sequentiallyConsistent) else { return }
            pool.register()  // sees this thread counted waiting: no watcher, no thread
            let fd = fakeConnection(in: pool, id: 2)
            b.store(fd, ordering: .sequentiallyConsistent)
            pool.submit { gate.job() }  // rings for this thread, which takes it and blocks
            makeReady(fd)
        }
        pool.submit {}  // starts the thread
        #expect(waitUntil { pool.waitingCount == 1 })
        let a = fakeConnection(in: pool, id: 1)  // not registered: leaving the wait for it starts no watcher
        makeReady(a)
        #expect(waitUntil { gate.entered.load(ordering: .sequentiallyConsistent) == 1 })
        #expect(waitUntil { servedB.load(ordering: .sequentiallyConsistent) })
        gate.open.store(true, ordering: .sequentiallyConsistent)
        #expect(waitUntil { gate.finished.load(ordering: .sequentiallyConsistent) == 1 })
        pool.unregister()
        pool.stop()
        close(a)
        close(b.load(ordering: .sequentiallyConsistent))
    }
}
