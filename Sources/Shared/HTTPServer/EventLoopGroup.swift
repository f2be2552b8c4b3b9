import Synchronization

/// The server's event loops (one per core by default) and what they share: the worker pools, the
/// connection books (`ConnectionLedger`) and the end of accepting. Loop 0 owns the listening socket and
/// accepts for all of them, handing each admitted connection to the loop holding the fewest
/// (`LoopAssignment`); from then on the connection lives on that loop (epoll set, timers, parsing) and on
/// the workers it hands requests to. See docs/http-server.md.
final class EventLoopGroup: @unchecked Sendable {
    let ledger: ConnectionLedger
    let pool: WorkerPool
    let probePool: WorkerPool
    /// Set once (before the loops start).
    private(set) var loops: [EventLoop] = []
    /// The listener is closed: no loop gets another connection handed to it.
    let acceptingEnded = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)
    /// Requests a loop handed to a worker (not counting those a worker read itself from the ready set).
    let handOffs = Atomic<Int>(0)

    init(configuration config: HTTPServerConfiguration) {
        ledger = ConnectionLedger(admission: ConnectionAdmission(
            maxConnections: config.maxConnections, maxUnauthenticated: config.maxUnauthenticatedConnections,
            reserve: config.reservedProbeConnections))
        pool = WorkerPool(name: "http-worker", maxThreads: config.maxWorkerThreads, minThreads: 1,
                          eagerThreads: config.eagerWorkerThreads, growthDelay: config.workerGrowthDelay,
                          idleExit: config.workerIdleExit)
        probePool = WorkerPool(name: "http-probe", maxThreads: 2, minThreads: 0, idleExit: config.workerIdleExit)
        pool.readyHandler = { [unowned self] data in
            // A parked connection's event: its address (see HTTPConnection.readyData), kept alive by its loop.
            let connection = Unmanaged<HTTPConnection>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(data))!)
                .takeUnretainedValue()
            loops[connection.loopIndex].serveReady(connection)
        }
    }

    func setLoops(_ made: [EventLoop]) {
        loops = made
        running.store(made.count, ordering: .releasing)
    }

    /// Connections open on each loop.
    var openPerLoop: [Int] { loops.map { $0.openConnections.load(ordering: .relaxed) } }

    /// Called by each loop as its thread ends; the last one stops the shared pools (every connection
    /// is closed by then, so no request runs).
    func loopEnded() {
        if running.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            pool.stop()
            probePool.stop()
        }
    }
}
