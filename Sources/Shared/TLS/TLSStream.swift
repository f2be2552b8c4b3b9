import COpenSSL
import Glibc

/// One TLS session over a connected, non-blocking socket it does not own (the caller closes the fd).
///
/// Two ways to drive it: the `…Step` calls never block and say what they wait for (`wantRead`/`wantWrite`),
/// for an event loop; `handshake(deadline:)`, `read(into:timeout:)` and `writeAll(_:timeout:)` wait with
/// `poll()` themselves, for a thread that owns the connection. Used by one thread at a time.
public final class TLSStream {
    /// What a non-blocking step did.
    public enum Progress: Equatable, Sendable {
        /// Done: bytes read or written (0 for a finished handshake).
        case done(Int)
        /// Call again once the socket is readable.
        case wantRead
        /// Call again once the socket is writable.
        case wantWrite
        /// The peer closed the session (read side: end of stream).
        case closed
    }

    let ssl: OpaquePointer
    public let fd: Int32
    /// Keeps the context alive as long as the session (OpenSSL also holds a reference).
    public let context: TLSContext
    public private(set) var handshakeComplete = false

    /// - Parameter serverName: for clients, the name sent in SNI and checked against the certificate
    ///   (a DNS name or an IP address literal).
    public init(context: TLSContext, fd: Int32, serverName: String? = nil) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.handle) else { throw TLSError.openssl(.protocolError, "SSL_new") }
        self.ssl = ssl
        self.fd = fd
        self.context = context
        guard SSL_set_fd(ssl, fd) == 1 else { throw TLSError.openssl(.protocolError, "SSL_set_fd") }
        switch context.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            if let serverName {
                let isIP = ListenAddress.isIPv4(serverName) || ListenAddress.isIPv6(serverName)
                if isIP {
                    _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName)
                } else {
                    _ = copenssl_set_tlsext_host_name(ssl, serverName)
                    _ = SSL_set1_host(ssl, serverName)
                }
            }
        }
    }

    deinit { SSL_free(ssl) }

    /// Decrypted or raw bytes OpenSSL holds that the socket's readiness will not announce.
    public var hasBufferedInput: Bool { SSL_has_pending(ssl) == 1 }

    /// Negotiated protocol, e.g. "TLSv1.3".
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// Negotiated cipher suite, e.g. "TLS_AES_256_GCM_SHA384".
    public var cipherName: String {
        guard let cipher = SSL_get_current_cipher(ssl) else { return "" }
        return String(cString: SSL_CIPHER_get_name(cipher))
    }

    /// The peer's certificate after the handshake (the server's, for a client).
    public var peerCertificate: TLSCertificateInfo? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        return TLSContext.describe(cert)
    }

    // MARK: - Non-blocking steps

    public func handshakeStep() throws(TLSError) -> Progress {
        if handshakeComplete { return .done(0) }
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            handshakeComplete = true
            return .done(0)
        }
        return try progress(rc, during: "TLS handshake")
    }

    /// Reads decrypted bytes; `.closed` at the end of the stream.
    public func readStep(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> Progress {
        guard buffer.count > 0 else { return .done(0) }
        ERR_clear_error()
        var n = 0
        if SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n) == 1 { return .done(n) }
        return try progress(0, during: "TLS read")
    }

    /// Writes some of `bytes` (partial writes are on); retry with the rest.
    public func writeStep(_ bytes: UnsafeRawBufferPointer) throws(TLSError) -> Progress {
        guard bytes.count > 0 else { return .done(0) }
        ERR_clear_error()
        var n = 0
        if SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &n) == 1 { return .done(n) }
        return try progress(0, during: "TLS write")
    }

    /// Sends close_notify once, without waiting for the peer's (HTTP has its own framing).
    public func shutdownStep() {
        guard handshakeComplete else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    private func progress(_ rc: Int32, during what: String) throws(TLSError) -> Progress {
        let error = SSL_get_error(ssl, rc)
        switch error {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error()
            return .closed
        case SSL_ERROR_SYSCALL:
            let e = errno
            let detail = TLSError.drainOpenSSLErrors()
            if e == 0 || e == ECONNRESET || e == EPIPE || e == ENOTCONN || e == ESHUTDOWN {
                if handshakeComplete { return .closed }
                throw TLSError(code: .closed, message: "\(what): the peer closed the connection")
            }
            throw TLSError(code: .io, message: "\(what): \(String(cString: strerror(e))) (\(detail))")
        default:
            let code: TLSError.Code = handshakeComplete ? .protocolError : .handshake
            var message = "\(what) failed: \(TLSError.drainOpenSSLErrors())"
            if context.role == .client, !handshakeComplete {
                let verify = SSL_get_verify_result(ssl)
                if verify != X509_V_OK {
                    message += " (certificate: \(String(cString: X509_verify_cert_error_string(verify))))"
                }
            }
            throw TLSError(code: code, message: message)
        }
    }

    // MARK: - Blocking-style helpers (poll on the non-blocking socket)

    /// Completes the handshake before `deadline`.
    public func handshake(deadline: ContinuousClock.Instant) throws(TLSError) {
        while true {
            let step = try handshakeStep()
            switch step {
            case .done: return
            case .closed: throw TLSError(code: .closed, message: "TLS handshake: the peer closed the connection")
            case .wantRead, .wantWrite:
                try wait(for: step, timeout: deadline - ContinuousClock.now, what: "TLS handshake")
            }
        }
    }

    /// Reads at least one byte, waiting up to `timeout` for each step; 0 at the end of the stream.
    public func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration) throws(TLSError) -> Int {
        while true {
            let step = try readStep(into: buffer)
            switch step {
            case .done(let n): return n
            case .closed: return 0
            case .wantRead, .wantWrite: try wait(for: step, timeout: timeout, what: "TLS read")
            }
        }
    }

    /// Writes every byte, waiting up to `timeout` whenever the peer accepts nothing.
    public func writeAll(_ bytes: UnsafeRawBufferPointer, timeout: Duration) throws(TLSError) {
        var offset = 0
        while offset < bytes.count {
            let step = try writeStep(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            switch step {
            case .done(let n): offset += n
            case .closed: throw TLSError(code: .closed, message: "TLS write: the peer closed the connection")
            case .wantRead, .wantWrite: try wait(for: step, timeout: timeout, what: "TLS write")
            }
        }
    }

    private func wait(for step: Progress, timeout: Duration, what: String) throws(TLSError) {
        guard timeout > .zero else { throw TLSError(code: .timeout, message: "\(what): timed out") }
        var pfd = pollfd(fd: fd, events: Int16(step == .wantWrite ? POLLOUT : POLLIN), revents: 0)
        while true {
            let rc = poll(&pfd, 1, TLSStream.milliseconds(timeout))
            if rc > 0 { return }
            if rc == 0 { throw TLSError(code: .timeout, message: "\(what): timed out") }
            if errno != EINTR { throw TLSError(code: .io, message: "\(what): poll: \(String(cString: strerror(errno)))") }
        }
    }

    static func milliseconds(_ d: Duration) -> Int32 {
        let (s, atto) = d.components
        if s < 0 { return 0 }
        return Int32(clamping: max(s * 1000 + atto / 1_000_000_000_000_000, 1))
    }
}

