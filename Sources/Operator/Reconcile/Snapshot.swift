import Shared

/// One EncryptionGateway as the builders see it: identity, the metadata children inherit, and the decoded spec.
struct GatewayResource: Sendable, Equatable {
    var name: String
    var namespace: String
    /// Empty when rendering a file that was never applied: children then carry no ownerReferences.
    var uid: String
    var generation: Int64
    var labels: [String: String]
    var spec: EncryptionGatewaySpec

    /// Parses a resource object: metadata checks, then the spec defaulted and validated like the API server
    /// and the CEL rules would (`problems` empty when acceptable).
    static func parse(_ object: JSONValue) -> (resource: GatewayResource, problems: [String]) {
        var problems: [String] = []
        let name = object.name ?? ""
        for rule in EncryptionGatewayCRD.nameRules where !rule.check(name) { problems.append(rule.message) }
        var labels: [String: String] = [:]
        for (k, v) in object[path: "metadata", "labels"]?.object ?? [:] { if let s = v.string { labels[k] = s } }
        let decoded = EncryptionGatewaySpec.decode(object["spec"] ?? .object([:]), path: "spec")
        problems += decoded.problems
        let resource = GatewayResource(
            name: name, namespace: object.namespace ?? "default", uid: object.uid ?? "",
            generation: Int64(object[path: "metadata", "generation"]?.int ?? 0), labels: labels, spec: decoded.value)
        return (resource, problems)
    }
}

/// The API versions this cluster serves for the optional kinds (from discovery). nil: the kind is not served.
struct ClusterCapabilities: Sendable, Equatable {
    var hpa: GroupVersionResource?
    var pdb: GroupVersionResource?
    var ingress: GroupVersionResource?
    var serviceMonitor: GroupVersionResource?

    /// What a current cluster serves (`render` assumes it; tests pick others).
    static let current = ClusterCapabilities(
        hpa: .hpas, pdb: .pdbs, ingress: .ingresses, serviceMonitor: .serviceMonitors)

    /// Reads an APIGroupList (`GET /apis`): the preferred of the versions the operator can write.
    static func from(apiGroups: JSONValue) -> ClusterCapabilities {
        var served: [String: Set<String>] = [:]
        for group in apiGroups["groups"]?.array ?? [] {
            guard let name = group["name"]?.string else { continue }
            for v in group["versions"]?.array ?? [] {
                if let version = v["version"]?.string { served[name, default: []].insert(version) }
            }
        }
        func pick(_ group: String, _ versions: [String], _ base: GroupVersionResource) -> GroupVersionResource? {
            guard let v = versions.first(where: { served[group]?.contains($0) == true }) else { return nil }
            var r = base
            r.version = v
            return r
        }
        return ClusterCapabilities(
            hpa: pick("autoscaling", ["v2", "v2beta2"], .hpas),
            pdb: pick("policy", ["v1", "v1beta1"], .pdbs),
            ingress: pick("networking.k8s.io", ["v1"], .ingresses),
            serviceMonitor: pick("monitoring.coreos.com", ["v1"], .serviceMonitors))
    }
}

/// Everything a reconcile decides from: the resource, a hash of the referenced Secret data, the cluster's
/// capabilities and the operator's defaults. The builders are pure functions of it.
struct Snapshot: Sendable {
    var resource: GatewayResource
    /// SHA-256 over the referenced Secret keys' values (a change rolls the pods).
    var secretHash: String
    var capabilities: ClusterCapabilities
    var defaultImage: String

    var spec: EncryptionGatewaySpec { resource.spec }
}

extension GroupVersionResource {
    static let ingresses = GroupVersionResource(group: "networking.k8s.io", version: "v1", resource: "ingresses", kind: "Ingress")
    static let serviceMonitors = GroupVersionResource(
        group: "monitoring.coreos.com", version: "v1", resource: "servicemonitors", kind: "ServiceMonitor")
}

/// Hex SHA-256, for the hash annotations.
func sha256Hex(_ text: String) -> String {
    Digest.sha256(text).map { b in
        let s = String(b, radix: 16)
        return b < 16 ? "0" + s : s
    }.joined()
}
