import Glibc
import Synchronization

/// Errors the request body and response writer throw to handlers.
public enum HTTPConnectionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No progress within `bodyIdleTimeout`.
    case timeout
    /// The client closed or reset the connection mid-request.
    case closed
    /// A socket error (errno).
    case io(Int32)
    /// The chunked request body is malformed or over a limit.
    case malformedBody(HTTPParseError)
    /// The handler used the writer or body out of order (a bug in the handler).
    case misuse(String)

    public var description: String {
        switch self {
        case .timeout: return "no progress on the connection within the idle timeout"
        case .closed: return "the client closed the connection"
        case .io(let e): return "socket error: \(ServerSockets.errnoText(e))"
        case .malformedBody(let e): return "malformed request body: \(e.message)"
        case .misuse(let m): return "handler misuse: \(m)"
        }
    }

    init(_ e: SocketIOError) {
        switch e {
        case .timeout: self = .timeout
        case .closed: self = .closed
        case .failed(let n): self = .io(n)
        }
    }
}

/// What becomes of a connection after its requests were served on a worker.
enum ConnectionDisposition: Sendable {
    /// Wait for the next request (back to the event loop).
    case keepAlive
    /// Half-close and discard late input briefly before closing, so the last response is not destroyed
    /// by a reset (the event loop does it, without holding a worker).
    case linger
    /// Close now (the response was cut short, or the peer is gone).
    case close
}

/// One accepted connection. Ownership moves between threads and never overlaps: the event loop owns it
/// while it waits for (and parses) a request head; a worker owns it while a request is served and hands
/// it back with a `ConnectionDisposition`. The hand-offs go through the pool's and the loop's queues,
/// whose locks order the memory accesses; hence `@unchecked Sendable`.
final class HTTPConnection: @unchecked Sendable {
    unowned let server: HTTPServer
    let id: UInt64
    /// The event loop that owns the connection while it waits (its place in `EventLoopGroup.loops`).
    let loopIndex: Int
    let socket: ConnectionSocket
    let remote: String
    let config: HTTPServerConfiguration
    /// What handlers see of this connection (`markAuthenticated()`).
    let handle: ConnectionHandle
    var parser: HTTPRequestParser
    let acceptedAt: ContinuousClock.Instant

    // MARK: Worker side (valid while a worker owns the connection)

    /// The serving worker's read buffer; `start..<end` holds bytes received but not yet parsed.
    var buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    var start = 0
    var end = 0
    /// The serving worker's buffer for gathering small response writes into one socket write.
    var coalescingBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var cachedDate: (time_t, String) = (0, "")

    // MARK: Between owners

    /// Bytes read by the event loop after a request head (the start of a body or the next request),
    /// carried to the worker's buffer; and back, when a worker leaves unparsed bytes.
    var carry: [UInt8] = []

    // MARK: Event-loop side (see EventLoop)

    /// `parked`: in the worker pool's ready set (`EventLoop.park`), waiting or served from there; the loop
    /// reaches it only through `readyState` until a worker hands it back.
    enum Phase { case handshake, reading, busy, parked, lingering, closed }
    var phase = Phase.handshake
    /// In the reserve beyond `maxConnections`: one request, answered only if it is a probe.
    var reserved = false
    var deadline: ContinuousClock.Instant
    var timerGeneration: UInt64 = 0
    var requestsServed = 0
    var lingerBytes = 0
    /// The owning loop's view: counted as unauthenticated in the ledger (until a request authenticates),
    /// and listed there as idle; each saves a ledger call when false.
    var tracksAuthentication = false
    var listedIdle = false

    // MARK: The ready set (see EventLoop.park)

