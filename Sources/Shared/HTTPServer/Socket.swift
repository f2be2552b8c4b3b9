import Glibc

/// A failure binding or listening, with a message an operator can act on.
public struct HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case invalidAddress
        case invalidConfiguration
        case permissionDenied
        case addressInUse
        case addressNotAvailable
        case socketFailed
        case alreadyStarted
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// A parsed listen address: an IPv4 or IPv6 literal (or all interfaces) plus a port.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// Empty means every interface (dual-stack when IPv6 is available).
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses ":8080", "0.0.0.0:8080", "127.0.0.1:0", "[::1]:8080", "localhost:8080".
    public init(parsing text: String) throws(HTTPServerError) {
        func invalid(_ why: String) -> HTTPServerError {
            HTTPServerError(code: .invalidAddress, message: "invalid listen address \"\(text)\": \(why)")
        }
        guard let colon = text.lastIndex(of: ":") else { throw invalid("expected host:port or :port") }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCII), let port = Int(portText),
              (0...65535).contains(port)
        else { throw invalid("port must be a number from 0 to 65535") }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { throw invalid("unbalanced brackets") }
            host = String(host.dropFirst().dropLast())
            guard ListenAddress.isIPv6(host) else { throw invalid("\(host) is not an IPv6 address") }
        } else if host == "localhost" {
            host = "127.0.0.1"
        } else if !host.isEmpty {
            guard ListenAddress.isIPv4(host) else { throw invalid("host must be an IP address, [IPv6], localhost or empty") }
        }
        self.host = host
        self.port = port
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    static func isIPv4(_ s: String) -> Bool {
        var a = in_addr()
        return inet_pton(AF_INET, s, &a) == 1
    }

    static func isIPv6(_ s: String) -> Bool {
        var a = in6_addr()
        return inet_pton(AF_INET6, s, &a) == 1
    }
}

/// Socket-level helpers shared by the listener and connections.
enum ServerSockets {
    static func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

    /// Opens, binds and listens; returns the fd and the bound port.
    static func listen(_ address: ListenAddress, backlog: Int32) throws(HTTPServerError) -> (fd: Int32, port: Int) {
        if address.host.isEmpty {
            // All interfaces: dual-stack IPv6 when the host has it, IPv4 otherwise.
            do {
                return try bindListen(family: AF_INET6, host: "::", port: address.port, backlog: backlog,
                                      shown: address.description)
            } catch where error.code == .addressNotAvailable || error.code == .socketFailed {
                return try bindListen(family: AF_INET, host: "0.0.0.0", port: address.port, backlog: backlog,
                                      shown: address.description)
            }
        }
        let family = address.host.contains(":") ? AF_INET6 : AF_INET
        return try bindListen(family: family, host: address.host, port: address.port, backlog: backlog,
                              shown: address.description)
    }

    private static func bindListen(family: Int32, host: String, port: Int, backlog: Int32, shown: String)
        throws(HTTPServerError) -> (fd: Int32, port: Int)
    {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            let e = errno
            throw HTTPServerError(code: .socketFailed, message: "cannot create a socket for \(shown): \(errnoText(e))")
        }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if family == AF_INET6 {
            var zero: Int32 = 0
            if host == "::" { _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size)) }
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = in_port_t(UInt16(port).bigEndian)
            _ = inet_pton(AF_INET6, host, &sa.sin6_addr)
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = in_port_t(UInt16(port).bigEndian)
            _ = inet_pton(AF_INET, host, &sa.sin_addr)
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        if rc != 0 {
            let e = errno
            close(fd)
            let code: HTTPServerError.Code
            var hint = ""
            switch e {
            case EACCES, EPERM:
                code = .permissionDenied
                hint = port < 1024 ? " (ports below 1024 need privileges; use a higher port)" : ""
            case EADDRINUSE:
                code = .addressInUse
                hint = " (another process is listening there)"
            case EADDRNOTAVAIL, EAFNOSUPPORT:
                code = .addressNotAvailable
                hint = " (no local interface has that address)"
            default: code = .socketFailed
            }
            throw HTTPServerError(code: code, message: "cannot listen on \(shown): \(errnoText(e).lowercased())\(hint)")
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            throw HTTPServerError(code: .socketFailed, message: "cannot listen on \(shown): \(errnoText(e).lowercased())")
        }
        setNonBlocking(fd)
        return (fd, localPort(fd))
    }

    static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return port(of: storage)
    }

    static func port(of storage: sockaddr_storage) -> Int {
        var s = storage
        return withUnsafePointer(to: &s) { p -> Int in
            if Int32(storage.ss_family) == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// "ip:port" (IPv6 in brackets) of a peer address.
    static func describe(_ storage: sockaddr_storage) -> String {
        var s = storage
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let port = port(of: storage)
        return withUnsafePointer(to: &s) { p -> String in
            if Int32(storage.ss_family) == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sa -> String in
                    var addr = sa.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
                    let ip = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                    if ip.hasPrefix("::ffff:"), !ip.dropFirst(7).contains(":") { return "\(ip.dropFirst(7)):\(port)" }
                    return "[\(ip)]:\(port)"
                }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sa -> String in
                var addr = sa.pointee.sin_addr
                _ = inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                return "\(buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }):\(port)"
            }
        }
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Milliseconds for poll(), clamped to at least 1 ms and at most Int32.max.
    static func milliseconds(_ d: Duration) -> Int32 {
        let (s, atto) = d.components
        if s < 0 { return 0 }
        let ms = s * 1000 + atto / 1_000_000_000_000_000
        return Int32(clamping: max(ms, 1))
    }
}

