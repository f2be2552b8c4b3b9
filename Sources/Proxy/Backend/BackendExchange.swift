import Foundation
import Shared

/// Lower-level backend calls for handlers that transform what they forward: the response goes to a
/// caller-supplied handler (or is buffered) instead of being relayed to the client unchanged.
extension BackendClient {
    /// Sends `request` and hands the response to `handler`. Errors are mapped like `forward`'s:
    /// `unavailable` when nothing was written to the client yet, `aborted` after `headWritten()`.
    func exchange(_ request: BackendRequest, handler: HTTPResponseHandler, headWritten: () -> Bool,
                  status: () -> Int) throws(BackendFailure) {
        let outgoing = outgoingRequest(request)
        do {
            try http.execute(outgoing, handler: HealthRecorder(inner: handler, health: health))
        } catch {
            throw Self.mapFailure(error, headWritten: headWritten(), status: status())
        }
    }

    /// Sends `request` and buffers the whole answer (metadata requests, listings, copy results).
    func fetch(_ request: BackendRequest, maxBodySize: Int = 16 << 20) throws(BackendFailure) -> HTTPClientResponse {
        do {
            let answer = try http.execute(outgoingRequest(request), maxBodySize: maxBodySize)
            health.recordAnswer()
            return answer
        } catch {
            throw Self.mapFailure(error, headWritten: false, status: 0)
        }
    }

    private func outgoingRequest(_ request: BackendRequest) -> HTTPClientRequest {
        let (url, headers) = prepare(method: request.method, bucket: request.bucket, key: request.key, query: request.query,
                                     headers: Self.forwardableRequestHeaders(request.headers), payloadHash: request.payloadHash,
                                     signing: request.signing)
        var outgoing = HTTPClientRequest(method: request.method, url: url, headers: headers)
        switch request.body {
        case .none: outgoing.body = .none
        case .bytes(let bytes): outgoing.body = .bytes(bytes)
        case .stream(let source, let length): outgoing.body = .stream(length: length, read: { try source.read(into: $0) })
        }
        return outgoing
    }

    static func mapFailure(_ error: HTTPClientError, headWritten: Bool, status: Int) -> BackendFailure {
        switch error {
        case .bodySource(let inner) where !headWritten:
            return .requestBody(inner)
        case .handler(let inner as BackendFailure):
            return inner
        case .handler(let inner as S3Error) where !headWritten:
            return .requestBody(inner)
        case .handler(let inner):
            return headWritten ? .aborted("writing the response: \(inner)", status: status, backendFault: false)
                : .requestBody(inner)
        case .bodySource(let inner):
            return .aborted("reading the request body: \(inner)", status: status, backendFault: false)
        case .cancelled:
            return .aborted("cancelled", status: status, backendFault: false)
        case .connect, .timeout, .tls, .transport, .responseTooLarge:
            return headWritten ? .aborted(error.description, status: status, backendFault: true) : .unavailable(error.description)
        }
    }
}

/// Marks the backend healthy on any answer, then delegates.
private final class HealthRecorder: HTTPResponseHandler {
    let inner: HTTPResponseHandler
    let health: BackendHealth
    init(inner: HTTPResponseHandler, health: BackendHealth) {
        self.inner = inner
        self.health = health
    }
    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        health.recordAnswer()
        try inner.responseHead(status: status, headers: headers)
    }
    func responseBody(_ bytes: UnsafeRawBufferPointer) throws { try inner.responseBody(bytes) }
}

/// Relays a backend response to the client after `transform` edits its status and headers
/// (and may refuse it by throwing before anything is written).
final class TransformingRelay: HTTPResponseHandler {
    let writer: ResponseWriter
    let transform: (Int, inout HTTPFields, inout Int64?) throws -> Int
    private(set) var status = 0
    private(set) var bytesOut: Int64 = 0

    init(writer: ResponseWriter, transform: @escaping (Int, inout HTTPFields, inout Int64?) throws -> Int) {
        self.writer = writer
        self.transform = transform
    }

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        var fields = BackendClient.forwardableResponseHeaders(headers)
        var length = headers.first { $0.name.lowercased() == "content-length" }
            .flatMap { Int64($0.value.trimmingCharacters(in: .whitespaces)) }
        let newStatus = try transform(status, &fields, &length)
        self.status = newStatus
        try writer.writeHead(HTTPResponseHead(status: newStatus, headers: fields, contentLength: length))
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        try writer.write(bytes)
        bytesOut += Int64(bytes.count)
    }

    /// Sends `request` through `backend` into this relay and finishes the client response.
    func run(_ request: BackendRequest, backend: BackendClient) throws(BackendFailure) -> BackendResult {
        try backend.exchange(request, handler: self, headWritten: { writer.headWritten }, status: { status })
        do {
            try writer.finish()
        } catch {
            throw BackendFailure.aborted("finishing the response: \(error)", status: status, backendFault: false)
        }
        return BackendResult(status: status, bytesOut: bytesOut)
    }
}
