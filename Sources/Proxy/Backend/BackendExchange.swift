import Foundation
import Shared

/// A request to send to the backend, addressed path-style.
struct BackendRequest {
    var method: String
    var bucket: String?
    var key: String?
    var query: [QueryParameter]
    /// The client's headers (or the gateway's own); hop-by-hop and authentication headers are removed before sending.
    var headers: HTTPFields
    var body: BackendRequestBody
    /// Hex SHA-256 of the body as sent, or `UNSIGNED-PAYLOAD`.
    var payloadHash: String
    /// Whose backend credentials sign it: for a client request always `request.identity.backendSigning`, so that
    /// the backend's per-user permissions apply (`.gateway` for the gateway's own requests, e.g. the offline
    /// commands). No default on purpose: every request states it.
    var signing: BackendSigning

    init(method: String, bucket: String?, key: String?, query: [QueryParameter] = [], headers: HTTPFields = HTTPFields(),
         body: BackendRequestBody = .none, payloadHash: String = SigV4.emptyPayloadHash, signing: BackendSigning) {
        self.signing = signing
        self.method = method
        self.bucket = bucket
        self.key = key
        self.query = query
        self.headers = headers
        self.body = body
        self.payloadHash = payloadHash
    }
}

enum BackendRequestBody {
    case none
    case bytes([UInt8])
    /// Streamed from `source`; `length` becomes the backend's Content-Length (S3 needs one).
    case stream(RequestBody, length: Int64?)
}

/// Receives a backend answer on its way to the client. Beyond `HTTPResponseHandler` it tells the exchange
/// whether the client's response has started, which decides how a failure can still be reported.
protocol BackendResponseHandler: HTTPResponseHandler {
    /// True once anything of the client's response (its head) was written.
    var clientResponseStarted: Bool { get }
    /// The status the client's response carries (0 before one was decided).
    var status: Int { get }
}

/// How an exchange with the backend failed. Every case says what the client has already received, so the
/// caller knows whether it can still answer with an S3 error or must cut the connection.
enum BackendFailure: Error, CustomStringConvertible {
    /// The backend could not be reached or stopped answering (connect, TLS, timeout, broken connection)
    /// before anything went to the client: 503, counted as a backend error.
    case unavailable(String)
    /// The client's request body failed before anything went to the client: a verification error
    /// (`XAmzContentSHA256Mismatch`, `BadDigest`, `IncompleteBody`) or the client went away. The backend
    /// upload was cut short of its Content-Length, so nothing was stored.
    case requestBody(any Error)
    /// The gateway refused the backend's answer before anything went to the client (the object changed
    /// between two requests, the answer carried gateway metadata, the first chunk failed authentication):
    /// answer with this error.
    case refused(S3Error)
    /// The client's response had started when the exchange failed; the connection must be closed so the
    /// client sees a failed transfer. `status` is what the response head said.
    case aborted(String, status: Int, cause: AbortCause)

    enum AbortCause: Sendable, Equatable {
        /// The backend broke off (a backend error in logs and metrics).
        case backend
        /// Writing to the client failed, or the client's body did.
        case client
        /// Ciphertext failed authentication after the response started.
        case integrity
    }

    var description: String {
        switch self {
        case .unavailable(let m): return "backend unavailable: \(m)"
        case .requestBody(let e): return "request body: \(e)"
        case .refused(let e): return "answer refused: \(e)\(e.logDetail.map { " (\($0))" } ?? "")"
        case .aborted(let m, _, let cause): return "transfer aborted (\(cause)): \(m)"
        }
    }

    /// The failure an `HTTPClientError` means, given whether the client's response had started.
    init(_ error: HTTPClientError, clientResponseStarted started: Bool, status: Int) {
        switch error {
        case .handler(let inner as BackendFailure):
            self = inner
        case .handler(let inner as S3Error) where !started:
            self = .refused(inner)
        case .handler(let inner as EncryptionError):
            self = started ? .aborted("\(inner.code.rawValue): \(inner.message)", status: status, cause: .integrity)
                : .refused(S3Error.internalError().withLog("encryption \(inner.code.rawValue): \(inner.message)"))
        case .handler(let inner):
            // Anything else a handler throws comes from writing to the client.
            self = .aborted("writing the response: \(inner)", status: status, cause: .client)
        case .bodySource(let inner) where !started:
            self = .requestBody(inner)
        case .bodySource(let inner):
            self = .aborted("reading the request body: \(inner)", status: status, cause: .client)
        case .cancelled:
            self = .aborted("cancelled", status: status, cause: .client)
        case .responseTooLarge(let limit):
            self = .refused(S3Error.internalError().withLog("the backend's answer exceeds \(limit) bytes"))
        case .connect, .timeout, .tls, .transport:
            self = started ? .aborted(error.description, status: status, cause: .backend) : .unavailable(error.description)
        }
    }
}

