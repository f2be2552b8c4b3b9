import Shared

/// The kinds of children an EncryptionGateway owns, in the order they are applied (configuration before the
/// Deployment that reads it; the Service before what points at it).
enum ChildKind: String, CaseIterable, Sendable {
    case configMap = "ConfigMap"
    case deployment = "Deployment"
    case service = "Service"
    case hpa = "HorizontalPodAutoscaler"
    case pdb = "PodDisruptionBudget"
    case networkPolicy = "NetworkPolicy"
    case ingress = "Ingress"
    case serviceMonitor = "ServiceMonitor"

    /// The resource to use on a cluster with `capabilities`; nil when the cluster does not serve the kind.
    func resource(_ capabilities: ClusterCapabilities) -> GroupVersionResource? {
        switch self {
        case .configMap: return .configMaps
        case .deployment: return .deployments
        case .service: return .services
        case .networkPolicy: return .networkPolicies
        case .hpa: return capabilities.hpa
        case .pdb: return capabilities.pdb
        case .ingress: return capabilities.ingress
        case .serviceMonitor: return capabilities.serviceMonitor
        }
    }
}

/// One child as it should be: `object` nil means it should not exist (its feature is off).
struct DesiredChild: Sendable {
    var kind: ChildKind
    var name: String
    var object: JSONValue?
}

/// Pure builders: snapshot in, whole desired objects out (no I/O, no clock, no randomness), one per child kind
/// (`Builders+<Kind>.swift`). Output is deterministic, so applying it twice changes nothing.
enum Builders {
    static let fieldManager = "encryption-gateway-operator"
    static let containerName = "gateway"
    static let containerPort = 8080
    static let portName = "http"
    /// The container port of the probe listener (`spec.probes.port`).
    static let probePortName = "probes"
    /// Marks the probe listener's Service (`probesService`), which the ServiceMonitor then selects.
    static let serviceRoleLabel = "s3gateway.dev/service"

    /// The probe listener's port when the ServiceMonitor scrapes it: with both `probes.port` and a ServiceMonitor,
    /// the metrics are scraped there, over plain HTTP, through a Service of its own (`probesService`), so a scrape
    /// never waits behind client requests for a worker, needs no TLS settings (a ServiceMonitor cannot trust the
    /// gateway's own certificate), and the metrics (they name buckets) never share the client Service, which may be
    /// a public load balancer. Else nil: the ServiceMonitor scrapes the gateway port, and the probe port stays out
    /// of the Services and the NetworkPolicy.
    static func metricsPort(_ spec: EncryptionGatewaySpec) -> Int? {
        spec.serviceMonitor.enabled ? spec.probes.port : nil
    }

    static func probesServiceName(_ r: GatewayResource) -> String { r.name + "-probes" }

    // Labels and annotations the operator owns.
    static let nameLabel = "app.kubernetes.io/name"
    static let managedByLabel = "app.kubernetes.io/managed-by"
    /// Selects one gateway's pods. Not `app.kubernetes.io/instance`: ArgoCD's label tracking uses that label, and
    /// children carrying the resource's name there would look like parts of an ArgoCD application of that name.
    static let gatewayLabel = "s3gateway.dev/gateway"
    static let secretHashAnnotation = "s3gateway.dev/secret-hash"
    static let configHashAnnotation = "s3gateway.dev/config-hash"
    static let appName = "s3-encryption-gateway"

    /// Every child in apply order; disabled features yield `object == nil`.
    static func all(_ s: Snapshot) -> [DesiredChild] {
        let config = configMap(s)
        return [
            DesiredChild(kind: .configMap, name: configMapName(s.resource), object: config),
            DesiredChild(kind: .deployment, name: s.resource.name, object: deployment(s, configMap: config)),
            DesiredChild(kind: .service, name: s.resource.name, object: service(s)),
            DesiredChild(kind: .service, name: probesServiceName(s.resource), object: probesService(s)),
            DesiredChild(kind: .hpa, name: s.resource.name, object: horizontalPodAutoscaler(s)),
            DesiredChild(kind: .pdb, name: s.resource.name, object: podDisruptionBudget(s)),
            DesiredChild(kind: .networkPolicy, name: s.resource.name, object: networkPolicy(s)),
            DesiredChild(kind: .ingress, name: s.resource.name, object: ingress(s)),
            DesiredChild(kind: .serviceMonitor, name: s.resource.name, object: serviceMonitor(s)),
        ]
    }

    static func configMapName(_ r: GatewayResource) -> String { r.name + "-config" }

    /// Labels selecting the pods of `r` (Deployment, Service, PDB, NetworkPolicy, ServiceMonitor).
    static func selectorLabels(_ r: GatewayResource) -> [String: String] {
        [nameLabel: appName, gatewayLabel: r.name]
    }

    /// The selector as a string (`status.selector`, the scale subresource).
    static func selectorString(_ r: GatewayResource) -> String {
        selectorLabels(r).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// Labels every child carries: the resource's own labels minus tool-owned ones, then the operator's.
    static func childLabels(_ r: GatewayResource) -> [String: String] {
        var labels = r.labels.filter { !isToolOwned($0.key) }
        for (k, v) in selectorLabels(r) { labels[k] = v }
        labels[managedByLabel] = fieldManager
        return labels
    }

    /// Metadata that belongs to the tools that manage the resource itself, never copied onto children:
    /// ArgoCD's (`argocd.argoproj.io/*` and its default tracking label) and kubectl's last-applied configuration.
    static func isToolOwned(_ key: String) -> Bool {
        key.hasPrefix("argocd.argoproj.io/") || key == "app.kubernetes.io/instance"
            || key == "kubectl.kubernetes.io/last-applied-configuration"
    }

    /// `metadata` of a child: name, namespace, labels, annotations and the controller owner reference.
    static func metadata(_ s: Snapshot, name: String, labels extra: [String: String] = [:],
                         annotations: [String: String] = [:]) -> JSONValue {
        var labels = childLabels(s.resource)
        for (k, v) in extra { labels[k] = v }
        var m: [String: JSONValue] = [
            "name": .string(name),
            "namespace": .string(s.resource.namespace),
            "labels": stringMap(labels),
        ]
        let cleanAnnotations = annotations.filter { !isToolOwned($0.key) }
        if !cleanAnnotations.isEmpty { m["annotations"] = stringMap(cleanAnnotations) }
        if !s.resource.uid.isEmpty {
            m["ownerReferences"] = [[
                "apiVersion": .string(GroupVersionResource.encryptionGateways.apiVersion),
                "kind": .string(GroupVersionResource.encryptionGateways.kind),
                "name": .string(s.resource.name),
                "uid": .string(s.resource.uid),
                "controller": true,
                "blockOwnerDeletion": true,
            ]]
        }
        return .object(m)
    }

    static func object(_ r: GroupVersionResource, metadata: JSONValue, _ rest: [String: JSONValue]) -> JSONValue {
        var o = rest
        o["apiVersion"] = .string(r.apiVersion)
        o["kind"] = .string(r.kind)
        o["metadata"] = metadata
        return .object(o)
    }

    static func stringMap(_ d: [String: String]) -> JSONValue { .object(d.mapValues(JSONValue.string)) }
}
