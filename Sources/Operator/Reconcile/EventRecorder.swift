import Foundation

/// Writes `events.k8s.io/v1` Events about an EncryptionGateway. The reconciler records only changes (a condition
/// that flipped, children created/updated/deleted), so an idle operator writes none.
struct KubeEventRecorder: Sendable {
    static let reportingController = "s3gateway.dev/encryption-gateway-operator"

    let client: any KubeClient
    /// This process (pod name or hostname), as `reportingInstance`.
    let instance: String
    let log: any RuntimeLog

    enum EventType: String { case normal = "Normal", warning = "Warning" }

    /// The Event object (pure; `now` is a MicroTime string, `suffix` makes the name unique).
    static func event(regarding r: GatewayResource, type: EventType, reason: String, action: String, note: String,
                      now: String, suffix: String, instance: String) -> JSONValue {
        [
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": ["name": .string("\(r.name).\(suffix)"), "namespace": .string(r.namespace)],
            "eventTime": .string(now),
            "reportingController": .string(reportingController),
            "reportingInstance": .string(String(instance.prefix(128))),
            "action": .string(action),
            "reason": .string(reason),
            "type": .string(type.rawValue),
            // The API caps notes at 1 kB.
            "note": .string(String(note.prefix(1024))),
            "regarding": [
                "apiVersion": .string(GroupVersionResource.encryptionGateways.apiVersion),
                "kind": .string(GroupVersionResource.encryptionGateways.kind),
                "name": .string(r.name), "namespace": .string(r.namespace), "uid": .string(r.uid),
            ],
        ]
    }

    /// Best effort: a failed event is logged, never fails the reconcile.
    func record(_ r: GatewayResource, _ type: EventType, reason: String, action: String, note: String) {
        let now = Date()
        let suffix = String(UInt64(now.timeIntervalSince1970 * 1e9), radix: 16) + String(UInt16.random(in: 0...UInt16.max), radix: 16)
        let object = Self.event(regarding: r, type: type, reason: reason, action: action, note: note,
                                now: MicroTime.format(now), suffix: suffix, instance: instance)
        do {
            _ = try client.create(.events, namespace: r.namespace, object)
        } catch {
            log.warn("cannot record event", ["gateway": "\(r.namespace)/\(r.name)", "reason": reason, "error": "\(error)"])
        }
    }
}
