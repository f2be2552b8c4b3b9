import CCurl
import Foundation
import Synchronization

/// TLS and timeout settings shared by every request of one `HTTPClient`.
public struct HTTPClientConfiguration: Sendable {
    /// CA bundle file; nil means the system bundle.
    public var caFile: String?
    /// CA certificates as PEM bytes (kubeconfig `certificate-authority-data`).
    public var caPEM: [UInt8]?
    /// Client certificate and key as PEM bytes (mutual TLS).
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    /// Skips certificate verification. Only for test backends; never the default.
    public var insecureSkipVerify: Bool = false
    public var connectTimeout: Duration = .seconds(10)
    /// Aborts a transfer that moves no byte for this long. A slow but
    /// progressing transfer is never cut (database restores take hours).
    public var idleTimeout: Duration = .seconds(60)
    /// Easy handles kept for reuse; each keeps its own connections alive.
    public var maxPooledHandles: Int = 64
    /// Outgoing proxies: by default the process's `http_proxy`/`https_proxy`/`all_proxy`/`no_proxy` variables,
    /// chosen as libcurl chooses them (read once).
    public var proxies: ProxyEnvironment = .process

    public init() {}
}

/// Where a request body comes from.
public enum HTTPRequestBodySource {
    case none
    case bytes([UInt8])
    /// Pulled on the calling thread: fill the buffer, return 0 at the end, throw to
    /// abort the transfer (the peer then never sees a complete body).
    case stream(length: Int64?, read: (UnsafeMutableRawBufferPointer) throws -> Int)

    /// Whether the body can be sent a second time.
    var isReplayable: Bool {
        if case .stream = self { return false }
        return true
    }
}

/// One outgoing request.
public struct HTTPClientRequest {
    public var method: String
    /// Fully encoded URL.
    public var url: String
    /// Sent as given; libcurl adds `Host` and, for bodies, `Content-Length`.
    public var headers: [(name: String, value: String)]
    public var body: HTTPRequestBodySource
    /// nil: no total deadline (long watches and downloads); the idle timeout still applies.
    public var totalTimeout: Duration?
    /// Lets another thread abort a long transfer promptly.
    public var cancellation: CancellationToken?

    public init(method: String, url: String, headers: [(name: String, value: String)] = [],
                body: HTTPRequestBodySource = .none) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// Receives a streamed response on the calling thread. Throwing aborts the transfer.
public protocol HTTPResponseHandler: AnyObject {
    /// The final (non-1xx) status and headers, before any body byte.
    func responseHead(status: Int, headers: [(name: String, value: String)]) throws
    func responseBody(_ bytes: UnsafeRawBufferPointer) throws
}

/// A buffered response.
public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// First value of `name`, compared case-insensitively.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }
}

/// Why a request failed before a complete response was received.
public enum HTTPClientError: Error, Sendable, CustomStringConvertible {
    /// DNS failure, connection refused, host unreachable.
    case connect(String)
    /// Connect timeout, idle timeout or the request's total timeout.
    case timeout(String)
    /// TLS handshake or certificate verification failure.
    case tls(String)
    case cancelled
    /// The `.stream` body source threw.
    case bodySource(any Error)
    /// The response handler threw.
    case handler(any Error)
    case responseTooLarge(limit: Int)
    /// Anything else libcurl reported, e.g. a connection reset mid-transfer.
    case transport(code: Int, message: String)

    public var description: String {
        switch self {
        case .connect(let m): return "cannot connect: \(m)"
        case .timeout(let m): return "timed out: \(m)"
        case .tls(let m): return "TLS failure: \(m)"
        case .cancelled: return "cancelled"
        case .bodySource(let e): return "request body failed: \(e)"
        case .handler(let e): return "response handling failed: \(e)"
        case .responseTooLarge(let limit): return "response larger than \(limit) bytes"
        case .transport(let code, let m): return "transfer failed (curl \(code)): \(m)"
        }
    }
}

/// A flag another thread sets to abort transfers that carry it.
public final class CancellationToken: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func cancel() { flag.store(true, ordering: .releasing) }
    public var isCancelled: Bool { flag.load(ordering: .acquiring) }
}