    /// Who holds a connection registered in the worker pool's ready set (`readyState`).
    enum ReadyState {
        /// Its loop (not waiting in the ready set).
        static let withLoop: UInt8 = 0
        /// Armed in the ready set, waiting for its next request.
        static let parked: UInt8 = 1
        /// A worker took its event and serves it.
        static let serving: UInt8 = 2
        /// Its loop ended the wait (idle timeout, drain); the worker that takes its event hands it back.
        static let expiring: UInt8 = 3
    }
    /// Claimed by compare-and-exchange: a worker takes `parked` to `serving`, the loop `parked` to `expiring`.
    let readyState = Atomic<UInt8>(ReadyState.withLoop)
    /// When a parked connection's idle wait ends (`IdleClock` nanoseconds); a worker moves it at each park.
    let idleDeadline = Atomic<Int64>(0)
    /// The last request was a probe (served on the probe workers): the connection then stays with its loop
    /// between requests, so its next probe does not wait for a pool thread to read it.
    var servedProbe = false
    /// Registered in the ready set (set by the loop before the first registration; the fd leaves the set
    /// when it is closed).
    var inReadySet = false
    /// The epoll data of its ready-set registration: its address. The loop's table keeps it alive while
    /// registered; the loop closes it only after a worker handed it back.
    var readyData: UInt64 { UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) }

    // MARK: Guarded by the ConnectionLedger's lock

    /// Idle unauthenticated connections, least recently active first (eviction order).
    var lruPrevious: HTTPConnection?
    var lruNext: HTTPConnection?
    var inLRU = false
    /// Counted in the unauthenticated budget (until a request authenticates).
    var countedUnauthenticated = false
    /// Off the books: evicted for a newcomer, or closed.
    var evicted = false

    init(server: HTTPServer, id: UInt64, loopIndex: Int, socket: ConnectionSocket, remote: String, trusted: Bool) {
        self.server = server
        self.id = id
        self.loopIndex = loopIndex
        self.socket = socket
        self.remote = remote
        self.config = server.configuration
        self.handle = ConnectionHandle(remoteAddress: remote, authenticated: trusted)
        self.parser = HTTPRequestParser(limits: server.configuration.limits)
        self.acceptedAt = .now
        self.deadline = acceptedAt + server.configuration.headerTimeout
    }


    var pending: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[start..<end]) }

    func date() -> String {
        let now = time(nil)
        if now != cachedDate.0 { cachedDate = (now, HTTPServerDate.format(now)) }
        return cachedDate.1
    }

    // MARK: - On a worker

    /// Serves `first` and any request already buffered behind it (pipelining), on the calling worker
    /// thread, with that thread's buffers. Returns what the event loop should do next. `buffered`: bytes
    /// after the head that are already in the thread's read buffer (read there from the ready set);
    /// otherwise they come from `carry`.
    func serveRequests(first: HTTPParsedHead, scratch: WorkerScratch, buffered: Range<Int>? = nil) -> ConnectionDisposition {
        buffer = scratch.readBuffer
        coalescingBuffer = scratch.outputBuffer
        if let buffered {
            start = buffered.lowerBound
            end = buffered.upperBound
        } else {
            start = 0
            end = min(carry.count, buffer.count)
            if end > 0 { carry.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: end) } }
            carry.removeAll()
        }
        defer {
            // The buffers stay with the worker (an idle connection holds none); unparsed bytes travel
            // with the connection.
            if start < end { carry = Array(pending) }
            buffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            coalescingBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            start = 0
            end = 0
        }
        var head = first
        while true {
            let disposition = serve(head)
            guard case .keepAlive = disposition else { return disposition }
            parser.reset()
            requestsServed += 1
            guard start < end else { return .keepAlive }
            // Bytes behind the response: a pipelined request (or the start of one).
            do {
                let r = try parser.feed(pending)
                start += r.consumed
                guard case .head(let next) = r.event else { return .keepAlive }  // partial head: the loop waits for the rest
                if server.isDraining { return .close }
                head = next
            } catch {
                server.observer?.connectionRejected(remoteAddress: remote, reason: .badRequest(error))
                sendError(status: error.status, code: error.code, message: error.message, requestID: RequestIDGenerator.next())
                return .linger
            }
        }
    }

    /// A complete small error response; the connection closes after it.
    func sendError(status: Int, code: String, message: String, requestID: RequestID) {
        let bytes = serverErrorResponse(status: status, code: code, message: message, requestID: requestID, date: date())
        try? socket.writeAll(bytes, idle: config.bodyIdleTimeout)
    }

    /// Runs the handler for one request and decides whether the connection stays open.
    private func serve(_ parsed: HTTPParsedHead) -> ConnectionDisposition {
        let context = RequestContext(requestID: RequestIDGenerator.next(), remoteAddress: remote,
                                     startedAt: .now, connection: handle)
        let body = ConnectionBody(connection: self, parsed: parsed)
        let writer = ConnectionResponseWriter(connection: self, parsed: parsed, body: body, requestID: context.requestID)
        body.writer = writer
        do {
            try server.handler.handle(parsed.head, body: body, response: writer, context: context)
        } catch {
            // Handled below: what matters is whether a complete response went out.
        }
        var keep = true
        var aborted = false
        if !writer.finished {
            keep = false
            if !writer.headWritten && !writer.broken && body.failure != .closed {
                writer.forceClose = true
                let (status, code, message) = fallbackError(body.failure)
                var h = HTTPFields()
                h.add("Content-Type", "application/xml")
                let xml = serverErrorXML(code: code, message: message, requestID: context.requestID)
                do { try writer.respond(status: status, headers: h, body: xml) } catch { aborted = true }
            } else {
                // Deliver what the handler did write (clients can resume from it), then close.
                if !writer.broken { try? writer.flushGathered() }
                aborted = true
            }
        }
        if writer.broken || writer.closeAfter { keep = false }
        if body.failure != nil { keep = false }
        if keep && !parser.bodyComplete {
            if parsed.expectsContinue && !body.continueSent {
                keep = false
            } else {
                keep = body.drain(limit: config.maxDrainBytes, deadline: .now + config.drainTimeout)
            }
        }
        if server.isDraining { keep = false }
        body.active = false
        writer.active = false
        server.observer?.requestFinished(RequestSummary(
            requestID: context.requestID, method: parsed.head.method, target: parsed.head.target,
            remoteAddress: remote, status: writer.status, bytesIn: body.bytesIn, bytesOut: writer.bytesOut,
            duration: ContinuousClock.now - context.startedAt, aborted: aborted || writer.broken))
        if keep { return .keepAlive }
        return aborted || writer.broken ? .close : .linger
    }
}

