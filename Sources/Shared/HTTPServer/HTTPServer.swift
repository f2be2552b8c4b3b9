import Foundation
import Glibc
import Synchronization

/// Settings of an `HTTPServer`. Every timeout is an idle or per-phase bound,
/// never a total deadline on a transfer that keeps making progress.
public struct HTTPServerConfiguration: Sendable {
    /// ":8080", "0.0.0.0:8080", "127.0.0.1:0" (ephemeral), "[::1]:8080".
    public var listenAddress: String
    /// Connections served at once; more get `503 SlowDown` and are closed.
    public var maxConnections: Int
    /// The whole request head must arrive within this time (slowloris bound).
    public var headerTimeout: Duration
    /// How long a keep-alive connection may wait for its next request.
    public var idleTimeout: Duration
    /// Longest wait without progress while reading a body or writing a response.
    public var bodyIdleTimeout: Duration
    /// Request size limits (request line, header block, fields, body).
    public var limits: HTTPParserLimits
    /// Unread request body the server reads and discards to keep a connection open.
    public var maxDrainBytes: Int
    /// Total time for that discarding; a slower client loses the connection instead of holding a worker.
    public var drainTimeout: Duration
    /// Size of each worker thread's read buffer (also the largest socket read).
    public var readBufferSize: Int
    /// Serve HTTPS: every connection starts with a TLS handshake (within `headerTimeout`) using the
    /// context's current certificate. nil serves plain HTTP.
    public var tls: ReloadingTLSContext?
    /// A connection must complete a request that authenticates (the handler calls
    /// `context.connection.markAuthenticated()`) within this time of being accepted, or it is closed.
    /// nil: connections are not asked to authenticate (every connection is trusted).
    public var unauthenticatedTimeout: Duration?
    /// Of `maxConnections`, how many may be unauthenticated at once; when full, the one idle the longest
    /// is closed for a newcomer. nil: no separate budget.
    public var maxUnauthenticatedConnections: Int?
    /// Requests that are answered even when every slot is taken (liveness and readiness probes), on
    /// workers of their own; connections beyond `maxConnections` (up to `reservedProbeConnections`) may send
    /// one such request. nil: none.
    public var isProbe: (@Sendable (HTTPRequestHead) -> Bool)?
    /// Connections beyond `maxConnections` kept long enough to see whether they carry a probe.
    public var reservedProbeConnections: Int
    /// Threads serving requests at most (idle connections need none; more requests wait their turn).
    public var maxWorkerThreads: Int
    /// Threads started as soon as a request finds no idle one (default 4 per core, at least 4). Beyond
    /// that, requests wait their turn in order, and a thread is added (up to `maxWorkerThreads`) only when
    /// no waiting request has started for `workerGrowthDelay`: the threads are then blocked on slow
    /// clients or backends, not busy on the cores, which more threads would only share out thinner.
    public var eagerWorkerThreads: Int
    /// See `eagerWorkerThreads`.
    public var workerGrowthDelay: Duration
    /// A worker thread idle this long ends, so the threads of a burst go away.
    public var workerIdleExit: Duration
    /// Event-loop threads (default one per core). Each holds its share of the connections while they
    /// wait; the first also accepts and hands each new connection to the loop holding the fewest.
    public var eventLoops: Int

    public init(listenAddress: String = ":8080", maxConnections: Int = 1024,
                headerTimeout: Duration = .seconds(30), idleTimeout: Duration = .seconds(60),
                bodyIdleTimeout: Duration = .seconds(60), limits: HTTPParserLimits = HTTPParserLimits(),
                maxDrainBytes: Int = 1 << 20, readBufferSize: Int = 256 * 1024, tls: ReloadingTLSContext? = nil)
    {
        self.listenAddress = listenAddress
        self.maxConnections = maxConnections
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.bodyIdleTimeout = bodyIdleTimeout
        self.limits = limits
        self.maxDrainBytes = maxDrainBytes
        self.drainTimeout = .seconds(5)
        self.readBufferSize = readBufferSize
        self.tls = tls
        self.unauthenticatedTimeout = nil
        self.maxUnauthenticatedConnections = nil
        self.isProbe = nil
        self.reservedProbeConnections = 16
        self.maxWorkerThreads = 256
        self.eagerWorkerThreads = max(4, 4 * ProcessorBudget.current)
        self.workerGrowthDelay = .milliseconds(2)
        self.workerIdleExit = .seconds(10)
        self.eventLoops = ProcessorBudget.current
    }

    /// Bytes each worker thread keeps for the requests it serves (`WorkerScratch`): its read buffer and its
    /// response-gathering buffer. What a handler holds comes on top.
    public var workerScratchBytes: Int { readBufferSize + ConnectionResponseWriter.coalesceLimit }