/// The result of an exchange whose client response was written completely.
struct BackendResult: Sendable {
    var status: Int
    var bytesOut: Int64
}

/// The one path to the backend: every request (relayed, transformed, buffered, or the offline commands')
/// is signed, sent and mapped to a `BackendFailure` here.
extension BackendClient {
    /// Sends `request` and hands the answer to `handler` as it arrives.
    func exchange(_ request: BackendRequest, into handler: some BackendResponseHandler) throws(BackendFailure) {
        let span = clientSpan(request)
        defer { span.end() }
        let recorder = HealthRecorder(inner: handler, health: health)
        do {
            try http.execute(outgoingRequest(request, span: span), handler: recorder)
            span.setAttribute("http.response.status_code", .int(recorder.status))
        } catch {
            let failure = BackendFailure(error, clientResponseStarted: handler.clientResponseStarted, status: handler.status)
            span.setStatus(.error(failure.description))
            throw failure
        }
    }

    /// Sends `request` and buffers the whole answer (metadata requests, listings, copy results).
    func fetch(_ request: BackendRequest, maxBodySize: Int = 16 << 20) throws(BackendFailure) -> HTTPClientResponse {
        let span = clientSpan(request)
        defer { span.end() }
        do {
            let answer = try http.execute(outgoingRequest(request, span: span), maxBodySize: maxBodySize)
            health.recordAnswer()
            span.setAttribute("http.response.status_code", .int(answer.status))
            return answer
        } catch {
            let failure = BackendFailure(error, clientResponseStarted: false, status: 0)
            span.setStatus(.error(failure.description))
            throw failure
        }
    }

    /// Sends `request` and relays the answer to the client after `screen` (which may edit the status and
    /// headers, or refuse the answer by throwing before anything is written). A backend error document gets
    /// the gateway's `requestID` (one request id per error, in the header and the body).
    func relay(_ request: BackendRequest, to writer: ResponseWriter, requestID: RequestID,
               screen: @escaping (Int, inout HTTPFields) throws -> Int = { status, _ in status }) throws(BackendFailure) -> BackendResult {
        let relay = ClientRelay(writer: writer, requestID: requestID, screen: screen)
        try exchange(request, into: relay)
        do {
            try relay.finish()
        } catch {
            throw BackendFailure(.handler(error), clientResponseStarted: writer.headWritten, status: relay.status)
        }
        do {
            try writer.finish()
        } catch {
            throw BackendFailure.aborted("finishing the response: \(error)", status: relay.status, cause: .client)
        }
        return BackendResult(status: relay.status, bytesOut: relay.bytesOut)
    }

    /// The client span of one backend exchange, a child of the request's span (when there is one).
    private func clientSpan(_ request: BackendRequest) -> Span {
        let span = Span.startChild(request.method, kind: .client)
        // Attributes only for a span that records them: an untraced request would encode its path twice.
        if span.isRecording {
            span.setAttribute("http.request.method", .string(request.method))
            span.setAttribute("server.address", .string(endpoint.hostHeader))
            span.setAttribute("url.path", .string(BackendEndpoint.path(bucket: request.bucket, key: request.key)))
        }
        return span
    }

    /// The client's trace context, replaced by the gateway's span.
    private static let traceHeaders = HeaderNameSet(["traceparent", "tracestate"])

    private func outgoingRequest(_ request: BackendRequest, span: Span) -> HTTPClientRequest {
        // The backend sees the gateway's span as its parent (or, untraced, the client's context unchanged).
        var forwarded = Self.forwardableRequestHeaders(request.headers, reserving: 2)
        forwarded.removeAll { Self.traceHeaders.contains($0.name) }
        if let traceparent = span.traceparent {
            forwarded.append((name: "traceparent", value: traceparent))
            if let state = span.context.traceState { forwarded.append((name: "tracestate", value: state)) }
        }
        let (url, headers) = prepare(method: request.method, bucket: request.bucket, key: request.key, query: request.query,
                                     headers: forwarded, payloadHash: request.payloadHash, signing: request.signing)
        var outgoing = HTTPClientRequest(method: request.method, url: url, headers: headers)
        switch request.body {
        case .none: outgoing.body = .none
        case .bytes(let bytes): outgoing.body = .bytes(bytes)
        case .stream(let source, let length): outgoing.body = .stream(length: length, read: { try source.read(into: $0) })
        }
        return outgoing
    }
}