/// A complete error response (S3 XML body) that ends with `Connection: close`.
func serverErrorResponse(status: Int, code: String, message: String, requestID: RequestID, date: String,
                         extraHeaders: String = "") -> [UInt8] {
    let body = serverErrorXML(code: code, message: message, requestID: requestID)
    let head = "HTTP/1.1 \(status) \(HTTPReasonPhrase.reason(status))\r\nContent-Type: application/xml\r\n"
        + "Content-Length: \(body.count)\r\nx-amz-request-id: \(requestID)\r\n\(extraHeaders)Date: \(date)\r\n"
        + "Connection: close\r\n\r\n"
    return Array(head.utf8) + body
}

/// The answer when a handler returns without a response: a body failure maps to the
/// S3 error a client expects; anything else is the handler's fault.
func fallbackError(_ failure: HTTPConnectionError?) -> (Int, String, String) {
    switch failure {
    case .malformedBody(let e)?: return (e.status, e.code, e.message)
    case .timeout?:
        return (400, "RequestTimeout",
                "Your socket connection to the server was not read from or written to within the timeout period.")
    default: return (500, "InternalError", "We encountered an internal error. Please try again.")
    }
}

/// The request body as the handler sees it: plain bytes, streamed from the socket.
final class ConnectionBody: RequestBody {
    unowned let connection: HTTPConnection
    let declaredLength: Int64?
    let expectsContinue: Bool
    /// Not `weak`: a weak reference allocates a side table per request. The writer outlives every use
    /// (`serve` holds it until after `active` is cleared; reads after that throw before touching it).
    unowned var writer: ConnectionResponseWriter?
    var continueSent = false
    var bytesIn: Int64 = 0
    var failure: HTTPConnectionError?
    var active = true

    init(connection: HTTPConnection, parsed: HTTPParsedHead) {
        self.connection = connection
        if case .length(let n) = parsed.framing { declaredLength = n } else if parsed.framing == .none {
            declaredLength = 0
        } else {
            declaredLength = nil
        }
        expectsContinue = parsed.expectsContinue
    }

    func read(into dest: UnsafeMutableRawBufferPointer) throws -> Int { try read(into: dest, deadline: nil) }