/// An HTTP/1.1 client over libcurl. Thread-safe: every call borrows an easy handle, so connections to the
/// same host are reused across calls. A thread keeps the handle it used last for each client (no lock on
/// the way in or out: a server's worker threads each reuse their own handle and backend connection); the
/// handles of calls nested on one thread go to a shared pool of at most `maxPooledHandles`. A thread's
/// handles are freed when the thread ends.
public final class HTTPClient: Sendable {
    /// libcurl's receive buffer per transfer (`CURLOPT_BUFFERSIZE`); with `sendBufferSize`, what each
    /// connection handle holds besides the bytes it moves.
    public static let receiveBufferSize = 512 * 1024
    /// libcurl's upload buffer per transfer (`CURLOPT_UPLOAD_BUFFERSIZE`).
    public static let sendBufferSize = 256 * 1024

    private let configuration: HTTPClientConfiguration
    private let pool: Mutex<[CurlEasy]>
    /// Tells this client's handles apart in the threads' caches (never reused, unlike an object address).
    private let id: UInt64
    private static let nextID = Atomic<UInt64>(1)

    private static let globalInit: Void = {
        let code = ccurl_global_init()
        precondition(code == CURLE_OK, "curl_global_init failed: \(code)")
    }()

    public init(configuration: HTTPClientConfiguration = .init()) {
        _ = HTTPClient.globalInit
        self.configuration = configuration
        self.pool = Mutex([])
        self.id = Self.nextID.add(1, ordering: .relaxed).oldValue
    }

    /// Streams the response into `handler`; blocks for the whole transfer.
    public func execute(_ request: HTTPClientRequest, handler: HTTPResponseHandler) throws(HTTPClientError) {
        var attempt = 0
        while true {
            attempt += 1
            let easy = checkout()
            let state = TransferState(handler: handler, body: request.body, cancellation: request.cancellation,
                                      names: easy.headerNames, errorBuffer: easy.errorBuffer)
            let result = easy.perform(request, configuration: configuration, state: state, freshConnection: attempt > 1)
            // Read before the handle goes back: the error text is in the handle's buffer.
            let failure = state.failure(for: result)
            // A handle whose transfer failed may hold a broken connection; curl
            // discards those itself, so the handle can go back to the pool.
            checkin(easy)
            guard let error = failure else { return }
            // A kept-alive connection the server closed or left dirty fails before any
            // answer arrives; a request whose body can be sent again gets one more try on
            // a new connection. A streamed body is gone, so that failure is final.
            if attempt == 1, !state.headDelivered, request.body.isReplayable, Self.isStaleConnection(result) { continue }
            throw error
        }
    }

    private static func isStaleConnection(_ code: CURLcode) -> Bool {
        code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_WEIRD_SERVER_REPLY || code == CURLE_GOT_NOTHING
            || code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR
    }

    /// Buffers the whole response body, refusing more than `maxBodySize` bytes.
    public func execute(_ request: HTTPClientRequest, maxBodySize: Int = 16 << 20) throws(HTTPClientError) -> HTTPClientResponse {
        let collector = BufferingHandler(limit: maxBodySize)
        do {
            try execute(request, handler: collector)
        } catch .handler(let error) where error is BufferingHandler.TooLarge {
            throw .responseTooLarge(limit: maxBodySize)
        }
        return HTTPClientResponse(status: collector.status, headers: collector.headers, body: collector.body)
    }

    private func checkout() -> CurlEasy {
        if let easy = ThreadHandles.current.take(client: id) { return easy }
        if let easy = pool.withLock({ $0.popLast() }) { return easy }
        return CurlEasy()
    }

    private func checkin(_ easy: CurlEasy) {
        if ThreadHandles.current.keep(easy, client: id) { return }
        let keep = pool.withLock { handles -> Bool in
            guard handles.count < configuration.maxPooledHandles else { return false }
            handles.append(easy)
            return true
        }
        _ = keep  // a handle not kept is freed by its deinit
    }
}

/// The calling thread's idle handles, one per client (the few clients a thread uses: backend, key manager,
/// tracing). Only its own thread touches it; released with the thread.
private final class ThreadHandles {
    private static let limit = 4
    /// Unchecked exclusivity: only its own thread uses it, and each access is one search, remove or append with no
    /// call out in between (the dynamic checks were ≈ 300 instructions per backend request; issue 12).
    @exclusivity(unchecked) private var entries: [(client: UInt64, easy: CurlEasy)] = []

    func take(client: UInt64) -> CurlEasy? {
        guard let i = entries.firstIndex(where: { $0.client == client }) else { return nil }
        return entries.remove(at: i).easy
    }

