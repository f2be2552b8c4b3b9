import Foundation
import Shared

/// `KubeClient` over HTTPS to a real API server, through Shared's libcurl `HTTPClient`.
///
/// Bearer tokens come from a `BearerTokenSource` (re-read every minute, and once more after a 401 before the
/// request is retried). Watches use a second HTTP client whose idle timeout outlives the server's
/// `timeoutSeconds`, and have no total deadline.
final class KubeRESTClient: KubeClient {
    let config: KubeConfig
    let userAgent: String
    /// Total deadline of non-watch requests.
    let requestTimeout: Duration
    private let http: HTTPClient
    private let watchHTTP: HTTPClient
    private let tokens: BearerTokenSource
    private let observer: (any KubeRequestObserver)?

    /// Largest non-watch response body accepted.
    static let maxResponseBytes = 64 << 20

    init(config: KubeConfig, observer: (any KubeRequestObserver)? = nil,
         userAgent: String = "encryption-gateway-operator", requestTimeout: Duration = .seconds(60),
         watchIdleTimeout: Duration = .seconds(15 * 60), tokenRefreshInterval: Duration = .seconds(60)) {
        self.config = config
        self.userAgent = userAgent
        self.requestTimeout = requestTimeout
        self.observer = observer
        var hc = HTTPClientConfiguration()
        hc.caFile = config.caFile
        hc.caPEM = config.caPEM
        hc.clientCertificatePEM = config.clientCertificatePEM
        hc.clientKeyPEM = config.clientKeyPEM
        hc.insecureSkipVerify = config.insecureSkipVerify
        hc.idleTimeout = requestTimeout
        http = HTTPClient(configuration: hc)
        var wc = hc
        wc.idleTimeout = watchIdleTimeout
        wc.maxPooledHandles = 16
        watchHTTP = HTTPClient(configuration: wc)
        tokens = BearerTokenSource(staticToken: config.token, file: config.tokenFile, refreshInterval: tokenRefreshInterval)
    }

    // MARK: KubeClient

    func get(_ r: GroupVersionResource, _ key: ObjectKey) throws(KubeError) -> JSONValue {
        try send(verb: "GET", method: "GET", r, path: path(r, namespace: key.namespace, name: key.name))
    }

    func list(_ r: GroupVersionResource, namespace: String?, options: ListOptions) throws(KubeError) -> ListPage {
        var q: [(String, String)] = []
        if let s = options.labelSelector { q.append(("labelSelector", s)) }
        if let s = options.fieldSelector { q.append(("fieldSelector", s)) }
        if let l = options.limit { q.append(("limit", String(l))) }
        if let c = options.continueToken { q.append(("continue", c)) }
        if let rv = options.resourceVersion { q.append(("resourceVersion", rv)) }
        let v = try send(verb: "LIST", method: "GET", r, path: path(r, namespace: namespace, name: nil, listing: true), query: q)
        guard let rawItems = v["items"]?.array ?? (v["items"]?.isNull == true ? [] : nil) else {
            throw .decoding("\(r) list answer without items")
        }
        // List items come without apiVersion/kind; fill them in so items look like GET/watch objects.
        let items = rawItems.map { item -> JSONValue in
            var o = item
            if o["apiVersion"] == nil { o["apiVersion"] = .string(r.apiVersion) }
            if o["kind"] == nil { o["kind"] = .string(r.kind) }
            return o
        }
        let cont = v[path: "metadata", "continue"]?.string
        return ListPage(items: items, resourceVersion: v[path: "metadata", "resourceVersion"]?.string ?? "",
                        continueToken: cont?.isEmpty == false ? cont : nil)
    }

    func watch(_ r: GroupVersionResource, namespace: String?, options: WatchOptions, cancellation: CancellationToken,
               onEvent: (WatchEvent) throws -> Void) throws(KubeError) {
        var q: [(String, String)] = [("watch", "1")]
        if let s = options.labelSelector { q.append(("labelSelector", s)) }
        if let s = options.fieldSelector { q.append(("fieldSelector", s)) }
        if let rv = options.resourceVersion { q.append(("resourceVersion", rv)) }
        if let t = options.timeoutSeconds { q.append(("timeoutSeconds", String(t))) }
        if options.allowWatchBookmarks { q.append(("allowWatchBookmarks", "true")) }
        let url = config.server + path(r, namespace: namespace, name: nil, listing: true) + Self.query(q)
        let started = ContinuousClock.now
        var code = "<error>"
        defer { observer?.requestFinished(verb: "WATCH", resource: r.resource, code: code, duration: ContinuousClock.now - started) }

        for attempt in 0..<2 {
            if cancellation.isCancelled { return }
            var request = HTTPClientRequest(method: "GET", url: url, headers: headers(contentType: nil))
            request.cancellation = cancellation
            let outcome: WatchOutcome = withoutActuallyEscaping(onEvent) { onEvent in
                let handler = WatchHandler(onEvent: onEvent)
                do throws(HTTPClientError) {
                    try watchHTTP.execute(request, handler: handler)
                    return handler.finish()
                } catch {
                    return handler.failed(error, cancelled: cancellation.isCancelled)
                }
            }
            switch outcome {
            case .ended:
                code = "200"
                return
            case .failed(let status, let error):
                if let status { code = String(status) }
                if status == 401, attempt == 0, tokens.invalidate() { continue }
                throw error
            }
        }
    }

