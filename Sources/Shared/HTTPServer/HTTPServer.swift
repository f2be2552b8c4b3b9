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
    /// Size of each connection's read buffer (also the largest socket read).
    public var readBufferSize: Int
    /// Serve HTTPS: every connection starts with a TLS handshake (within `headerTimeout`) using the
    /// context's current certificate. nil serves plain HTTP.
    public var tls: ReloadingTLSContext?

    public init(listenAddress: String = ":8080", maxConnections: Int = 1024,
                headerTimeout: Duration = .seconds(30), idleTimeout: Duration = .seconds(60),
                bodyIdleTimeout: Duration = .seconds(60), limits: HTTPParserLimits = HTTPParserLimits(),
                maxDrainBytes: Int = 1 << 20, readBufferSize: Int = 256 * 1024, tls: ReloadingTLSContext? = nil)
    {
        self.tls = tls
        self.listenAddress = listenAddress
        self.maxConnections = maxConnections
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.bodyIdleTimeout = bodyIdleTimeout
        self.limits = limits
        self.maxDrainBytes = maxDrainBytes
        self.readBufferSize = readBufferSize
    }

    /// Limits of the request head, kept in sync with `limits`.
    public var maxHeaderBytes: Int {
        get { limits.maxHeaderBytes }
        set { limits.maxHeaderBytes = newValue }
    }
}

/// One finished (or aborted) request, for logs and metrics.
public struct RequestSummary: Sendable {
    public var requestID: String
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

    public init(requestID: String, method: String, target: String, remoteAddress: String, status: Int,
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
    /// `maxConnections` were already open; a `503 SlowDown` was sent.
    case tooManyConnections
    /// The request head was malformed or over a limit; the error status was sent.
    case badRequest(HTTPParseError)
    /// The head did not arrive within `headerTimeout`.
    case headerTimeout
    /// The TLS handshake failed or did not finish in time (the message says why).
    case tlsHandshake(String)
}

/// Observability hooks; the server never logs by itself. Called on connection threads.
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

/// Request IDs: 16 uppercase hex characters, a random per-process prefix plus a counter.
public enum RequestIDGenerator {
    private static let prefix = UInt32.random(in: 0...UInt32.max)
    private static let counter = Atomic<UInt32>(UInt32.random(in: 0...UInt32.max))

    public static func next() -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        let v = UInt64(prefix) << 32 | UInt64(n)
        let hex = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// An HTTP/1.1 server on POSIX sockets: one thread per connection with
/// blocking-style I/O, bounded by `maxConnections`.
public final class HTTPServer: Sendable {
    struct Tracked {
        let fd: Int32
        var idle: Bool
    }

    struct State {
        var listenFD: Int32 = -1
        var boundPort = 0
        var started = false
        var draining = false
        var connections: [UInt64: Tracked] = [:]
        var threads = 0
        var nextID: UInt64 = 0
        var acceptThreadRunning = false
    }

    let configuration: HTTPServerConfiguration
    let address: ListenAddress
    let handler: any HTTPRequestHandler
    let observer: (any HTTPServerObserver)?
    let state = Mutex(State())
    /// Wakes the accept loop on shutdown: [read end, write end].
    let wakePipe: (Int32, Int32)

    /// Validates the configuration; nothing is bound until `start()`.
    public init(configuration: HTTPServerConfiguration, handler: any HTTPRequestHandler,
                observer: (any HTTPServerObserver)? = nil) throws
    {
        self.configuration = configuration
        self.address = try ListenAddress(parsing: configuration.listenAddress)
        guard configuration.maxConnections > 0 else {
            throw HTTPServerError(code: .invalidConfiguration, message: "maxConnections must be at least 1")
        }
        for (name, value) in [("headerTimeout", configuration.headerTimeout), ("idleTimeout", configuration.idleTimeout),
                              ("bodyIdleTimeout", configuration.bodyIdleTimeout)] where value <= .zero {
            throw HTTPServerError(code: .invalidConfiguration, message: "\(name) must be positive")
        }
        self.handler = handler
        self.observer = observer
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw HTTPServerError(code: .socketFailed, message: "cannot create a pipe: \(ServerSockets.errnoText(errno))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            ServerSockets.setNonBlocking(fd)
        }
        wakePipe = (fds[0], fds[1])
    }

    deinit {
        state.withLock { s in
            if s.listenFD >= 0 { close(s.listenFD) }
        }
        close(wakePipe.0)
        close(wakePipe.1)
    }