    /// False when the thread already keeps one for `client` (a nested call's handle).
    func keep(_ easy: CurlEasy, client: UInt64) -> Bool {
        if entries.contains(where: { $0.client == client }) { return false }
        if entries.count >= Self.limit { entries.removeFirst() }  // the least recently returned goes
        entries.append((client, easy))
        return true
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<ThreadHandles>.fromOpaque(pointer).release() }
        }
        precondition(rc == 0, "pthread_key_create failed")
        return key
    }()

    static var current: ThreadHandles {
        if let raw = pthread_getspecific(key) { return Unmanaged<ThreadHandles>.fromOpaque(raw).takeUnretainedValue() }
        let made = ThreadHandles()
        pthread_setspecific(key, Unmanaged.passRetained(made).toOpaque())
        return made
    }
}

/// Collects a response in memory for `execute(_:maxBodySize:)`.
private final class BufferingHandler: HTTPResponseHandler {
    struct TooLarge: Error {}
    let limit: Int
    var status = 0
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        self.status = status
        self.headers = headers
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        guard body.count + bytes.count <= limit else { throw TooLarge() }
        body.append(contentsOf: bytes)
    }
}

/// Per-transfer state the C callbacks reach through their userdata pointer.
/// One line of a response head, parsed byte-wise (one String per name and value, no whole-line copies).
enum ResponseHeaderLine: Equatable {
    /// `HTTP/x status reason`; 0 when the status is not three digits.
    case status(Int)
    case field(name: String, value: String)
    /// The empty line that ends a head.
    case end
    /// A line without a colon (obsolete folding or garbage): dropped.
    case ignored

    /// `names`: where a name long enough to need its own allocation is looked up first (nil: always made anew).
    init(_ line: UnsafeRawBufferPointer, names: HeaderNameCache? = nil) {
        var end = line.count
        while end > 0, line[end - 1] == UInt8(ascii: "\n") || line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        if end == 0 {
            self = .end
            return
        }
        if end >= 5, line[0] == UInt8(ascii: "H"), line[1] == UInt8(ascii: "T"), line[2] == UInt8(ascii: "T"),
           line[3] == UInt8(ascii: "P"), line[4] == UInt8(ascii: "/") {
            var i = 5
            while i < end, line[i] != UInt8(ascii: " ") { i += 1 }
            while i < end, line[i] == UInt8(ascii: " ") { i += 1 }
            var status = 0, digits = 0
            while i < end, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(line[i]) {
                status = status * 10 + Int(line[i] - UInt8(ascii: "0"))
                digits += 1
                i += 1
            }
            self = .status(digits == 3 ? status : 0)
            return
        }
        // memchr, not `firstIndex(of:)` on a slice: this runs for every header line of every backend answer
        // (about 20 on an encrypted object's).
        guard let base = line.baseAddress, let found = memchr(base, Int32(UInt8(ascii: ":")), end) else {
            self = .ignored
            return
        }
        let colon = UnsafeRawPointer(found) - base
        func isSpace(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }
        var valueStart = colon + 1
        while valueStart < end, isSpace(line[valueStart]) { valueStart += 1 }
        var valueEnd = end
        while valueEnd > valueStart, isSpace(line[valueEnd - 1]) { valueEnd -= 1 }
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        self = .field(name: names?.name(name) ?? String(decoding: name, as: UTF8.self),
                      value: String(decoding: UnsafeRawBufferPointer(rebasing: line[valueStart..<valueEnd]), as: UTF8.self))
    }
}

/// The header names a handle's recent answers carried, kept to be reused: a name of more than 15 bytes is a
/// String allocation (and a free) per header per answer otherwise, and a backend's answers repeat the same
/// names — an encrypted object's dozen `x-amz-meta-s3eg-*` among them (issue 12). A name is reused only when its
/// bytes are exactly the line's (case included); anything else is made anew and kept. Fixed size (128 buckets of
/// two); one per libcurl handle, so one thread at a time uses it.
final class HeaderNameCache {
    static let buckets = 128
    /// Names up to this long are kept; longer ones are not worth the comparison.
    static let maxLength = 64
    /// `2 * buckets` slots, bucket `b` in `2b` and `2b + 1`.
    private let slots: UnsafeMutablePointer<String?>

    init() {
        slots = .allocate(capacity: 2 * Self.buckets)
        slots.initialize(repeating: nil, count: 2 * Self.buckets)
    }