    func create(_ r: GroupVersionResource, namespace: String?, _ object: JSONValue) throws(KubeError) -> JSONValue {
        let ns = namespace ?? object.namespace
        return try send(verb: "POST", method: "POST", r, path: path(r, namespace: ns, name: nil, listing: false),
                        body: object.encoded(), contentType: "application/json")
    }

    func update(_ r: GroupVersionResource, _ object: JSONValue) throws(KubeError) -> JSONValue {
        let key = try Self.key(of: object)
        return try send(verb: "PUT", method: "PUT", r, path: path(r, namespace: key.namespace, name: key.name),
                        body: object.encoded(), contentType: "application/json")
    }

    func updateStatus(_ r: GroupVersionResource, _ object: JSONValue) throws(KubeError) -> JSONValue {
        let key = try Self.key(of: object)
        return try send(verb: "PUT", method: "PUT", r,
                        path: path(r, namespace: key.namespace, name: key.name, subresource: "status"),
                        body: object.encoded(), contentType: "application/json")
    }

    func apply(_ r: GroupVersionResource, _ object: JSONValue, fieldManager: String, force: Bool,
               subresource: String?) throws(KubeError) -> JSONValue {
        let key = try Self.key(of: object)
        // The apply body must name its type; fill it in from the resource when the caller left it out.
        var object = object
        if object["apiVersion"] == nil { object["apiVersion"] = .string(r.apiVersion) }
        if object["kind"] == nil { object["kind"] = .string(r.kind) }
        var q = [("fieldManager", fieldManager)]
        if force { q.append(("force", "true")) }
        return try send(verb: "APPLY", method: "PATCH", r,
                        path: path(r, namespace: key.namespace, name: key.name, subresource: subresource), query: q,
                        body: object.encoded(), contentType: "application/apply-patch+yaml")
    }

    func mergePatch(_ r: GroupVersionResource, _ key: ObjectKey, _ patch: JSONValue) throws(KubeError) -> JSONValue {
        try send(verb: "PATCH", method: "PATCH", r, path: path(r, namespace: key.namespace, name: key.name),
                 body: patch.encoded(), contentType: "application/merge-patch+json")
    }

    func delete(_ r: GroupVersionResource, _ key: ObjectKey, propagation: PropagationPolicy?) throws(KubeError) {
        var body: [UInt8]?
        if let propagation {
            let opts: JSONValue = ["kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": .string(propagation.rawValue)]
            body = opts.encoded()
        }
        _ = try send(verb: "DELETE", method: "DELETE", r, path: path(r, namespace: key.namespace, name: key.name),
                     body: body, contentType: body == nil ? nil : "application/json")
    }

    func apiGroups() throws(KubeError) -> JSONValue {
        let discovery = GroupVersionResource(group: "", version: "", resource: "discovery", kind: "APIGroupList")
        return try send(verb: "GET", method: "GET", discovery, path: "/apis")
    }

    // MARK: Plumbing

    /// URL path of a resource collection or object. A namespaced resource with a nil namespace means all
    /// namespaces for listing, and the configured default namespace otherwise.
    func path(_ r: GroupVersionResource, namespace: String?, name: String?, subresource: String? = nil,
              listing: Bool = false) -> String {
        var p = r.group.isEmpty ? "/api/\(r.version)" : "/apis/\(r.group)/\(r.version)"
        if r.namespaced, let ns = namespace ?? (listing ? nil : config.namespace) {
            p += "/namespaces/\(Self.escape(ns))"
        }
        p += "/\(r.resource)"
        if let name { p += "/\(Self.escape(name))" }
        if let subresource { p += "/\(Self.escape(subresource))" }
        return p
    }