/// Why a connection's socket I/O stopped.
enum SocketIOError: Error, Equatable {
    /// No progress within the allowed time.
    case timeout
    /// The peer closed (EOF while more was required) or reset.
    case closed
    /// Any other errno.
    case failed(Int32)
}

/// I/O on a non-blocking connected socket: blocking-style with poll() timeouts for the worker serving a
/// request, single non-blocking attempts for the event loop; TLS when `tls` is set. Used by one thread at
/// a time (whoever owns the connection); the fd is closed by `close()` or in `deinit`.
final class ConnectionSocket {
    let fd: Int32
    /// The TLS session on this socket (listener with `TLS_CERT_FILE`), after `startTLS`.
    private(set) var tls: TLSStream?
    private var closed = false

    init(fd: Int32) { self.fd = fd }
    deinit { close() }

    func close() {
        if closed { return }
        closed = true
        tls = nil  // frees the session before the descriptor number can be reused
        _ = Glibc.close(fd)
    }

    /// Puts a TLS session (handshake not necessarily done) on this socket; every later read and write
    /// goes through it.
    func attachTLS(_ stream: TLSStream) {
        tls = stream
    }

    /// What a non-blocking read found.
    enum ReadAttempt {
        case data(Int)
        case wouldBlock(wantWrite: Bool)
        case endOfStream
        case failed
    }