    deinit {
        slots.deinitialize(count: 2 * Self.buckets)
        slots.deallocate()
    }

    /// The name spelled by `bytes`: a kept String with exactly those bytes, or a new one (kept from now on).
    func name(_ bytes: UnsafeRawBufferPointer) -> String {
        // Up to 15 UTF-8 bytes a String is stored inline: nothing to save.
        guard bytes.count > 15, bytes.count <= Self.maxLength, let base = bytes.baseAddress else {
            return String(decoding: bytes, as: UTF8.self)
        }
        // The bucket comes from every byte, eight at a time (the last word overlaps the one before), mixed so that its
        // top bits depend on all of them; a collision only costs a miss, since a kept name is reused only after
        // comparing all its bytes.
        var x = UInt64(bytes.count)
        var offset = 0
        while true {
            let at = min(offset, bytes.count - 8)
            x = (x ^ (base + at).loadUnaligned(as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            x ^= x >> 29
            if at == bytes.count - 8 { break }
            offset += 8
        }
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        let first = slots + 2 * Int(x >> 57)  // the top 7 bits: one of 128 buckets
        if let kept = first.pointee, Self.same(kept, bytes) { return kept }
        if let kept = first[1], Self.same(kept, bytes) { return kept }
        let made = String(decoding: bytes, as: UTF8.self)
        // The first slot keeps the name that came first; later ones share the second.
        if first.pointee == nil { first.pointee = made } else { first[1] = made }
        return made
    }

    private static func same(_ kept: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        kept.utf8.count == bytes.count && kept.utf8.withContiguousStorageIfAvailable {
            memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0
        } == true
    }
}

private final class TransferState {
    let handler: HTTPResponseHandler
    let body: HTTPRequestBodySource
    let cancellation: CancellationToken?
    var bytesOffset = 0
    var pendingStatus = 0
    /// Unchecked exclusivity: a transfer's state is used by the thread running it, and no access to it overlaps
    /// another (appends, a reset, and a read to hand the head over); the dynamic check cost ≈ 80 instructions
    /// per response header line (issue 12).
    @exclusivity(unchecked) var pendingHeaders: [(name: String, value: String)] = []
    var headDelivered = false
    var handlerError: (any Error)?
    var bodyError: (any Error)?
    /// The answer was 407: a proxy on the way refused the request (`deliverHead`).
    var proxyRefused = false
    /// libcurl writes its detailed error text here; the handle's, cleared for this transfer.
    let errorBuffer: UnsafeMutablePointer<CChar>

    /// The handle's kept header names.
    let names: HeaderNameCache?

    init(handler: HTTPResponseHandler, body: HTTPRequestBodySource, cancellation: CancellationToken?,
         names: HeaderNameCache? = nil, errorBuffer: UnsafeMutablePointer<CChar>) {
        self.names = names
        self.handler = handler
        self.body = body
        self.cancellation = cancellation
        self.errorBuffer = errorBuffer
        errorBuffer[0] = 0
    }

    /// Takes one raw header line as libcurl hands it over (status lines included).
    func headerLine(_ line: UnsafeRawBufferPointer) -> Bool {
        switch ResponseHeaderLine(line, names: names) {
        case .status(let status):
            // A new header block: 100 Continue, a redirect we don't follow, or the final one.
            pendingStatus = status
            pendingHeaders = []
            // One allocation for a typical head (an encrypted object's has about 20 fields), not one per doubling.
            pendingHeaders.reserveCapacity(24)
        case .field(let name, let value):
            pendingHeaders.append((name: name, value: value))
        case .end:
            if pendingStatus >= 200 { return deliverHead() }
        case .ignored:
            break
        }
        return true
    }

    func deliverHead() -> Bool {
        guard !headDelivered else { return true }
        headDelivered = true
        // Only a proxy answers 407 (RFC 9110 §15.5.8): the one in http_proxy/https_proxy, or one intercepting the
        // traffic. It is not the server's answer, so it never reaches the handler: the transfer fails as a
        // connection failure would, which is also what libcurl reports when a proxy refuses an https tunnel.
        if pendingStatus == 407 {
            proxyRefused = true
            return false
        }
        do {
            try handler.responseHead(status: pendingStatus, headers: pendingHeaders)
            return true
        } catch {
            handlerError = error
            return false
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !headDelivered, !deliverHead() { return false }
        do {
            try handler.responseBody(bytes)
            return true
        } catch {
            handlerError = error
            return false
        }
    }

    /// Fills libcurl's upload buffer; returns nil to abort.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        switch body {
        case .none:
            return 0
        case .bytes(let bytes):
            let n = min(buffer.count, bytes.count - bytesOffset)
            if n > 0 {
                bytes.withUnsafeBytes { src in
                    buffer.baseAddress!.copyMemory(from: src.baseAddress! + bytesOffset, byteCount: n)
                }
                bytesOffset += n
            }
            return n
        case .stream(_, let read):
            do {
                return try read(buffer)
            } catch {
                bodyError = error
                return nil
            }
        }
    }

    func failure(for code: CURLcode) -> HTTPClientError? {
        if proxyRefused {
            return .connect("a proxy refused the request with 407 Proxy Authentication Required: give its user and "
                            + "password in the proxy URL (http_proxy, https_proxy)")
        }
        if let bodyError { return .bodySource(bodyError) }
        if let handlerError { return .handler(handlerError) }
        if code == CURLE_OK {
            // A response without a body (HEAD, 204) still has a head to deliver.
            if !headDelivered, !deliverHead(), let handlerError { return .handler(handlerError) }
            return nil
        }
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        switch code {
        case CURLE_ABORTED_BY_CALLBACK where cancellation?.isCancelled == true:
            return .cancelled
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            return .connect(message)
        case CURLE_OPERATION_TIMEDOUT:
            return .timeout(message)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
             CURLE_SSL_CIPHER, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_CRL_BADFILE:
            return .tls(message)
        default:
            return .transport(code: Int(code.rawValue), message: message)
        }
    }
}

extension ProxyEnvironment {
    /// This process's proxy variables, read once (with `getenv`, as `curl_getenv` reads them).
    public static let process = ProxyEnvironment { name in
        guard let raw = getenv(name) else { return nil }
        return String(cString: raw)
    }
}

/// Owns one libcurl easy handle. Unchecked Sendable: a handle is used by one
/// thread at a time, handed over only through the pool's mutex.
private final class CurlEasy: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    /// The multi handle this handle's transfers run on, and so where its kept-alive connections wait between
    /// transfers (what `curl_easy_perform` keeps inside the easy handle; see `run`).
    private let multi: UnsafeMutableRawPointer
    /// Header names of this handle's answers (used by the thread that has the handle).
    let headerNames = HeaderNameCache()
    /// libcurl's detailed error text of the current transfer (one buffer per handle, not one per transfer).
    let errorBuffer: UnsafeMutablePointer<CChar>
    /// The request's header lines (used by the thread that has the handle).
    private let headerList = CurlHeaderList()

