import CLinux
import Foundation
import Glibc
import Synchronization

/// The server's readiness-driven side: a thread with epoll owns every connection of its share that is not
/// being served: TLS handshakes, waiting for and parsing request heads, timeouts, lingering closes. A
/// complete head hands the connection to a worker (the pool, or the probe workers for `/health`-style
/// requests); the worker gives it back to this loop when the response is done. Idle and slow connections
/// therefore cost a few hundred bytes and no thread.
///
/// A *settled* kept-alive connection (plain TCP, authenticated, not in the reserve, between requests) is
/// parked in the worker pool's ready set instead (`park`): the worker thread that wakes for its next
/// request reads and serves it (`serveReady`) and parks it again, so a request costs no hand-off between
/// threads. The loop still owns its life: its idle timer and the drain expire it (`expireParked`), and it
/// comes back to the loop for anything but a complete head (`returned`).
///
/// A server runs one loop per core (`EventLoopGroup`). Loop 0 also owns the listening socket: it admits
/// each new connection against the shared books (`ConnectionLedger`) and hands it to the loop holding the
/// fewest (`LoopAssignment`), itself included.
final class EventLoop: @unchecked Sendable {
    private static let listenerID: UInt64 = 0
    private static let wakeID: UInt64 = 1

    unowned let server: HTTPServer
    unowned let group: EventLoopGroup
    /// This loop's place in `group.loops`; 0 accepts.
    let index: Int
    let config: HTTPServerConfiguration
    let epollFD: Int32
    let wakeFD: Int32
    /// The listening socket (loop 0 only).
    private(set) var listenFD: Int32
    var pool: WorkerPool { group.pool }
    var probePool: WorkerPool { group.probePool }

    // Loop thread only.
    private var connections: [UInt64: HTTPConnection] = [:]
    private var timers = TimerHeap()
    private var scratch: UnsafeMutableRawBufferPointer
    private var acceptPausedUntil: ContinuousClock.Instant?
    private var listenerOpen: Bool
    // Loop 0 only: the next connection id (ids are unique across loops), the next loop to hand to.
    private var nextID: UInt64 = 2
    private var assignment = LoopAssignment()
    private var graceDeadline: ContinuousClock.Instant?
    private var trimPolicy = MemoryTrimPolicy(now: .now)
    /// The pool's `startedCount` at the last memory-trim decision.
    private var startedAtTrimCheck = 0

    // Cross-thread.
    /// What other threads hand this loop: connections back from workers, new connections from loop 0,
    /// evictions decided by loop 0.
    private enum Message {
        case returned(HTTPConnection, ConnectionDisposition)
        case adopt(HTTPConnection)
        case evict(HTTPConnection)
    }
    private let inbox = Mutex<[Message]>([])
    private let wakePending = Atomic<Bool>(false)
    private let shutdownRequested = Atomic<Bool>(false)
    private let graceNanos = Atomic<Int64>(0)
    let openConnections = Atomic<Int>(0)
    private let finished = Mutex<Bool>(false)