    private static func key(of object: JSONValue) throws(KubeError) -> ObjectKey {
        guard let key = ObjectKey(of: object), !key.name.isEmpty else {
            throw .invalid("object has no metadata.name")
        }
        return key
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "%" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    static func query(_ q: [(String, String)]) -> String {
        q.isEmpty ? "" : "?" + q.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }

    private func headers(contentType: String?) -> [(name: String, value: String)] {
        var h: [(name: String, value: String)] = [("Accept", "application/json"), ("User-Agent", userAgent)]
        if let t = tokens.current() { h.append(("Authorization", "Bearer \(t)")) }
        if let contentType { h.append(("Content-Type", contentType)) }
        return h
    }

    private func send(verb: String, method: String, _ r: GroupVersionResource, path: String, query q: [(String, String)] = [],
                      body: [UInt8]? = nil, contentType: String? = nil) throws(KubeError) -> JSONValue {
        let url = config.server + path + Self.query(q)
        for attempt in 0..<2 {
            let started = ContinuousClock.now
            var request = HTTPClientRequest(method: method, url: url, headers: headers(contentType: contentType),
                                            body: body.map { .bytes($0) } ?? .none)
            request.totalTimeout = requestTimeout
            let response: HTTPClientResponse
            do {
                response = try http.execute(request, maxBodySize: Self.maxResponseBytes)
            } catch {
                observer?.requestFinished(verb: verb, resource: r.resource, code: "<error>", duration: ContinuousClock.now - started)
                throw Self.map(error)
            }
            observer?.requestFinished(verb: verb, resource: r.resource, code: String(response.status),
                                      duration: ContinuousClock.now - started)
            if (200..<300).contains(response.status) {
                if response.body.isEmpty { return .object([:]) }
                return try JSONValue.parse(response.body)
            }
            // A rotated token: re-read the file and retry once.
            if response.status == 401, attempt == 0, tokens.invalidate() { continue }
            throw KubeStatus.error(httpStatus: response.status, body: response.body,
                                   retryAfterHeader: response.header("Retry-After"))
        }
        throw .unauthorized("still unauthorized after re-reading the token")
    }

    static func map(_ error: HTTPClientError) -> KubeError {
        switch error {
        case .timeout(let m): return .timeout(m)
        case .connect(let m): return .transport("connect: \(m)")
        case .tls(let m): return .transport("TLS: \(m)")
        case .cancelled: return .transport("cancelled")
        case .bodySource(let e): return .transport("request body: \(e)")
        case .handler(let e): return (e as? KubeError) ?? .transport("\(e)")
        case .responseTooLarge(let limit): return .decoding("response larger than \(limit) bytes")
        case .transport(let code, let m): return .transport("curl \(code): \(m)")
        }
    }
}

private enum WatchOutcome {
    case ended
    case failed(status: Int?, KubeError)
}

/// Streams a watch body through `WatchStreamDecoder` into the caller's closure.
private final class WatchHandler: HTTPResponseHandler {
    let onEvent: (WatchEvent) throws -> Void
    var status: Int?
    var retryAfter: String?
    var decoder = WatchStreamDecoder()
    var errorBody: [UInt8] = []
    /// An error from `onEvent`, rethrown as-is.
    var callerError: (any Error)?

    init(onEvent: @escaping (WatchEvent) throws -> Void) {
        self.onEvent = onEvent
    }

    func responseHead(status: Int, headers: [(name: String, value: String)]) throws {
        self.status = status
        retryAfter = headers.first { $0.name.lowercased() == "retry-after" }?.value
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {
        guard status == 200 else {
            if errorBody.count < 1 << 20 { errorBody.append(contentsOf: bytes.prefix(1 << 20 - errorBody.count)) }
            return
        }
        for event in try decoder.feed(bytes) {
            do { try onEvent(event) } catch {
                callerError = error
                throw error
            }
        }
    }

    func finish() -> WatchOutcome {
        guard let status else { return .failed(status: nil, .transport("watch ended without a response")) }
        guard status == 200 else {
            return .failed(status: status, KubeStatus.error(httpStatus: status, body: errorBody, retryAfterHeader: retryAfter))
        }
        do {
            for event in try decoder.finish() {
                do { try onEvent(event) } catch { return .failed(status: status, (error as? KubeError) ?? .transport("\(error)")) }
            }
        } catch {
            return .failed(status: status, error)
        }
        return .ended
    }

    func failed(_ error: HTTPClientError, cancelled: Bool) -> WatchOutcome {
        if let callerError {
            return .failed(status: status, (callerError as? KubeError) ?? .transport("watch event handler: \(callerError)"))
        }
        if cancelled { return .ended }
        if case .handler(let e) = error, let k = e as? KubeError { return .failed(status: status, k) }
        return .failed(status: status, KubeRESTClient.map(error))
    }
}

private extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