    init() {
        guard let handle = curl_easy_init(), let multi = curl_multi_init() else {
            fatalError("curl_easy_init/curl_multi_init failed: out of memory")
        }
        self.handle = handle
        self.multi = multi
        // curl_easy_perform copies the easy handle's default (5) onto its own multi handle; a plain multi handle
        // would keep 4 per attached handle.
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 5)
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        // Closes the kept-alive connections; the easy handle is not attached between transfers.
        curl_multi_cleanup(multi)
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Runs the transfer set up on `handle` to its end: `curl_easy_perform`'s loop (7.88, lib/easy.c
    /// `easy_transfer`) without its first step, a `curl_multi_poll` before anything was started, which only
    /// returns at once (the new transfer is due now) after a poll() system call of its own. Here the transfer is
    /// driven first and waited for only while it runs: one poll() fewer per backend request (issue 12). Waiting
    /// is the same `curl_multi_poll` (it sleeps for curl's own timeouts when there is no socket to wait on).
    private func run() -> CURLcode {
        let added = curl_multi_add_handle(multi, handle)
        guard added == CURLM_OK else { return added == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT }
        defer { _ = curl_multi_remove_handle(multi, handle) }
        while true {
            var running: Int32 = 0
            var mcode = curl_multi_perform(multi, &running)
            if mcode == CURLM_OK, running == 0 {
                var queued: Int32 = 0
                if let message = curl_multi_info_read(multi, &queued), message.pointee.msg == CURLMSG_DONE {
                    return message.pointee.data.result
                }
            }
            if mcode == CURLM_OK { mcode = curl_multi_poll(multi, nil, 0, 1000, nil) }
            // As curl_easy_perform: a multi failure is reported as some transfer error.
            if mcode != CURLM_OK { return mcode == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_BAD_FUNCTION_ARGUMENT }
        }
    }

