import Shared

/// A resource type on the API server: where it lives (group/version/resource) and what it is (kind, scope).
struct GroupVersionResource: Hashable, Sendable, CustomStringConvertible {
    /// API group; "" for the core group (`/api/v1`).
    var group: String
    var version: String
    /// Plural, lower-case path segment, e.g. "deployments".
    var resource: String
    var kind: String
    var namespaced: Bool

    init(group: String, version: String, resource: String, kind: String, namespaced: Bool = true) {
        self.group = group
        self.version = version
        self.resource = resource
        self.kind = kind
        self.namespaced = namespaced
    }

    /// `apiVersion` as written in objects: "v1" or "apps/v1".
    var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    var description: String { group.isEmpty ? "\(resource).\(version)" : "\(resource).\(version).\(group)" }

    static let leases = GroupVersionResource(group: "coordination.k8s.io", version: "v1", resource: "leases", kind: "Lease")
    static let deployments = GroupVersionResource(group: "apps", version: "v1", resource: "deployments", kind: "Deployment")
    static let services = GroupVersionResource(group: "", version: "v1", resource: "services", kind: "Service")
    static let secrets = GroupVersionResource(group: "", version: "v1", resource: "secrets", kind: "Secret")
    static let configMaps = GroupVersionResource(group: "", version: "v1", resource: "configmaps", kind: "ConfigMap")
    static let events = GroupVersionResource(group: "events.k8s.io", version: "v1", resource: "events", kind: "Event")
    static let encryptionGateways = GroupVersionResource(
        group: "s3gateway.dev", version: "v1alpha1", resource: "encryptiongateways", kind: "EncryptionGateway")
    static let hpas = GroupVersionResource(
        group: "autoscaling", version: "v2", resource: "horizontalpodautoscalers", kind: "HorizontalPodAutoscaler")
    static let pdbs = GroupVersionResource(
        group: "policy", version: "v1", resource: "poddisruptionbudgets", kind: "PodDisruptionBudget")
    static let networkPolicies = GroupVersionResource(
        group: "networking.k8s.io", version: "v1", resource: "networkpolicies", kind: "NetworkPolicy")
    static let serviceAccounts = GroupVersionResource(
        group: "", version: "v1", resource: "serviceaccounts", kind: "ServiceAccount")
    static let namespaces = GroupVersionResource(
        group: "", version: "v1", resource: "namespaces", kind: "Namespace", namespaced: false)
}

/// Namespace (nil for cluster-scoped objects) and name of one object.
struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    var namespace: String?
    var name: String

    init(namespace: String?, name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// Key of an object's `metadata`; nil when it has no name.
    init?(of object: JSONValue) {
        guard let name = object.name else { return nil }
        self.init(namespace: object.namespace, name: name)
    }

    /// "ns/name" or "name", the conventional work-queue key.
    var description: String { namespace.map { "\($0)/\(name)" } ?? name }
}

/// What went wrong talking to the API server. Status-based cases carry the server's message.
enum KubeError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound(String)
    case alreadyExists(String)
    /// 409 Conflict: stale resourceVersion, or a server-side-apply field conflict (the message lists the fields).
    case conflict(String)
    /// 410 Gone / Expired: the resourceVersion or continue token is too old; relist.
    case gone(String)
    case forbidden(String)
    case unauthorized(String)
    /// 422 Invalid or 400 BadRequest.
    case invalid(String)
    case tooManyRequests(retryAfter: Duration?, message: String)
    case timeout(String)
    case server(code: Int, reason: String, message: String)
    /// No HTTP answer: connect/TLS failure, connection dropped, cancelled.
    case transport(String)
    case decoding(String)

    var description: String {
        switch self {
        case .notFound(let m): return "not found: \(m)"
        case .alreadyExists(let m): return "already exists: \(m)"
        case .conflict(let m): return "conflict: \(m)"
        case .gone(let m): return "gone (410): \(m)"
        case .forbidden(let m): return "forbidden: \(m)"
        case .unauthorized(let m): return "unauthorized: \(m)"
        case .invalid(let m): return "invalid: \(m)"
        case .tooManyRequests(let d, let m): return "too many requests (retry after \(d.map { "\($0)" } ?? "?")): \(m)"
        case .timeout(let m): return "timeout: \(m)"
        case .server(let c, let r, let m): return "server error \(c) \(r): \(m)"
        case .transport(let m): return "transport: \(m)"
        case .decoding(let m): return "decoding: \(m)"
        }
    }

    /// Whether retrying the same request later can succeed (throttling, timeouts, 5xx, transport).
    var isRetryable: Bool {
        switch self {
        case .tooManyRequests, .timeout, .transport: return true
        case .server(let code, _, _): return code >= 500
        default: return false
        }
    }
}

/// One page of a LIST.
struct ListPage: Sendable {
    var items: [JSONValue]
    /// The list's resourceVersion: start a WATCH here.
    var resourceVersion: String
    /// Non-nil when more pages follow; pass as `ListOptions.continueToken`.
    var continueToken: String?
}

/// One event of a WATCH stream.
enum WatchEvent: Sendable, Equatable {
    case added(JSONValue)
    case modified(JSONValue)
    case deleted(JSONValue)
    /// Progress notification; only `metadata.resourceVersion` is meaningful.
    case bookmark(resourceVersion: String)
    /// In-stream error, a `Status` object; `code` 410 means the watch's resourceVersion expired: relist.
    case error(status: JSONValue)
}