    /// Limits of the request head, kept in sync with `limits`.
    public var maxHeaderBytes: Int {
        get { limits.maxHeaderBytes }
        set { limits.maxHeaderBytes = newValue }
    }
}

/// One finished (or aborted) request, for logs and metrics.
public struct RequestSummary: Sendable {
    public var requestID: RequestID
    public var method: String
    public var target: String
    public var remoteAddress: String
    /// Status sent, or the status the handler tried to send; 0 when nothing was sent.
    public var status: Int
    /// Request body bytes read (decoded), drained bytes included.
    public var bytesIn: Int64
    /// Response body bytes written.
    public var bytesOut: Int64
    public var duration: Duration
    /// The response was cut short or the connection was closed on an error.
    public var aborted: Bool

    public init(requestID: RequestID, method: String, target: String, remoteAddress: String, status: Int,
                bytesIn: Int64, bytesOut: Int64, duration: Duration, aborted: Bool)
    {
        self.requestID = requestID
        self.method = method
        self.target = target
        self.remoteAddress = remoteAddress
        self.status = status
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.duration = duration
        self.aborted = aborted
    }
}

/// Why a connection was refused or dropped without a request.
public enum ConnectionRejection: Sendable, Equatable {
    /// No slot was free; a `503 SlowDown` was sent (plain HTTP) and the connection closed.
    case tooManyConnections
    /// The request head was malformed or over a limit; the error status was sent.
    case badRequest(HTTPParseError)
    /// The head did not arrive within `headerTimeout`.
    case headerTimeout
    /// The TLS handshake failed or did not finish in time (the message says why).
    case tlsHandshake(String)
    /// No request authenticated within `unauthenticatedTimeout`.
    case authenticationTimeout
    /// An idle unauthenticated connection was closed to make room for a new one.
    case evictedUnauthenticated
}

/// Observability hooks; the server never logs by itself. Called on the event-loop and worker threads.
public protocol HTTPServerObserver: Sendable {
    func connectionOpened(remoteAddress: String)
    func connectionClosed(remoteAddress: String)
    func connectionRejected(remoteAddress: String, reason: ConnectionRejection)
    func requestFinished(_ summary: RequestSummary)
}

extension HTTPServerObserver {
    public func connectionOpened(remoteAddress: String) {}
    public func connectionClosed(remoteAddress: String) {}
    public func connectionRejected(remoteAddress: String, reason: ConnectionRejection) {}
    public func requestFinished(_ summary: RequestSummary) {}
}

/// An HTTP/1.1 server on POSIX sockets. Event-loop threads (epoll, one per core) hold every connection
/// that waits (handshakes, idle keep-alive, slow heads); complete requests run on a bounded, elastic pool
/// of worker threads with blocking-style I/O. See docs/http-server.md.
public final class HTTPServer: Sendable {
    let configuration: HTTPServerConfiguration
    let address: ListenAddress
    let handler: any HTTPRequestHandler
    let observer: (any HTTPServerObserver)?
    private let draining = Atomic<Bool>(false)
    private let boundPortValue = Atomic<Int>(0)
    private let group = Mutex<EventLoopGroup?>(nil)

    /// Validates the configuration; nothing is bound until `start()`.
    public init(configuration: HTTPServerConfiguration, handler: any HTTPRequestHandler,
                observer: (any HTTPServerObserver)? = nil) throws
    {
        self.configuration = configuration
        self.address = try ListenAddress(parsing: configuration.listenAddress)
        guard configuration.maxConnections > 0 else {
            throw HTTPServerError(code: .invalidConfiguration, message: "maxConnections must be at least 1")
        }
        guard configuration.maxWorkerThreads > 0 else {
            throw HTTPServerError(code: .invalidConfiguration, message: "maxWorkerThreads must be at least 1")
        }
        guard configuration.eventLoops > 0 else {
            throw HTTPServerError(code: .invalidConfiguration, message: "eventLoops must be at least 1")
        }
        guard configuration.eagerWorkerThreads > 0 else {
            throw HTTPServerError(code: .invalidConfiguration, message: "eagerWorkerThreads must be at least 1")
        }
        if let n = configuration.maxUnauthenticatedConnections, n < 1 {
            throw HTTPServerError(code: .invalidConfiguration, message: "maxUnauthenticatedConnections must be at least 1")
        }
        var timeouts = [("headerTimeout", configuration.headerTimeout), ("idleTimeout", configuration.idleTimeout),
                        ("bodyIdleTimeout", configuration.bodyIdleTimeout), ("drainTimeout", configuration.drainTimeout),
                        ("workerIdleExit", configuration.workerIdleExit),
                        ("workerGrowthDelay", configuration.workerGrowthDelay)]
        if let t = configuration.unauthenticatedTimeout { timeouts.append(("unauthenticatedTimeout", t)) }
        for (name, value) in timeouts where value <= .zero {
            throw HTTPServerError(code: .invalidConfiguration, message: "\(name) must be positive")
        }
        self.handler = handler
        self.observer = observer
    }