    func perform(_ request: HTTPClientRequest, configuration: HTTPClientConfiguration,
                 state: TransferState, freshConnection: Bool) -> CURLcode {
        curl_easy_reset(handle)
        headerList.reset()

        let h = handle
        func set(_ option: CURLoption, _ value: Int) { _ = ccurl_setopt_long(h, option, value) }

        // Strings go to libcurl (which copies them) through `withCString`: passing a String as a `char *` argument
        // copies a small one (up to 15 bytes: the empty "no proxy" values on every request) to the heap first.
        func set(_ option: CURLoption, _ value: String) { _ = value.withCString { ccurl_setopt_str(h, option, $0) } }

        set(CURLOPT_URL, request.url)
        if let proxy = configuration.proxies.choice(forURL: request.url) {
            // The environment's choice, read once (ProxyEnvironment): libcurl would otherwise read five or six
            // variables per transfer. It still matches the exclusion list against the request's host.
            set(CURLOPT_PROXY, proxy.proxy)
            set(CURLOPT_NOPROXY, proxy.noProxy)
        }
        set(CURLOPT_NOSIGNAL, 1)
        if freshConnection { set(CURLOPT_FRESH_CONNECT, 1) }
        set(CURLOPT_FOLLOWLOCATION, 0)
        // Object keys may contain "./", "../" and "//": send the path exactly as signed.
        set(CURLOPT_PATH_AS_IS, 1)
        set(CURLOPT_TCP_NODELAY, 1)
        set(CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout.milliseconds))
        // Idle timeout: abort when fewer than 1 byte/s moves for the whole window.
        set(CURLOPT_LOW_SPEED_LIMIT, 1)
        set(CURLOPT_LOW_SPEED_TIME, max(1, Int(configuration.idleTimeout.milliseconds / 1000)))
        if let total = request.totalTimeout { set(CURLOPT_TIMEOUT_MS, Int(total.milliseconds)) }
        // libcurl's largest receive buffer (7.88): a large download arrives in half as many recv()s and write
        // callbacks, and the kernel sends fewer window-update ACKs to the backend — 0.04–0.14 s/GiB less gateway CPU
        // on large GETs, pass-through and encrypted alike (issue 12). Costs 512 KiB per easy handle.
        set(CURLOPT_BUFFERSIZE, HTTPClient.receiveBufferSize)
        set(CURLOPT_UPLOAD_BUFFERSIZE, HTTPClient.sendBufferSize)

        // TLS
        if configuration.insecureSkipVerify {
            set(CURLOPT_SSL_VERIFYPEER, 0)
            set(CURLOPT_SSL_VERIFYHOST, 0)
        }
        if let caFile = configuration.caFile { _ = ccurl_setopt_str(h, CURLOPT_CAINFO, caFile) }
        withBlob(configuration.caPEM) { _ = ccurl_setopt_blob(h, CURLOPT_CAINFO_BLOB, $0) }
        withBlob(configuration.clientCertificatePEM) {
            _ = ccurl_setopt_str(h, CURLOPT_SSLCERTTYPE, "PEM")
            _ = ccurl_setopt_blob(h, CURLOPT_SSLCERT_BLOB, $0)
        }
        withBlob(configuration.clientKeyPEM) {
            _ = ccurl_setopt_str(h, CURLOPT_SSLKEYTYPE, "PEM")
            _ = ccurl_setopt_blob(h, CURLOPT_SSLKEY_BLOB, $0)
        }