struct ListOptions: Sendable {
    var labelSelector: String?
    var fieldSelector: String?
    var limit: Int?
    var continueToken: String?
    var resourceVersion: String?

    init(labelSelector: String? = nil, fieldSelector: String? = nil, limit: Int? = nil,
         continueToken: String? = nil, resourceVersion: String? = nil) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
        self.continueToken = continueToken
        self.resourceVersion = resourceVersion
    }
}

struct WatchOptions: Sendable {
    var labelSelector: String?
    var fieldSelector: String?
    var resourceVersion: String?
    /// Server-side end of the watch; informers use a random 5–10 min.
    var timeoutSeconds: Int?
    var allowWatchBookmarks: Bool = true

    init(labelSelector: String? = nil, fieldSelector: String? = nil, resourceVersion: String? = nil,
         timeoutSeconds: Int? = nil, allowWatchBookmarks: Bool = true) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.resourceVersion = resourceVersion
        self.timeoutSeconds = timeoutSeconds
        self.allowWatchBookmarks = allowWatchBookmarks
    }
}

enum PropagationPolicy: String, Sendable {
    case foreground = "Foreground"
    case background = "Background"
    case orphan = "Orphan"
}

/// The Kubernetes API as the operator uses it. All calls block the calling thread.
/// `KubeRESTClient` talks to a real API server; tests may substitute fakes.
protocol KubeClient: Sendable {
    func get(_ r: GroupVersionResource, _ key: ObjectKey) throws(KubeError) -> JSONValue
    func list(_ r: GroupVersionResource, namespace: String?, options: ListOptions) throws(KubeError) -> ListPage
    /// Blocks until the stream ends (server timeout → returns; connection drop → throws `.transport`) or
    /// `cancellation` fires (→ returns). Calls `onEvent` per event, in order, on the calling thread; an error
    /// thrown by `onEvent` ends the watch and is rethrown (as-is when it is a `KubeError`, else as `.transport`).
    /// A non-200 answer (e.g. 410 as HTTP status) throws the decoded `KubeError`.
    func watch(_ r: GroupVersionResource, namespace: String?, options: WatchOptions, cancellation: CancellationToken,
               onEvent: (WatchEvent) throws -> Void) throws(KubeError)
    func create(_ r: GroupVersionResource, namespace: String?, _ object: JSONValue) throws(KubeError) -> JSONValue
    /// PUT with `metadata.resourceVersion` as precondition; a stale one → `.conflict`.
    func update(_ r: GroupVersionResource, _ object: JSONValue) throws(KubeError) -> JSONValue
    /// PUT …/status: only the status changes.
    func updateStatus(_ r: GroupVersionResource, _ object: JSONValue) throws(KubeError) -> JSONValue
    /// Server-side apply: PATCH `application/apply-patch+yaml` with a JSON body (sorted keys). `object` must carry
    /// apiVersion, kind, metadata.name (and metadata.namespace when namespaced).
    func apply(_ r: GroupVersionResource, _ object: JSONValue, fieldManager: String, force: Bool,
               subresource: String?) throws(KubeError) -> JSONValue
    /// JSON merge patch (RFC 7386).
    func mergePatch(_ r: GroupVersionResource, _ key: ObjectKey, _ patch: JSONValue) throws(KubeError) -> JSONValue
    func delete(_ r: GroupVersionResource, _ key: ObjectKey, propagation: PropagationPolicy?) throws(KubeError)
    /// Discovery: the APIGroupList of `GET /apis` (every group with its served versions).
    func apiGroups() throws(KubeError) -> JSONValue
}

extension KubeClient {
    /// Pages through a LIST (`pageSize` items per request) and returns every item plus the resourceVersion of the
    /// last page (a consistent snapshot: start a WATCH there). An expired continue token throws `.gone`.
    func listAll(_ r: GroupVersionResource, namespace: String?, labelSelector: String? = nil,
                 fieldSelector: String? = nil, pageSize: Int = 500) throws(KubeError) -> (items: [JSONValue], resourceVersion: String) {
        var items: [JSONValue] = []
        var options = ListOptions(labelSelector: labelSelector, fieldSelector: fieldSelector, limit: pageSize)
        while true {
            let page = try list(r, namespace: namespace, options: options)
            items.append(contentsOf: page.items)
            guard let token = page.continueToken, !token.isEmpty else {
                return (items, page.resourceVersion)
            }
            options.continueToken = token
        }
    }

    func apply(_ r: GroupVersionResource, _ object: JSONValue, fieldManager: String, force: Bool = true) throws(KubeError) -> JSONValue {
        try apply(r, object, fieldManager: fieldManager, force: force, subresource: nil)
    }

    /// Get, or nil when the object does not exist.
    func getIfExists(_ r: GroupVersionResource, _ key: ObjectKey) throws(KubeError) -> JSONValue? {
        do { return try get(r, key) } catch .notFound { return nil }
    }
}

/// Observes every REST request the client makes (for the `rest_client_requests_total{verb,code}` metric).
/// `code` is the HTTP status, or "<error>" when no response arrived. Called on the requesting thread.
protocol KubeRequestObserver: Sendable {
    func requestFinished(verb: String, resource: String, code: String, duration: Duration)
}