/// A TLS client connection that owns its TCP socket: dial, handshake, read and write with timeouts
/// (KMIP and other peers the gateway talks TLS to without libcurl).
public final class TLSClientConnection {
    public let stream: TLSStream
    private var closed = false

    /// Connects to `host:port` (name or IP literal), then completes the handshake, all within `timeout`.
    /// `serverName` (default: `host`) is sent as SNI and verified against the certificate.
    public init(host: String, port: Int, context: TLSContext, serverName: String? = nil,
                timeout: Duration = .seconds(10)) throws(TLSError) {
        signal(SIGPIPE, SIG_IGN)  // OpenSSL writes with write(2); a closed peer must be an error, not a signal
        let deadline = ContinuousClock.now + timeout
        let fd = try TLSClientConnection.dial(host: host, port: port, deadline: deadline)
        do {
            stream = try TLSStream(context: context, fd: fd, serverName: serverName ?? host)
            try stream.handshake(deadline: deadline)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    deinit { close() }

    public func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration) throws(TLSError) -> Int {
        try stream.read(into: buffer, timeout: timeout)
    }

    public func writeAll(_ bytes: UnsafeRawBufferPointer, timeout: Duration) throws(TLSError) {
        try stream.writeAll(bytes, timeout: timeout)
    }

    /// Sends close_notify and closes the socket. Idempotent.
    public func close() {
        if closed { return }
        closed = true
        stream.shutdownStep()
        Glibc.close(stream.fd)
    }

    private static func dial(host: String, port: Int, deadline: ContinuousClock.Instant) throws(TLSError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw TLSError(code: .io, message: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let ai = entry {
            entry = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            if fd < 0 { continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return fd }
            if errno == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let left = deadline - ContinuousClock.now
                if left > .zero, poll(&pfd, 1, TLSStream.milliseconds(left)) == 1 {
                    var soError: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
                    if soError == 0 {
                        var one: Int32 = 1
                        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                        return fd
                    }
                    lastError = String(cString: strerror(soError))
                } else {
                    lastError = "timed out"
                }
            } else {
                lastError = String(cString: strerror(errno))
            }
            Glibc.close(fd)
        }
        throw TLSError(code: lastError == "timed out" ? .timeout : .io, message: "cannot connect to \(host):\(port): \(lastError)")
    }
}