/// Marks the backend healthy on any answer, then delegates.
private final class HealthRecorder: HTTPResponseHandler {
    let inner: HTTPResponseHandler
    let health: BackendHealth
    private(set) var status = 0
    init(inner: HTTPResponseHandler, health: BackendHealth) {
        self.inner = inner
        self.health = health
    }
    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        health.recordAnswer()
        self.status = status
        try inner.responseHead(status: status, headers: headers)
    }
    func responseBody(_ bytes: UnsafeRawBufferPointer) throws { try inner.responseBody(bytes) }
}

/// Relays a backend answer to the client as it arrives: end-to-end headers only, after `screen`. Error
/// answers (4xx/5xx) are held until complete so their S3 error document can carry the gateway's request id;
/// `finish` writes them.
final class ClientRelay: BackendResponseHandler {
    let writer: ResponseWriter
    let requestID: RequestID
    let screen: (Int, inout HTTPFields) throws -> Int
    private(set) var status = 0
    private(set) var bytesOut: Int64 = 0
    private var heldHead: HTTPResponseHead?
    private var heldBody: [UInt8] = []
    var clientResponseStarted: Bool { writer.headWritten }

    init(writer: ResponseWriter, requestID: RequestID, screen: @escaping (Int, inout HTTPFields) throws -> Int = { status, _ in status }) {
        self.writer = writer
        self.requestID = requestID
        self.screen = screen
    }

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        var fields = BackendClient.forwardableResponseHeaders(headers)
        let length = headers.first { $0.name.caseInsensitiveEquals("content-length") }
            .flatMap { Self.contentLength($0.value) }
        let decided = try screen(status, &fields)
        self.status = decided
        let head = HTTPResponseHead(status: decided, headers: fields, contentLength: length)
        if decided >= 400, let length, length > 0, length <= Int64(S3ErrorBody.maxRewrittenSize) {
            heldHead = head
            return
        }
        try writer.writeHead(head)
    }

    /// A `Content-Length` value: digits, optionally surrounded by spaces or tabs; nil otherwise.
    /// (Read on every answer, so without Foundation's character-set trimming.)
    /// On the UTF-8 bytes: Character-wise trimming and the generic Int64 parse cost ≈ 1.3 k instructions per answer
    /// (issue 12). Any non-ASCII byte is neither blank nor a digit, so the answer is nil as it was.
    static func contentLength(_ value: String) -> Int64? {
        var value = value
        return value.withUTF8 { bytes -> Int64? in
            var low = 0, high = bytes.count
            while low < high, bytes[low] == UInt8(ascii: " ") || bytes[low] == UInt8(ascii: "\t") { low += 1 }
            while high > low, bytes[high - 1] == UInt8(ascii: " ") || bytes[high - 1] == UInt8(ascii: "\t") { high -= 1 }
            guard low < high else { return nil }
            var n: Int64 = 0
            for i in low..<high {
                let digit = bytes[i] &- UInt8(ascii: "0")
                guard digit <= 9 else { return nil }
                let (times10, o1) = n.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int64(digit))
                guard !o1, !o2 else { return nil }
                n = sum
            }
            return n
        }
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        if heldHead != nil {
            heldBody.append(contentsOf: bytes)
            if heldBody.count <= S3ErrorBody.maxRewrittenSize { return }
            try release(rewrite: false)
            return
        }
        try writer.write(bytes)
        bytesOut += Int64(bytes.count)
    }

    /// Writes a held error answer, its request id replaced by the gateway's.
    func finish() throws {
        if heldHead != nil { try release(rewrite: true) }
    }

    private func release(rewrite: Bool) throws {
        guard var head = heldHead else { return }
        heldHead = nil
        var body = heldBody
        heldBody = []
        if rewrite, let rewritten = S3ErrorBody.withRequestID(body, requestID.text) {
            body = rewritten
            head.contentLength = Int64(body.count)
        }
        try writer.writeHead(head)
        if !body.isEmpty { try writer.write(body) }
        bytesOut += Int64(body.count)
    }
}