    /// Binds, listens and starts the event loop on a background thread.
    /// Also makes the process ignore SIGPIPE (writes use MSG_NOSIGNAL anyway; OpenSSL's do not).
    public func start() throws {
        signal(SIGPIPE, SIG_IGN)
        ProcessLimits.raiseOpenFileLimit()
        let made = try group.withLock { (current) throws(HTTPServerError) -> EventLoopGroup in
            if current != nil { throw HTTPServerError(code: .alreadyStarted, message: "server already started") }
            let (fd, port) = try ServerSockets.listen(address, backlog: 4096)
            let made = EventLoopGroup(configuration: configuration)
            var loops: [EventLoop] = []
            do throws(HTTPServerError) {
                for index in 0..<configuration.eventLoops {
                    loops.append(try EventLoop(server: self, group: made, index: index, listenFD: index == 0 ? fd : nil))
                }
            } catch {
                close(fd)
                throw error
            }
            made.setLoops(loops)
            boundPortValue.store(port, ordering: .relaxed)
            current = made
            return made
        }
        for eventLoop in made.loops {
            // The kernel keeps 15 bytes of a thread name.
            let name = eventLoop.index == 0 ? "http-loop" : "http-loop-\(eventLoop.index)"
            let thread = Thread {
                KernelThreadName.set(name)
                eventLoop.run()
            }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// The bound port (useful with port 0); 0 before `start()`.
    public var boundPort: Int { boundPortValue.load(ordering: .relaxed) }

    /// The bound address as "host:port", e.g. "127.0.0.1:41234".
    public var boundAddress: String {
        var a = address
        a.port = boundPort
        return a.description
    }

    /// Connections currently open (idle or busy).
    public var activeConnections: Int { connectionsPerLoop.reduce(0, +) }

    /// Connections open on each event loop.
    public var connectionsPerLoop: [Int] { group.withLock { $0 }?.openPerLoop ?? [] }

    /// Threads alive in the request pool, how many of them run a request now, and how many requests wait
    /// for a thread.
    public var workerThreads: (alive: Int, busy: Int, queued: Int) {
        guard let pool = group.withLock({ $0 })?.pool else { return (0, 0, 0) }
        let c = pool.counts
        return (c.threads, c.busy, c.queued)
    }

    /// Request pool threads waiting on the ready set now, and how many of their waits timed out so far
    /// (for tests: a timed-out thread has decided to end or to stay by the time it is counted).
    var readySetWaits: (waiting: Int, idleTimeouts: Int) {
        guard let pool = group.withLock({ $0 })?.pool else { return (0, 0) }
        return (pool.waitingCount, pool.idleTimeoutCount)
    }

    /// Requests the event loops handed to a worker thread. A settled kept-alive connection's requests are
    /// read by the worker that wakes for them (`EventLoop.park`) and are not counted.
    var requestsHandedOff: Int { group.withLock { $0 }?.handOffs.load(ordering: .relaxed) ?? 0 }

    /// Stops accepting, closes idle keep-alive connections at once, lets requests in flight finish for up
    /// to `grace` (answering them with `Connection: close`), then shuts down the sockets of the rest.
    /// Returns when every connection is closed and the server's threads have ended. Safe to call from any
    /// thread, more than once.
    public func shutdown(grace: Duration) {
        draining.store(true, ordering: .releasing)
        guard let made = group.withLock({ $0 }) else { return }
        for eventLoop in made.loops { eventLoop.requestShutdown(grace: grace) }
        for eventLoop in made.loops { eventLoop.waitUntilFinished() }
    }

    /// Read on every response (`Connection: close` while draining): an atomic load, never a lock.
    var isDraining: Bool { draining.load(ordering: .acquiring) }
}

/// An S3-style XML error document.
func serverErrorXML(code: String, message: String, requestID: RequestID) -> [UInt8] {
    let esc = XMLText.escape
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(esc(code))</Code><Message>\(esc(message))</Message>"
        + "<RequestId>\(requestID)</RequestId></Error>"  // hex: nothing to escape
    return Array(xml.utf8)
}

/// IMF-fixdate for the `Date` header.
enum HTTPServerDate {
    static func now() -> String { HTTPDate.format(Int64(time(nil))) }
    static func format(_ t: time_t) -> String { HTTPDate.format(Int64(t)) }
}

/// Process-wide resource settings a server needs.
enum ProcessLimits {
    /// Lifts the soft limit on open files to the hard limit, once: every connection is a descriptor.
    static func raiseOpenFileLimit() {
        _ = raised
    }

    private static let raised: Bool = {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return false }
        limit.rlim_cur = limit.rlim_max
        return setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0
    }()
}