    /// `deadline` (draining) bounds the total wait; otherwise each wait is bounded by the body idle timeout.
    func read(into dest: UnsafeMutableRawBufferPointer, deadline: ContinuousClock.Instant?) throws -> Int {
        guard active else { throw HTTPConnectionError.misuse("body read after the handler returned") }
        if let failure { throw failure }
        guard dest.count > 0 else { return 0 }
        let c = connection
        // Even an empty body gets its 100 Continue: botocore, having asked for one on
        // a zero-length PUT, otherwise mistakes the final response and stalls its next request.
        if c.parser.bodyComplete && !(expectsContinue && !continueSent) { return 0 }
        do {
            if expectsContinue && !continueSent {
                continueSent = true
                // 100 may precede a final head that is written but not yet on the wire.
                if writer?.headOnWire != true {
                    try c.socket.writeAll(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), idle: c.config.bodyIdleTimeout)
                }
            }
            try writer?.flushPendingHead()
            while true {
                if c.parser.bodyComplete { return 0 }
                if c.start < c.end {
                    let r = try c.parser.feed(c.pending, maxBody: dest.count)
                    if case .body(let range) = r.event {
                        let n = range.count
                        dest.baseAddress!.copyMemory(from: c.buffer.baseAddress! + c.start + range.lowerBound, byteCount: n)
                        c.start += r.consumed
                        bytesIn += Int64(n)
                        return n
                    }
                    c.start += r.consumed
                    if case .end = r.event { return 0 }
                    continue
                }
                c.start = 0
                c.end = 0
                let direct = c.parser.directBodyBytes
                if direct > 0 && dest.count >= 16 * 1024 {
                    // Large reads go straight from the socket into the caller's buffer.
                    let limit = Int(min(Int64(dest.count), direct))
                    let n = try c.socket.read(into: UnsafeMutableRawBufferPointer(rebasing: dest[0..<limit]),
                                              idle: c.config.bodyIdleTimeout, deadline: deadline)
                    if n == 0 { throw SocketIOError.closed }
                    c.parser.consumeDirectBody(n)
                    bytesIn += Int64(n)
                    return n
                }
                let n = try c.socket.read(into: c.buffer, idle: c.config.bodyIdleTimeout, deadline: deadline)
                if n == 0 { throw SocketIOError.closed }
                c.end = n
            }
        } catch let e as SocketIOError {
            failure = HTTPConnectionError(e)
        } catch let e as HTTPParseError {
            failure = .malformedBody(e)
        } catch let e as HTTPConnectionError {
            failure = e
        }
        throw failure!
    }

    /// Reads and discards the rest of the body, up to `limit` bytes and until `deadline`. True if it ended;
    /// a client that sends too much or too slowly loses the connection instead of holding a worker.
    func drain(limit: Int, deadline: ContinuousClock.Instant) -> Bool {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { scratch.deallocate() }
        var total = 0
        while total <= limit {
            if ContinuousClock.now >= deadline { return false }
            guard let n = try? read(into: scratch, deadline: deadline) else { return false }
            if n == 0 { return true }
            total += n
        }
        return false
    }
}

/// Frames the handler's response on the socket.
final class ConnectionResponseWriter: ResponseWriter {
    enum Mode {
        case noBody
        case length(remaining: Int64)
        case chunked
        case closeDelimited
    }

    unowned let connection: HTTPConnection
    let parsed: HTTPParsedHead
    unowned let body: ConnectionBody
    let requestID: RequestID
    private(set) var headWritten = false
    var finished = false
    /// An I/O error or framing violation: the connection must close.
    var broken = false
    /// `Connection: close` was sent.
    var closeAfter = false
    /// Set by the server to send `Connection: close` (e.g. its own 500).
    var forceClose = false
    var active = true
    var status = 0
    var bytesOut: Int64 = 0
    private var mode = Mode.noBody
    /// A head written but not yet sent (it goes out with the first body bytes). Its bytes are the first
    /// `headCount` of the coalescing buffer, which holds nothing else until the head is sent (body bytes are
    /// only gathered after the first write, which sends the head); or, when `headCount` is 0 (a head too large
    /// for the buffer, or a connection served without a worker's buffers), they are in `ownHead`.
    private var headPending = false
    private var headCount = 0
    private var ownHead: [UInt8] = []
    private lazy var chunkPrefix = [UInt8](repeating: 0, count: 20)

    init(connection: HTTPConnection, parsed: HTTPParsedHead, body: ConnectionBody, requestID: RequestID) {
        self.connection = connection
        self.parsed = parsed
        self.body = body
        self.requestID = requestID
    }