    /// `listenFD`: the listening socket, for loop 0 only.
    init(server: HTTPServer, group: EventLoopGroup, index: Int, listenFD: Int32?) throws(HTTPServerError) {
        self.server = server
        self.group = group
        self.index = index
        self.config = server.configuration
        self.listenFD = listenFD ?? -1
        self.listenerOpen = listenFD != nil
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else {
            throw HTTPServerError(code: .socketFailed, message: "epoll_create1: \(ServerSockets.errnoText(errno))")
        }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeFD >= 0 else {
            close(epollFD)
            throw HTTPServerError(code: .socketFailed, message: "eventfd: \(ServerSockets.errnoText(errno))")
        }
        scratch = .allocate(byteCount: 64 * 1024, alignment: 16)
        if let listenFD { _ = clinux_epoll_ctl(epollFD, EPOLL_CTL_ADD, listenFD, clinux_epollin(), Self.listenerID) }
        _ = clinux_epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, clinux_epollin(), Self.wakeID)
    }

    deinit {
        scratch.deallocate()
        close(epollFD)
        close(wakeFD)
    }

    // MARK: - Other threads

    /// The longest the loop sleeps in `epoll_wait`, whatever its timers say.
    static let maxSleep: Duration = .seconds(1)

    /// A worker is done with `connection`. A parked connection (see `park`) that is still settled goes
    /// back into the ready set from here, without the loop; anything else goes through the loop's inbox.
    func giveBack(_ connection: HTTPConnection, _ disposition: ConnectionDisposition) {
        if connection.inReadySet, case .keepAlive = disposition, connection.parser.atRequestStart,
           !connection.servedProbe, !server.isDraining {
            repark(connection)
            return
        }
        post(.returned(connection, disposition))
    }

    /// Whether a connection the loop holds between requests can wait in the pool's ready set: its next
    /// request is then served by whichever worker wakes for it. Anything that needs the loop while it
    /// waits (a TLS session, the unauthenticated budget and its LRU, the reserve, a partial head, the
    /// drain) keeps it here; so does a probe's connection, whose next probe must not wait for a pool thread.
    private func settled(_ connection: HTTPConnection) -> Bool {
        connection.socket.tls == nil && !connection.reserved && !connection.tracksAuthentication
            && !connection.servedProbe
            && connection.handle.isAuthenticated && connection.parser.atRequestStart
            && !shutdownRequested.load(ordering: .sequentiallyConsistent)
    }

    // MARK: - The ready set (settled connections; loop and workers)

    /// Loop: `connection` waits for its next request in the worker pool's ready set, armed once
    /// (`EPOLLONESHOT`); its loop registration stays disarmed meanwhile. The timer checks the idle deadline
    /// the workers move (`idleDeadline`).
    private func park(_ connection: HTTPConnection, now: ContinuousClock.Instant) {
        connection.phase = .parked
        connection.deadline = now + config.idleTimeout
        connection.idleDeadline.store(IdleClock.nanos(connection.deadline), ordering: .relaxed)
        scheduleTimer(connection)
        connection.readyState.store(HTTPConnection.ReadyState.parked, ordering: .sequentiallyConsistent)
        // From here a worker may take the connection; the loop touches it only through `readyState`.
        let op = connection.inReadySet ? EPOLL_CTL_MOD : EPOLL_CTL_ADD
        if !connection.inReadySet {
            connection.inReadySet = true
            pool.register()  // counted before it can be ready: an idle thread stays to wait for it
        }
        _ = clinux_epoll_ctl(pool.readySet, op, connection.socket.fd, clinux_epollin() | clinux_epolloneshot(),
                             connection.readyData)
    }

    /// Worker: the connection it served from the ready set goes back there, with a new idle deadline.
    private func repark(_ connection: HTTPConnection) {
        connection.idleDeadline.store(IdleClock.nanos(.now + config.idleTimeout), ordering: .relaxed)
        connection.readyState.store(HTTPConnection.ReadyState.parked, ordering: .sequentiallyConsistent)
        _ = clinux_epoll_ctl(pool.readySet, EPOLL_CTL_MOD, connection.socket.fd,
                             clinux_epollin() | clinux_epolloneshot(), connection.readyData)
        // A drain that began meanwhile may have found the connection being served and passed it by.
        if shutdownRequested.load(ordering: .sequentiallyConsistent) { _ = expireParked(connection) }
    }

    /// Loop or worker: ends a parked connection's wait if no worker has taken it. Its socket is shut down,
    /// which wakes a worker for it; that worker finds it expired and hands it to the loop, which closes
    /// it. (The loop never closes a parked connection itself: a worker may hold its event.) False when a
    /// worker serves it.
    @discardableResult
    private func expireParked(_ connection: HTTPConnection) -> Bool {
        guard connection.readyState.compareExchange(
            expected: HTTPConnection.ReadyState.parked, desired: HTTPConnection.ReadyState.expiring,
            ordering: .sequentiallyConsistent).exchanged else { return false }
        _ = Glibc.shutdown(connection.socket.fd, Int32(SHUT_RDWR))
        return true
    }

    /// Worker: `connection`'s event from the ready set. Reads what arrived without blocking; a complete head
    /// is served here, on this thread (probes on the probe workers). Anything else (a partial head, the end
    /// of the stream, an expired or draining connection) goes back to the loop.
    func serveReady(_ connection: HTTPConnection) {
        guard connection.readyState.compareExchange(
            expected: HTTPConnection.ReadyState.parked, desired: HTTPConnection.ReadyState.serving,
            ordering: .sequentiallyConsistent).exchanged else {
            post(.returned(connection, .close))  // expired by its loop: idle timeout or drain
            return
        }
        if server.isDraining {
            post(.returned(connection, .close))
            return
        }
        let scratch = WorkerScratch.current(readBufferSize: config.readBufferSize)
        let buffer = scratch.readBuffer
        let n: Int
        switch connection.socket.tryRead(into: buffer) {
        case .data(let count): n = count
        case .wouldBlock:
            repark(connection)
            return
        case .endOfStream, .failed:
            post(.returned(connection, .close))
            return
        }
        var offset = 0
        while offset < n {
            let result: (consumed: Int, event: HTTPParserEvent)
            do {
                result = try connection.parser.feed(UnsafeRawBufferPointer(rebasing: buffer[offset..<n]))
            } catch {
                server.observer?.connectionRejected(remoteAddress: connection.remote, reason: .badRequest(error))
                connection.sendError(status: error.status, code: error.code, message: error.message,
                                     requestID: RequestIDGenerator.next())
                post(.returned(connection, .linger))
                return
            }
            offset += result.consumed
            if case .head(let head) = result.event {
                if config.isProbe?(head.head) ?? false {
                    connection.servedProbe = true
                    if offset < n { connection.carry = Array(UnsafeRawBufferPointer(rebasing: buffer[offset..<n])) }
                    let readBufferSize = config.readBufferSize
                    probePool.submit { [self] in
                        let scratch = WorkerScratch.current(readBufferSize: readBufferSize)
                        giveBack(connection, connection.serveRequests(first: head, scratch: scratch))
                    }
                    return
                }
                giveBack(connection, connection.serveRequests(first: head, scratch: scratch, buffered: offset..<n))
                return
            }
            if result.consumed == 0 { break }
        }
        // The start of a head: the loop waits for the rest, within the header timeout.
        post(.returned(connection, .keepAlive))
    }

    private func post(_ message: Message) {
        inbox.withLock { $0.append(message) }
        wake()
    }

    /// Starts the drain: no new connections, idle ones closed, busy ones finish within `grace`.
    func requestShutdown(grace: Duration) {
        let (s, atto) = grace.components
        graceNanos.store(max(0, s * 1_000_000_000 + atto / 1_000_000_000), ordering: .relaxed)
        // Sequentially consistent with `repark`'s store and load: a worker parking a connection either sees
        // the drain, or the loop's drain sees the connection parked.
        shutdownRequested.store(true, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Blocks until the loop thread has closed every connection and ended.
    func waitUntilFinished() {
        while !finished.withLock({ $0 }) { usleep(2_000) }
    }

    fileprivate func wake() {
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    // MARK: - The loop

    func run() {
        var events = [clinux_epoll_event](repeating: clinux_epoll_event(), count: 256)
        while true {
            let timeout = nextTimeoutMilliseconds()
            let n = events.withUnsafeMutableBufferPointer { clinux_epoll_wait(epollFD, $0.baseAddress, 256, timeout) }
            if n < 0 && errno != EINTR { usleep(1_000) }
            for i in 0..<max(0, Int(n)) {
                let event = events[i]
                switch event.data {
                case Self.listenerID: acceptConnections()
                case Self.wakeID: drainWakeups()
                default:
                    if let connection = connections[event.data] { ready(connection, events: event.events) }
                }
            }
            fireTimers()
            if shutdownRequested.load(ordering: .acquiring) {
                beginDrain()
                // Loop 0 hands out no connection after it has closed the listener; one handed out
                // before then is in the inbox by the time `acceptingEnded` reads true.
                if group.acceptingEnded.load(ordering: .acquiring) {
                    drainWakeups()
                    if connections.isEmpty { break }
                }
            }
            maybeTrimMemory()  // each loop sees its own requests; malloc_trim is process-wide
        }
        if listenerOpen {
            close(listenFD)
            listenerOpen = false
        }
        group.loopEnded()
        finished.withLock { $0 = true }
    }

    private func nextTimeoutMilliseconds() -> Int32 {
        var wait = Self.maxSleep
        let now = ContinuousClock.now
        if let earliest = timers.earliest { wait = min(wait, earliest - now) }
        if let pause = acceptPausedUntil { wait = min(wait, pause - now) }
        if let grace = graceDeadline { wait = min(wait, grace - now) }
        if wait <= .zero { return 0 }
        return ServerSockets.milliseconds(wait)
    }

    private func drainWakeups() {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
        wakePending.store(false, ordering: .releasing)
        takeMail()
    }

    private func takeMail() {
        let messages = inbox.withLock { list -> [Message] in
            let out = list
            list.removeAll(keepingCapacity: true)
            return out
        }
        for message in messages {
            switch message {
            case .returned(let connection, let disposition): resume(connection, disposition)
            case .adopt(let connection): adopt(connection)
            case .evict(let connection): closeConnection(connection)
            }
        }
    }

    // MARK: - Accepting

    private func acceptConnections() {
        guard listenerOpen, !shutdownRequested.load(ordering: .relaxed) else { return }
        if let pause = acceptPausedUntil {
            if ContinuousClock.now < pause { return }
            acceptPausedUntil = nil
        }
        for _ in 0..<256 {
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    clinux_accept4_nonblocking(listenFD, $0, &len)
                }
            }
            if fd < 0 {
                let e = errno
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    // Out of descriptors: stop accepting for a moment instead of spinning on a readable listener.
                    acceptPausedUntil = .now + .milliseconds(50)
                    _ = clinux_epoll_ctl(epollFD, EPOLL_CTL_MOD, listenFD, 0, Self.listenerID)
                }
                return  // EAGAIN: the queue is empty
            }
            admit(fd: fd, remote: ServerSockets.describe(storage))
        }
    }

    /// Loop 0: a new connection gets a slot (or a reserve place, or a refusal) from the shared books and
    /// goes to the loop holding the fewest connections.
    private func admit(fd: Int32, remote: String) {
        let trusted = config.maxUnauthenticatedConnections == nil && config.unauthenticatedTimeout == nil
        var reserved = false
        switch group.ledger.enter(trusted: trusted) {
        case .admit: break
        case .admitEvicting(let victim):
            server.observer?.connectionRejected(remoteAddress: victim.remote, reason: .evictedUnauthenticated)
            let owner = group.loops[victim.loopIndex]
            if owner === self { closeConnection(victim) } else { owner.post(.evict(victim)) }
        case .reserve:
            reserved = true
        case .refuse:
            refuse(fd: fd, remote: remote)
            return
        }
        ServerSockets.setNoDelay(fd)
        let id = nextID
        nextID += 1
        let loops = group.loops
        let target = loops.count == 1 ? 0 : assignment.pick(open: group.openPerLoop)
        let connection = HTTPConnection(server: server, id: id, loopIndex: target, socket: ConnectionSocket(fd: fd),
                                        remote: remote, trusted: trusted)
        connection.reserved = reserved
        if !reserved && !trusted {
            connection.tracksAuthentication = true
            connection.listedIdle = true
            group.ledger.listNewcomer(connection)
        }
        let owner = loops[target]
        owner.openConnections.add(1, ordering: .relaxed)
        server.observer?.connectionOpened(remoteAddress: remote)
        if owner === self { adopt(connection) } else { owner.post(.adopt(connection)) }
    }

    /// A connection admitted by loop 0 starts its life on this loop.
    private func adopt(_ connection: HTTPConnection) {
        connections[connection.id] = connection
        if shutdownRequested.load(ordering: .relaxed) {
            closeConnection(connection)
            return
        }
        let fd = connection.socket.fd
        if connection.reserved {
            connection.deadline = connection.acceptedAt + min(config.headerTimeout, .seconds(5))
        }
        _ = clinux_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, clinux_epollin() | clinux_epolloneshot(), connection.id)
        scheduleTimer(connection)
        if let tls = config.tls {
            do {
                try connection.socket.attachTLS(TLSStream(context: tls.current(), fd: fd))
            } catch {
                server.observer?.connectionRejected(remoteAddress: connection.remote, reason: .tlsHandshake(error.message))
                closeConnection(connection)
                return
            }
            connection.phase = .handshake
            handshake(connection)
        } else {
            connection.phase = .reading
            // Requests usually arrive with the connection; epoll reports them on the next turn.
        }
    }

    /// `503 SlowDown` for a connection that gets no slot (plain HTTP; over TLS it would need a handshake,
    /// so it is only closed).
    private func refuse(fd: Int32, remote: String) {
        // Counted before the client can see the answer, so whoever reads the 503 also sees the rejection.
        server.observer?.connectionRejected(remoteAddress: remote, reason: .tooManyConnections)
        if config.tls == nil {
            let bytes = serverErrorResponse(status: 503, code: "SlowDown", message: "Too many connections; reduce your request rate.",
                                            requestID: RequestIDGenerator.next(), date: HTTPServerDate.now(),
                                            extraHeaders: "Retry-After: 1\r\n")
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            _ = Glibc.shutdown(fd, Int32(SHUT_WR))
            // Discard what the client already sent so close() does not turn into a reset
            // that could destroy the 503 before the client reads it.
            let buffer = scratch
            for _ in 0..<4 where recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
        }
        close(fd)
    }

    // MARK: - Connection events

    private func ready(_ connection: HTTPConnection, events: UInt32) {
        switch connection.phase {
        case .handshake: handshake(connection)
        case .reading: readHead(connection)
        case .lingering: linger(connection)
        case .busy, .parked, .closed: break
        }
    }

    private func arm(_ connection: HTTPConnection, write: Bool = false) {
        let events = (write ? clinux_epollout() : clinux_epollin()) | clinux_epolloneshot()
        _ = clinux_epoll_ctl(epollFD, EPOLL_CTL_MOD, connection.socket.fd, events, connection.id)
    }

    private func handshake(_ connection: HTTPConnection) {
        guard let tls = connection.socket.tls else { return }
        do {
            switch try tls.handshakeStep() {
            case .done:
                connection.phase = .reading
                if tls.hasBufferedInput { readHead(connection) } else { arm(connection) }
            case .wantRead: arm(connection)
            case .wantWrite: arm(connection, write: true)
            case .closed:
                server.observer?.connectionRejected(remoteAddress: connection.remote,
                                                    reason: .tlsHandshake("the peer closed the connection"))
                closeConnection(connection)
            }
        } catch {
            server.observer?.connectionRejected(remoteAddress: connection.remote, reason: .tlsHandshake(error.message))
            closeConnection(connection)
        }
    }

    /// Reads and parses what arrived, without blocking; a complete head goes to a worker.
    private func readHead(_ connection: HTTPConnection) {
        for _ in 0..<8 {
            let wasAtStart = connection.parser.atRequestStart
            let n: Int
            switch connection.socket.tryRead(into: scratch) {
            case .data(let count): n = count
            case .wouldBlock(let wantWrite):
                arm(connection, write: wantWrite)
                return
            case .endOfStream, .failed:
                closeConnection(connection)
                return
            }
            var offset = 0
            while offset < n {
                let result: (consumed: Int, event: HTTPParserEvent)
                do {
                    result = try connection.parser.feed(UnsafeRawBufferPointer(rebasing: scratch[offset..<n]))
                } catch {
                    server.observer?.connectionRejected(remoteAddress: connection.remote, reason: .badRequest(error))
                    answerAndLinger(connection, status: error.status, code: error.code, message: error.message)
                    return
                }
                offset += result.consumed
                if case .head(let head) = result.event {
                    if offset < n { connection.carry = Array(UnsafeRawBufferPointer(rebasing: scratch[offset..<n])) }
                    dispatch(connection, head)
                    return
                }
                if result.consumed == 0 { break }
            }
            if wasAtStart && !connection.parser.atRequestStart && connection.requestsServed > 0 {
                // The first bytes of a later request: its head must now arrive within the header timeout.
                connection.deadline = .now + config.headerTimeout
                scheduleTimer(connection)
            }
        }
        arm(connection)
    }

    /// A complete head: serve it on a worker (probes on the probe workers).
    private func dispatch(_ connection: HTTPConnection, _ parsed: HTTPParsedHead) {
        if shutdownRequested.load(ordering: .relaxed) {
            closeConnection(connection)
            return
        }
        let isProbe = config.isProbe?(parsed.head) ?? false
        connection.servedProbe = isProbe
        if connection.reserved && !isProbe {
            server.observer?.connectionRejected(remoteAddress: connection.remote, reason: .tooManyConnections)
            answerAndLinger(connection, status: 503, code: "SlowDown", message: "Too many connections; reduce your request rate.",
                            extraHeaders: "Retry-After: 1\r\n")
            return
        }
        if connection.listedIdle {
            connection.listedIdle = false
            guard group.ledger.unlist(connection) else {
                closeConnection(connection)  // evicted by loop 0 a moment ago; its message follows
                return
            }
        }
        connection.phase = .busy
        connection.timerGeneration += 1
        group.handOffs.add(1, ordering: .relaxed)
        let readBufferSize = config.readBufferSize
        (isProbe ? probePool : pool).submit { [self] in
            let scratch = WorkerScratch.current(readBufferSize: readBufferSize)
            let disposition = connection.serveRequests(first: parsed, scratch: scratch)
            giveBack(connection, disposition)
        }
    }

    /// A worker returned `connection`.
    private func resume(_ connection: HTTPConnection, _ disposition: ConnectionDisposition) {
        guard connection.phase == .busy || connection.phase == .parked else { return }
        connection.readyState.store(HTTPConnection.ReadyState.withLoop, ordering: .relaxed)
        if connection.tracksAuthentication && connection.handle.isAuthenticated {
            connection.tracksAuthentication = false
            group.ledger.authenticated(connection)
        }
        let draining = shutdownRequested.load(ordering: .relaxed)
        switch disposition {
        case .close:
            closeConnection(connection)
            return
        case .linger:
            beginLinger(connection)
            return
        case .keepAlive where draining || connection.reserved:
            beginLinger(connection)
            return
        case .keepAlive:
            break
        }
        let now = ContinuousClock.now
        if !connection.handle.isAuthenticated, let limit = config.unauthenticatedTimeout,
           now >= connection.acceptedAt + limit {
            server.observer?.connectionRejected(remoteAddress: connection.remote, reason: .authenticationTimeout)
            beginLinger(connection)
            return
        }
        if settled(connection) {
            park(connection, now: now)
            return
        }
        connection.phase = .reading
        connection.deadline = now + (connection.parser.atRequestStart ? config.idleTimeout : config.headerTimeout)
        if !connection.handle.isAuthenticated && connection.tracksAuthentication {
            guard group.ledger.listIdle(connection) else {
                closeConnection(connection)  // evicted while it was served
                return
            }
            connection.listedIdle = true
        }
        scheduleTimer(connection)
        if connection.socket.tls?.hasBufferedInput == true {
            readHead(connection)
        } else {
            arm(connection)
        }
    }

    // MARK: - Closing

    /// Sends a small error response (best effort, without blocking), then lingers.
    private func answerAndLinger(_ connection: HTTPConnection, status: Int, code: String, message: String,
                                 extraHeaders: String = "") {
        let bytes = serverErrorResponse(status: status, code: code, message: message, requestID: RequestIDGenerator.next(),
                                        date: HTTPServerDate.now(), extraHeaders: extraHeaders)
        if !connection.socket.trySend(bytes) {
            closeConnection(connection)
            return
        }
        beginLinger(connection)
    }

    /// Half-closes, then reads and discards what the client still sends for up to a second, so the close
    /// does not reset the connection and destroy the response in flight.
    private func beginLinger(_ connection: HTTPConnection) {
        if connection.listedIdle {
            connection.listedIdle = false
            _ = group.ledger.unlist(connection)
        }
        connection.socket.shutdownWrite()
        connection.phase = .lingering
        connection.lingerBytes = 0
        connection.deadline = .now + .seconds(1)
        scheduleTimer(connection)
        linger(connection)
    }

    private func linger(_ connection: HTTPConnection) {
        while connection.lingerBytes < 1 << 20 {
            switch connection.socket.tryRead(into: scratch) {
            case .data(let n): connection.lingerBytes += n
            case .wouldBlock(let wantWrite):
                arm(connection, write: wantWrite)
                return
            case .endOfStream, .failed:
                closeConnection(connection)
                return
            }
        }
        closeConnection(connection)
    }

    func closeConnection(_ connection: HTTPConnection) {
        guard connection.phase != .closed else { return }
        connection.phase = .closed
        connection.timerGeneration += 1
        connection.listedIdle = false
        connections[connection.id] = nil
        group.ledger.release(connection)
        connection.socket.close()  // also leaves the epoll set (and the ready set)
        if connection.inReadySet { pool.unregister() }
        openConnections.add(-1, ordering: .relaxed)
        server.observer?.connectionClosed(remoteAddress: connection.remote)
    }

    // MARK: - Timers

    private func scheduleTimer(_ connection: HTTPConnection) {
        connection.timerGeneration += 1
        var deadline = connection.deadline
        if !connection.handle.isAuthenticated, !connection.reserved, let limit = config.unauthenticatedTimeout {
            deadline = min(deadline, connection.acceptedAt + limit)
        }
        timers.push(.init(deadline: deadline, id: connection.id, generation: connection.timerGeneration))
        if timers.count > 1024 && timers.count > 4 * connections.count {
            timers.compact { entry in connections[entry.id]?.timerGeneration == entry.generation }
        }
    }

    private func fireTimers() {
        let now = ContinuousClock.now
        if let pause = acceptPausedUntil, now >= pause, listenerOpen {
            acceptPausedUntil = nil
            _ = clinux_epoll_ctl(epollFD, EPOLL_CTL_MOD, listenFD, clinux_epollin(), Self.listenerID)
        }
        while let entry = timers.popDue(now: now) {
            guard let connection = connections[entry.id], connection.timerGeneration == entry.generation else { continue }
            expire(connection, now: now)
        }
        if let grace = graceDeadline, now >= grace {
            // Grace is over: wake every blocked read or write of the requests still running; their
            // workers give the connections back and the loop closes them.
            for connection in connections.values where connection.phase == .busy || connection.phase == .parked {
                _ = Glibc.shutdown(connection.socket.fd, Int32(SHUT_RDWR))
            }
            graceDeadline = now + .milliseconds(100)
        }
    }

    private func expire(_ connection: HTTPConnection, now: ContinuousClock.Instant) {
        switch connection.phase {
        case .handshake:
            server.observer?.connectionRejected(remoteAddress: connection.remote,
                                                reason: .tlsHandshake("the handshake did not finish in time"))
            closeConnection(connection)
        case .reading:
            if !connection.handle.isAuthenticated, !connection.reserved, let limit = config.unauthenticatedTimeout,
               now >= connection.acceptedAt + limit {
                server.observer?.connectionRejected(remoteAddress: connection.remote, reason: .authenticationTimeout)
                closeConnection(connection)
            } else if !connection.parser.atRequestStart || connection.requestsServed == 0 {
                server.observer?.connectionRejected(remoteAddress: connection.remote, reason: .headerTimeout)
                if connection.parser.atRequestStart {
                    closeConnection(connection)
                } else {
                    answerAndLinger(connection, status: 408, code: "RequestTimeout",
                                    message: "The request head did not arrive in time.")
                }
            } else {
                closeConnection(connection)  // idle keep-alive connection
            }
        case .lingering:
            closeConnection(connection)
        case .parked:
            let due = IdleClock.instant(connection.idleDeadline.load(ordering: .relaxed))
            if now < due {
                connection.deadline = due  // served since: its worker moved the deadline
                scheduleTimer(connection)
            } else if !expireParked(connection) {
                // Being served: look again later (its worker moves the deadline when it parks it again).
                connection.deadline = now + config.idleTimeout
                scheduleTimer(connection)
            }
        case .busy, .closed:
            break
        }
    }

    // MARK: - Drain

    private func beginDrain() {
        guard graceDeadline == nil else { return }
        if listenerOpen {
            listenerOpen = false
            close(listenFD)
        }
        if index == 0 {
            group.acceptingEnded.store(true, ordering: .releasing)
            for loop in group.loops where loop !== self { loop.wake() }
        }
        let grace = Duration.nanoseconds(graceNanos.load(ordering: .relaxed))
        graceDeadline = .now + grace
        for connection in Array(connections.values) where connection.phase != .busy {
            if connection.phase == .parked {
                expireParked(connection)  // a worker hands it back, and it is closed then
            } else {
                closeConnection(connection)
            }
        }
    }

    // MARK: - Memory

    /// After a burst, give freed heap memory back to the system (glibc keeps it in its arenas), when
    /// `MemoryTrimPolicy` says so.
    private func maybeTrimMemory() {
        guard trimPolicy.due(now: .now) else { return }
        let started = pool.startedCount &+ probePool.startedCount
        if started != startedAtTrimCheck {
            startedAtTrimCheck = started
            trimPolicy.noteBusy()
        }
        let counts = pool.counts
        if trimPolicy.shouldTrim(threads: counts.threads, busy: counts.busy) {
            _ = malloc_trim(0)
        }
    }
}

/// Instants as nanoseconds for atomics (a parked connection's idle deadline, moved by workers).
enum IdleClock {
    private static let origin = ContinuousClock.now

    static func nanos(_ instant: ContinuousClock.Instant) -> Int64 {
        let (seconds, attoseconds) = (instant - origin).components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    static func instant(_ nanos: Int64) -> ContinuousClock.Instant { origin + .nanoseconds(nanos) }
}