        // Method and body
        let method = request.method.uppercased()
        var hasBody = false
        switch request.body {
        case .none: break
        case .bytes(let bytes):
            hasBody = true
            set(CURLOPT_UPLOAD, 1)
            _ = ccurl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(bytes.count))
        case .stream(let length, _):
            hasBody = true
            set(CURLOPT_UPLOAD, 1)
            if let length { _ = ccurl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(length)) }
        }
        // libcurl adds `Expect: 100-continue` only to uploads (lib/http.c `expect100`).
        let uploads = hasBody || method == "PUT" || method == "POST"
        if method == "HEAD" {
            set(CURLOPT_NOBODY, 1)
        } else if method == "GET" && !hasBody {
            set(CURLOPT_HTTPGET, 1)
        }
        if !(method == "GET" && !hasBody) && !(method == "PUT" && hasBody) && method != "HEAD" {
            set(CURLOPT_CUSTOMREQUEST, method)
        }
        if !hasBody && (method == "PUT" || method == "POST") {
            // An empty body still needs its Content-Length: 0.
            set(CURLOPT_UPLOAD, 1)
            _ = ccurl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, 0)
            if method == "POST" { _ = ccurl_setopt_str(h, CURLOPT_CUSTOMREQUEST, "POST") }
        }

        // Headers: suppress what curl would add on its own.
        var sendsExpect = false, sendsAccept = false
        for (name, value) in request.headers {
            if name.utf8.count == 6 {
                if name.caseInsensitiveEquals("expect") { sendsExpect = true }
                if name.caseInsensitiveEquals("accept") { sendsAccept = true }
            }
            headerList.append(name: name, value: value)
        }
        if uploads, !sendsExpect { headerList.append(line: "Expect:") }
        if !sendsAccept { headerList.append(line: "Accept:") }
        _ = ccurl_setopt_slist(h, CURLOPT_HTTPHEADER, headerList.list())

        // Callbacks
        let userdata = Unmanaged.passUnretained(state).toOpaque()
        _ = ccurl_setopt_ptr(h, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(state.errorBuffer))
        _ = ccurl_setopt_header(h, curlHeaderCallback)
        _ = ccurl_setopt_ptr(h, CURLOPT_HEADERDATA, userdata)
        _ = ccurl_setopt_write(h, curlWriteCallback)
        _ = ccurl_setopt_ptr(h, CURLOPT_WRITEDATA, userdata)
        if uploads {
            _ = ccurl_setopt_read(h, curlReadCallback)
            _ = ccurl_setopt_ptr(h, CURLOPT_READDATA, userdata)
        }
        if request.cancellation != nil {
            set(CURLOPT_NOPROGRESS, 0)
            _ = ccurl_setopt_xferinfo(h, curlProgressCallback)
            _ = ccurl_setopt_ptr(h, CURLOPT_XFERINFODATA, userdata)
        }

        let code = run()
        // Detach the per-transfer pointers so a reused handle never sees a stale state.
        _ = ccurl_setopt_ptr(h, CURLOPT_ERRORBUFFER, nil)
        return code
    }

    private func withBlob(_ bytes: [UInt8]?, _ body: (UnsafeMutablePointer<curl_blob>) -> Void) {
        guard var bytes else { return }
        bytes.withUnsafeMutableBytes { raw in
            var blob = curl_blob(data: raw.baseAddress, len: raw.count, flags: UInt32(CURL_BLOB_COPY))
            body(&blob)
        }
    }
}

private func curlHeaderCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                                _ userdata: UnsafeMutableRawPointer?) -> Int {
    let total = size * count
    guard let ptr, let userdata else { return total }
    // The transfer's owner holds the state for the whole transfer (`perform`'s caller): borrowed here, not retained
    // and released per call (per header line, and per body piece below; issue 12).
    return Unmanaged<TransferState>.fromOpaque(userdata)._withUnsafeGuaranteedRef {
        $0.headerLine(UnsafeRawBufferPointer(start: ptr, count: total))
    } ? total : 0
}

private func curlWriteCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                               _ userdata: UnsafeMutableRawPointer?) -> Int {
    let total = size * count
    guard let ptr, let userdata else { return total }
    // Returning a different count makes libcurl abort with CURLE_WRITE_ERROR.
    return Unmanaged<TransferState>.fromOpaque(userdata)._withUnsafeGuaranteedRef {
        $0.write(UnsafeRawBufferPointer(start: ptr, count: total))
    } ? total : 0
}

private func curlReadCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                              _ userdata: UnsafeMutableRawPointer?) -> Int {
    guard let ptr, let userdata else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    let buffer = UnsafeMutableRawBufferPointer(start: ptr, count: size * count)
    return state.read(into: buffer) ?? CCURL_READFUNC_ABORT
}

private func curlProgressCallback(_ userdata: UnsafeMutableRawPointer?, _: curl_off_t, _: curl_off_t,
                                  _: curl_off_t, _: curl_off_t) -> Int32 {
    guard let userdata else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
    return state.cancellation?.isCancelled == true ? 1 : 0
}

extension Duration {
    /// Whole milliseconds, rounded down, never negative.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