    func writeHead(_ head: HTTPResponseHead) throws {
        guard active else { throw HTTPConnectionError.misuse("response written after the handler returned") }
        guard !headWritten else { throw HTTPConnectionError.misuse("response head written twice") }
        guard head.status >= 200 && head.status <= 999 else {
            throw HTTPConnectionError.misuse("status \(head.status) is not a final status")
        }
        let c = connection
        let isHEAD = parsed.head.method == "HEAD"
        let bodyless = head.status == 204 || head.status == 304 || (head.status >= 100 && head.status < 200)
        if let n = head.contentLength, n < 0 { throw HTTPConnectionError.misuse("negative Content-Length") }

        // A connection from the reserve beyond maxConnections gets one answer only.
        var close = forceClose || !parsed.keepAlive || c.server.isDraining || c.reserved || body.failure != nil
        if !c.parser.bodyComplete {
            // A body we cannot or will not drain means this connection ends with the response.
            if parsed.expectsContinue && !body.continueSent { close = true }
            if case .length = parsed.framing, c.parser.directBodyBytes > Int64(c.config.maxDrainBytes) { close = true }
        }
        if isHEAD || bodyless {
            mode = .noBody
        } else if let n = head.contentLength {
            mode = n == 0 ? .noBody : .length(remaining: n)
        } else if parsed.head.minorVersion == 0 {
            mode = .closeDelimited
            close = true
        } else {
            mode = .chunked
        }

        let framing: ResponseHeadEncoder.Framing
        if bodyless {
            framing = .none
        } else if let n = head.contentLength {
            framing = .contentLength(n)
        } else {
            framing = !isHEAD && parsed.head.minorVersion == 1 ? .chunked : .omitted
        }
        let connectionField: ResponseHeadEncoder.ConnectionField =
            close ? .close : (parsed.head.minorVersion == 0 ? .keepAlive : .none)
        do {
            // Straight into the coalescing buffer (empty until the head is sent): no array to build, no copy.
            let reason = HTTPReasonPhrase.reason(head.status), date = c.date()
            let buffer = c.coalescingBuffer
            let count = try ResponseHeadEncoder.encode(
                into: buffer, status: head.status, reason: reason, headers: head.headers, date: date,
                requestID: requestID, framing: framing, connection: connectionField)
            if count <= buffer.count {
                headCount = count
            } else {
                headCount = 0
                ownHead = try ResponseHeadEncoder.encode(
                    status: head.status, reason: reason, headers: head.headers, date: date, requestID: requestID,
                    framing: framing, connection: connectionField)
            }
        } catch {
            throw HTTPConnectionError.misuse("invalid response header \(error.name)")
        }
        closeAfter = close
        status = head.status
        headWritten = true
        headPending = true
    }

    /// The head has been written and sent (not just buffered for the first body bytes).
    var headOnWire: Bool { headWritten && !headPending }

    /// Sends a head that is still waiting for its first body bytes.
    func flushPendingHead() throws {
        guard headPending else { return }
        try send(head: takeHead())
    }