    /// One read that never waits (the event loop's).
    func tryRead(into buffer: UnsafeMutableRawBufferPointer) -> ReadAttempt {
        if let tls {
            do {
                switch try tls.readStep(into: buffer) {
                case .done(let n): return .data(n)
                case .closed: return .endOfStream
                case .wantRead: return .wouldBlock(wantWrite: false)
                case .wantWrite: return .wouldBlock(wantWrite: true)
                }
            } catch {
                return .failed
            }
        }
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 { return .data(n) }
            if n == 0 { return .endOfStream }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock(wantWrite: false)
            default: return .failed
            }
        }
    }

    /// Sends a small message without waiting; false if it did not all go out.
    func trySend(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                if let tls {
                    guard case .done(let n)? = try? tls.writeStep(UnsafeRawBufferPointer(rebasing: raw[offset...])) else {
                        return false
                    }
                    offset += n
                } else {
                    let n = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return false }
                    offset += n
                }
            }
            return true
        }
    }

    /// Half-closes the sending side (after TLS close_notify), so the peer sees the end of the response.
    func shutdownWrite() {
        tls?.shutdownStep()
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads at least one byte; returns 0 only at end of stream.
    /// `deadline` bounds the total wait (head reads); otherwise `idle` bounds each wait.
    func read(into buffer: UnsafeMutableRawBufferPointer, idle: Duration, deadline: ContinuousClock.Instant? = nil)
        throws(SocketIOError) -> Int
    {
        while true {
            let wantWrite: Bool
            if let tls {
                let step: TLSStream.Progress
                do { step = try tls.readStep(into: buffer) } catch { throw SocketIOError(error) }
                switch step {
                case .done(let n): return n
                case .closed: return 0
                case .wantRead: wantWrite = false
                case .wantWrite: wantWrite = true
                }
            } else {
                let n = recv(fd, buffer.baseAddress, buffer.count, 0)
                if n >= 0 { return n }
                let e = errno
                switch e {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK: wantWrite = false
                case ECONNRESET, ENOTCONN, ESHUTDOWN: throw .closed
                default: throw .failed(e)
                }
            }
            var wait = idle
            if let deadline {
                wait = deadline - ContinuousClock.now
                if wait <= .zero { throw .timeout }
            }
            try poll(events: Int16(wantWrite ? POLLOUT : POLLIN), timeout: wait)
        }
    }

    /// Waits until the socket is readable (data or EOF) or the timeout passes.
    func waitReadable(timeout: Duration) throws(SocketIOError) {
        if tls?.hasBufferedInput == true { return }
        try poll(events: Int16(POLLIN), timeout: timeout)
    }

    private func poll(events: Int16, timeout: Duration) throws(SocketIOError) {
        var pfd = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let rc = Glibc.poll(&pfd, 1, ServerSockets.milliseconds(timeout))
            if rc > 0 { return }  // readiness, HUP or ERR: the next syscall reports which
            if rc == 0 { throw .timeout }
            let e = errno
            if e == EINTR { continue }
            throw .failed(e)
        }
    }

    /// Sends every byte of `parts`, in order, handling partial sends and EINTR.
    /// `idle` bounds each wait for the peer to accept more.
    func writeAll(_ parts: [UnsafeRawBufferPointer], idle: Duration) throws(SocketIOError) {
        var failure: SocketIOError?
        parts.withUnsafeBufferPointer { parts in
            do throws(SocketIOError) { try writeAll(gathering: parts, idle: idle) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes `parts` in order, gathered (`sendmsg`; the I/O vector lives on the stack, no allocation).
    func writeAll(gathering parts: UnsafeBufferPointer<UnsafeRawBufferPointer>, idle: Duration) throws(SocketIOError) {
        if let tls {
            try writeAllTLS(tls, parts, idle: idle)
            return
        }
        var failure: SocketIOError?
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: max(1, parts.count)) { iov in
            var count = 0
            for p in parts where p.count > 0 {
                iov[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: p.baseAddress), iov_len: p.count)
                count += 1
            }
            do throws(SocketIOError) { try sendGathered(iov, count: count, idle: idle) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    private func sendGathered(_ iov: UnsafeMutableBufferPointer<iovec>, count: Int, idle: Duration) throws(SocketIOError) {
        var first = 0
        while first < count {
            var msg = msghdr()
            msg.msg_iov = iov.baseAddress! + first
            msg.msg_iovlen = count - first
            let n = sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
            if n < 0 {
                let e = errno
                switch e {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK: try poll(events: Int16(POLLOUT), timeout: idle)
                case EPIPE, ECONNRESET, ENOTCONN, ESHUTDOWN: throw .closed
                default: throw .failed(e)
                }
                continue
            }
            var sent = n
            while sent > 0, first < count {
                if sent >= iov[first].iov_len {
                    sent -= iov[first].iov_len
                    first += 1
                } else {
                    iov[first].iov_base += sent
                    iov[first].iov_len -= sent
                    sent = 0
                }
            }
        }
    }

    /// TLS has no gathered write: small pieces (a head and a short body) are joined so they
    /// travel in one record; large ones are written as they are.
    private func writeAllTLS(_ tls: TLSStream, _ parts: UnsafeBufferPointer<UnsafeRawBufferPointer>,
                             idle: Duration) throws(SocketIOError) {
        let total = parts.reduce(0) { $0 + $1.count }
        if parts.count > 1 && total <= 16 * 1024 {
            var joined = [UInt8]()
            joined.reserveCapacity(total)
            for p in parts { joined.append(contentsOf: p) }
            var failure: SocketIOError?
            joined.withUnsafeBytes { p in
                do throws(SocketIOError) { try writeTLS(tls, p, idle: idle) } catch { failure = error }
            }
            if let failure { throw failure }
            return
        }
        for p in parts where p.count > 0 { try writeTLS(tls, p, idle: idle) }
    }

    private func writeTLS(_ tls: TLSStream, _ bytes: UnsafeRawBufferPointer, idle: Duration) throws(SocketIOError) {
        var offset = 0
        while offset < bytes.count {
            let step: TLSStream.Progress
            do { step = try tls.writeStep(UnsafeRawBufferPointer(rebasing: bytes[offset...])) } catch { throw SocketIOError(error) }
            switch step {
            case .done(let n): offset += n
            case .closed: throw .closed
            case .wantRead: try poll(events: Int16(POLLIN), timeout: idle)
            case .wantWrite: try poll(events: Int16(POLLOUT), timeout: idle)
            }
        }
    }

    func writeAll(_ bytes: [UInt8], idle: Duration) throws(SocketIOError) {
        var failure: SocketIOError?
        bytes.withUnsafeBytes { p in
            do throws(SocketIOError) { try writeAll([p], idle: idle) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

extension SocketIOError {
    init(_ error: TLSError) {
        switch error.code {
        case .timeout: self = .timeout
        case .closed: self = .closed
        default: self = .failed(EPROTO)
        }
    }
}