    /// Binds, listens and starts accepting on a background thread.
    /// Also makes the process ignore SIGPIPE (writes use MSG_NOSIGNAL anyway).
    public func start() throws {
        signal(SIGPIPE, SIG_IGN)
        try state.withLock { (s) throws(HTTPServerError) in
            if s.started { throw HTTPServerError(code: .alreadyStarted, message: "server already started") }
            let (fd, port) = try ServerSockets.listen(address, backlog: 1024)
            s.listenFD = fd
            s.boundPort = port
            s.started = true
            s.acceptThreadRunning = true
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "http-accept"
        thread.start()
    }

    /// The bound port (useful with port 0); 0 before `start()`.
    public var boundPort: Int { state.withLock { $0.boundPort } }

    /// The bound address as "host:port", e.g. "127.0.0.1:41234".
    public var boundAddress: String {
        var a = address
        a.port = boundPort
        return a.description
    }

    /// Connections currently open (served, not rejected).
    public var activeConnections: Int { state.withLock { $0.threads } }

    /// Stops accepting, closes idle keep-alive connections at once, lets requests
    /// in flight finish for up to `grace`, then force-closes the rest. Returns
    /// when every connection thread has ended. Safe to call from any thread, more than once.
    public func shutdown(grace: Duration) {
        let idleFDs: [Int32] = state.withLock { s in
            s.draining = true
            return s.connections.values.filter(\.idle).map(\.fd)
        }
        var one: UInt8 = 1
        _ = write(wakePipe.1, &one, 1)
        for fd in idleFDs { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.threads == 0 && !$0.acceptThreadRunning }) { return }
            usleep(5_000)
        }
        // Grace is over: wake every blocked read or write; threads close their own fds.
        state.withLock { s in
            for c in s.connections.values { _ = Glibc.shutdown(c.fd, Int32(SHUT_RDWR)) }
        }
        while !state.withLock({ $0.threads == 0 && !$0.acceptThreadRunning }) {
            state.withLock { s in
                for c in s.connections.values { _ = Glibc.shutdown(c.fd, Int32(SHUT_RDWR)) }
            }
            usleep(5_000)
        }
    }

    var isDraining: Bool { state.withLock { $0.draining } }

    // MARK: - Accepting

    private func acceptLoop() {
        let listenFD = state.withLock { $0.listenFD }
        var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakePipe.0, events: Int16(POLLIN), revents: 0)]
        while !isDraining {
            fds[0].revents = 0
            fds[1].revents = 0
            let rc = poll(&fds, 2, 1000)
            if rc < 0, errno != EINTR { usleep(10_000) }
            if isDraining { break }
            if rc <= 0 || fds[0].revents == 0 { continue }
            // Drain the accept queue.
            while !isDraining {
                var storage = sockaddr_storage()
                var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let fd = withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        accept(listenFD, $0, &len)
                    }
                }
                if fd < 0 {
                    let e = errno
                    if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM { usleep(10_000) }
                    break  // EAGAIN (queue empty), EINTR, ECONNABORTED...: back to poll
                }
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                ServerSockets.setNonBlocking(fd)
                admit(fd: fd, remote: ServerSockets.describe(storage))
            }
        }
        state.withLock { s in
            close(s.listenFD)
            s.listenFD = -1
            s.acceptThreadRunning = false
        }
    }

    private func admit(fd: Int32, remote: String) {
        let id: UInt64? = state.withLock { s in
            guard s.connections.count < configuration.maxConnections else { return nil }
            s.nextID += 1
            s.connections[s.nextID] = Tracked(fd: fd, idle: false)
            s.threads += 1
            return s.nextID
        }
        guard let id else {
            rejectBusy(fd: fd, remote: remote)
            return
        }
        ServerSockets.setNoDelay(fd)
        observer?.connectionOpened(remoteAddress: remote)
        let thread = Thread { [self] in
            let socket = ConnectionSocket(fd: fd)
            HTTPConnection(server: self, id: id, socket: socket, remote: remote).run()
            // Unregister before closing: shutdown() must never shut down a reused fd number.
            state.withLock { s in s.connections[id] = nil }
            socket.close()
            observer?.connectionClosed(remoteAddress: remote)
            state.withLock { s in s.threads -= 1 }
        }
        thread.name = "http-conn"
        thread.stackSize = 4 << 20
        thread.start()
    }

    /// Answers `503 SlowDown` without blocking the accept loop, then closes. Over TLS the answer
    /// would need a handshake first, so the connection is only closed.
    private func rejectBusy(fd: Int32, remote: String) {
        if configuration.tls != nil {
            close(fd)
            observer?.connectionRejected(remoteAddress: remote, reason: .tooManyConnections)
            return
        }
        let requestID = RequestIDGenerator.next()
        let body = serverErrorXML(code: "SlowDown", message: "Too many connections; reduce your request rate.",
                              requestID: requestID)
        let head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: \(body.count)\r\n"
            + "x-amz-request-id: \(requestID)\r\nRetry-After: 1\r\nDate: \(HTTPServerDate.now())\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        // Discard what the client already sent so close() does not turn into a reset
        // that could destroy the 503 before the client reads it.
        var scratch = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<4 { if scratch.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) <= 0 { break } }
        close(fd)
        observer?.connectionRejected(remoteAddress: remote, reason: .tooManyConnections)
    }

    // MARK: - Connection bookkeeping

    /// Marks a connection idle between requests. Returns false if the server is
    /// draining, in which case the connection should close now.
    func markIdle(_ id: UInt64) -> Bool {
        state.withLock { s in
            if s.draining { return false }
            s.connections[id]?.idle = true
            return true
        }
    }

    /// Marks a connection busy (a request started). False while draining.
    func markBusy(_ id: UInt64) -> Bool {
        state.withLock { s in
            s.connections[id]?.idle = false
            return !s.draining
        }
    }
}

/// An S3-style XML error document.
func serverErrorXML(code: String, message: String, requestID: String) -> [UInt8] {
    let esc = XMLText.escape
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(esc(code))</Code><Message>\(esc(message))</Message>"
        + "<RequestId>\(esc(requestID))</RequestId></Error>"
    return Array(xml.utf8)
}

/// IMF-fixdate for the `Date` header.
enum HTTPServerDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String { format(time(nil)) }

    static func format(_ t: time_t) -> String {
        var t = t
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
    }
}