    /// Largest gathered write. libcurl hands a relayed body over in pieces of whatever it has read,
    /// often 16 KiB; one send and one receiver wake-up per small piece cost more than copying into this buffer.
    static let coalesceLimit = 256 * 1024
    /// Gathered bytes are sent once a later write finds them older than this, so a
    /// slow producer's data is not held back for long.
    static let coalesceDelay: Duration = .milliseconds(20)
    private var coalescedCount = 0
    private var coalescedSince = ContinuousClock.now

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard active else { throw HTTPConnectionError.misuse("response written after the handler returned") }
        guard headWritten else { throw HTTPConnectionError.misuse("body written before the head") }
        guard !finished else { throw HTTPConnectionError.misuse("body written after finish") }
        if broken { throw HTTPConnectionError.closed }
        if bytes.isEmpty { return }
        var completesBody = false
        switch mode {
        case .noBody:
            return
        case .length(let remaining):
            guard Int64(bytes.count) <= remaining else {
                broken = true
                throw HTTPConnectionError.misuse("response body longer than its Content-Length")
            }
            mode = .length(remaining: remaining - Int64(bytes.count))
            completesBody = Int64(bytes.count) == remaining
        case .closeDelimited, .chunked:
            break
        }
        // The first body bytes go out at once with the head, so a client's first byte does not wait
        // for a whole gathered write (a relayed body arrives in pieces of whatever libcurl has read).
        let first = bytesOut == 0
        bytesOut += Int64(bytes.count)
        let limit = Self.coalesceLimit
        if first || completesBody || bytes.count >= limit / 4 {
            // Pieces of 64 KiB and more (a decrypted chunk) or final ones go out at once,
            // together with whatever was gathered.
            try sendBody(bytes)
            return
        }
        if coalescedCount + bytes.count > limit { try flushCoalesced() }
        append(bytes)
        if coalescedCount == limit || ContinuousClock.now - coalescedSince > Self.coalesceDelay {
            try flushCoalesced()
        }
    }

    private func append(_ bytes: UnsafeRawBufferPointer) {
        assert(!headPending, "the head shares the coalescing buffer: nothing is gathered before it is sent")
        let buffer = connection.coalescingBuffer
        if coalescedCount == 0 { coalescedSince = .now }
        UnsafeMutableRawBufferPointer(rebasing: buffer[coalescedCount..<(coalescedCount + bytes.count)])
            .copyMemory(from: bytes)
        coalescedCount += bytes.count
    }

    /// Sends the gathered bytes (if any) followed by `bytes` as body data, in one system call.
    private func sendBody(_ bytes: UnsafeRawBufferPointer) throws {
        let gathered = UnsafeRawBufferPointer(rebasing: connection.coalescingBuffer[0..<coalescedCount])
        coalescedCount = 0
        let total = gathered.count + bytes.count
        guard total > 0 else { return }
        let head = takeHead()
        switch mode {
        case .chunked:
            let prefixCount = HTTPReasonPhrase.chunkPrefix(total, into: &chunkPrefix)
            try chunkPrefix.withUnsafeBytes { p in
                try HTTPReasonPhrase.crlf.withUnsafeBytes { crlf in
                    try send(head: head, UnsafeRawBufferPointer(rebasing: p[0..<prefixCount]), gathered, bytes, crlf)
                }
            }
        default:
            try send(head: head, gathered, bytes)
        }
    }

    /// Sends gathered bytes of a response that will not be finished (the connection closes next).
    func flushGathered() throws { try flushCoalesced() }

    private func flushCoalesced() throws {
        guard coalescedCount > 0 else { return }
        try sendBody(UnsafeRawBufferPointer(start: nil, count: 0))
    }

    func finish() throws {
        guard active else { throw HTTPConnectionError.misuse("response finished after the handler returned") }
        guard headWritten else { throw HTTPConnectionError.misuse("finish before the head") }
        if finished { return }
        if broken { throw HTTPConnectionError.closed }
        try flushCoalesced()
        switch mode {
        case .length(let remaining) where remaining > 0:
            // A short body must never look complete: the connection will be closed.
            broken = true
            throw HTTPConnectionError.misuse("response body shorter than its Content-Length by \(remaining) bytes")
        case .chunked:
            let head = takeHead()
            try HTTPReasonPhrase.lastChunk.withUnsafeBytes { try send(head: head, $0) }
        default:
            try flushPendingHead()
        }
        finished = true
    }

    /// Whether the head goes out with the next send (it then no longer waits).
    private func takeHead() -> Bool {
        defer { headPending = false }
        return headPending
    }

    /// Sends the head (if `head`) and up to four pieces in one gathered write; empty pieces are skipped.
    private func send(head: Bool, _ a: UnsafeRawBufferPointer = .init(start: nil, count: 0),
                      _ b: UnsafeRawBufferPointer = .init(start: nil, count: 0),
                      _ c: UnsafeRawBufferPointer = .init(start: nil, count: 0),
                      _ d: UnsafeRawBufferPointer = .init(start: nil, count: 0)) throws {
        func write(_ h: UnsafeRawBufferPointer) throws(SocketIOError) {
            var parts = (h, a, b, c, d)
            try withUnsafeBytes(of: &parts) { raw throws(SocketIOError) in
                try connection.socket.writeAll(
                    gathering: raw.bindMemory(to: UnsafeRawBufferPointer.self), idle: connection.config.bodyIdleTimeout)
            }
        }
        do {
            if head {
                if headCount > 0 {
                    try write(UnsafeRawBufferPointer(rebasing: connection.coalescingBuffer[0..<headCount]))
                } else {
                    try ownHead.withUnsafeBytes { h in try write(h) }
                }
            } else {
                try write(UnsafeRawBufferPointer(start: nil, count: 0))
            }
        } catch let e as SocketIOError {
            broken = true
            throw HTTPConnectionError(e)
        }
    }
}

enum HTTPReasonPhrase {
    static let crlf: [UInt8] = [0x0D, 0x0A]
    static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    /// Writes "<hex size>\r\n" into `out`; returns its length.
    static func chunkPrefix(_ size: Int, into out: inout [UInt8]) -> Int {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var n = size, len = 0
        var tmp = [UInt8](repeating: 0, count: 16)
        repeat {
            tmp[len] = digits[n & 15]
            n >>= 4
            len += 1
        } while n > 0
        for i in 0..<len { out[i] = tmp[len - 1 - i] }
        out[len] = 0x0D
        out[len + 1] = 0x0A
        return len + 2
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 416: return "Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }
}
