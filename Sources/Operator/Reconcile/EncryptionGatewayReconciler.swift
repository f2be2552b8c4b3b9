import Foundation
import Synchronization

/// The caches a reconcile reads (never the API server, except for kinds that have no informer).
struct ReconcilerCaches: Sendable {
    var gateways: Store
    /// Secrets with their data replaced by per-key hashes (`SecretDigest`).
    var secrets: Store
    var children: [ChildKind: Store]
}

/// What the cluster serves, from discovery; refreshed every few minutes and after a write hit an unknown kind.
final class CapabilitiesCache: Sendable {
    private struct State {
        var value: ClusterCapabilities?
        var fetched: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    let maxAge: Duration

    init(initial: ClusterCapabilities? = nil, maxAge: Duration = .seconds(300)) {
        self.maxAge = maxAge
        state.withLock { s in
            s.value = initial
            s.fetched = initial == nil ? nil : .now
        }
    }

    func current(_ client: any KubeClient) throws(KubeError) -> ClusterCapabilities {
        let (value, fetched) = state.withLock { ($0.value, $0.fetched) }
        if let value, let fetched, fetched.duration(to: .now) < maxAge { return value }
        do {
            let fresh = ClusterCapabilities.from(apiGroups: try client.apiGroups())
            state.withLock { s in
                s.value = fresh
                s.fetched = .now
            }
            return fresh
        } catch {
            if let value { return value }  // keep working with what we knew
            throw error
        }
    }

    func invalidate() { state.withLock { $0.fetched = nil } }
}

/// Secret data as the operator keeps it: each value replaced by its SHA-256, annotations (which may hold a copy of
/// the data in `kubectl.kubernetes.io/last-applied-configuration`) dropped. The reconciler needs to know which keys
/// exist and when values change, never the values themselves.
enum SecretDigest {
    static func transform(_ secret: JSONValue) -> JSONValue {
        var o = secret
        var data: [String: JSONValue] = [:]
        for (k, v) in secret["data"]?.object ?? [:] { data[k] = .string(sha256Hex(v.string ?? "")) }
        o["data"] = .object(data)
        o["stringData"] = nil
        o["metadata"]?["annotations"] = nil
        o["metadata"]?["managedFields"] = nil
        return o
    }
}

/// Reconciles one EncryptionGateway: snapshot (resource, referenced Secret hashes, cluster capabilities) → pure
/// builders → server-side apply of each child that differs from the cache (one field manager, owner references) →
/// deletion of children whose feature is off → status through `/status` when it changed → events for changes.
/// The resource's spec is never written.
final class EncryptionGatewayReconciler: Reconciler {
    let client: any KubeClient
    let caches: ReconcilerCaches
    let capabilities: CapabilitiesCache
    let events: KubeEventRecorder
    let defaultImage: String
    let log: any RuntimeLog
    let statusObserver: any GatewayStatusObserver
    let now: @Sendable () -> Date

    init(client: any KubeClient, caches: ReconcilerCaches, capabilities: CapabilitiesCache, events: KubeEventRecorder,
         defaultImage: String, log: any RuntimeLog, statusObserver: any GatewayStatusObserver = NoGatewayStatusObserver(),
         now: @escaping @Sendable () -> Date = { Date() }) {
        self.client = client
        self.caches = caches
        self.capabilities = capabilities
        self.events = events
        self.defaultImage = defaultImage
        self.log = log
        self.statusObserver = statusObserver
        self.now = now
    }

    func reconcile(_ key: ObjectKey, context: ReconcileContext) -> ReconcileResult {
        // Gone: its children go with it (ownerReferences → the garbage collector).
        guard let object = caches.gateways.get(key), object[path: "metadata", "deletionTimestamp"] == nil else {
            statusObserver.forget(key)
            return .done
        }
        let (resource, specProblems) = GatewayResource.parse(object)
        let previous = EncryptionGatewayStatus.decode(object["status"] ?? .object([:]), path: "status").value

        var outcome: ReconcileOutcome
        var deployment = caches.children[.deployment]?.get(key)
        var changes: [String] = []
        var deploymentApplied = false
        var retry: (any Error)?
        if !specProblems.isEmpty {
            outcome = .blocked(DegradedProblem(reason: DegradedProblem.invalidSpec,
                message: "The spec is invalid: " + specProblems.joined(separator: "; ") + ". Nothing was applied; fix the resource."))
        } else {
            switch secretHash(resource) {
            case .failure(let problem):
                outcome = .blocked(problem)
            case .success(let hash):
                let caps: ClusterCapabilities
                do { caps = try capabilities.current(client) } catch { return .error(error) }
                let snapshot = Snapshot(resource: resource, secretHash: hash, capabilities: caps, defaultImage: defaultImage)
                var problems: [DegradedProblem] = []
                for child in Builders.all(snapshot) {
                    do {
                        if let applied = try converge(child, resource: resource, capabilities: caps, context: context,
                                                      problems: &problems, changes: &changes), child.kind == .deployment {
                            deployment = applied
                            deploymentApplied = true
                        }
                    } catch let error as ReconcileCancelled {
                        return .error(error)
                    } catch {
                        retry = retry ?? error
                    }
                }
                outcome = .applied(problems: problems)
            }
        }

        let status = StatusComputation.compute(resource: resource, outcome: outcome, deployment: deployment,
                                               previous: previous, now: RFC3339.format(now()))
        if status.json != previous.json {
            if context.isCancelled { return .error(ReconcileCancelled()) }
            let body: JSONValue = [
                "apiVersion": .string(GroupVersionResource.encryptionGateways.apiVersion),
                "kind": .string(GroupVersionResource.encryptionGateways.kind),
                "metadata": ["name": .string(resource.name), "namespace": .string(resource.namespace)],
                "status": status.json ?? .object([:]),
            ]
            do {
                _ = try client.apply(.encryptionGateways, body, fieldManager: Builders.fieldManager, force: true,
                                     subresource: "status")
            } catch .notFound {
                statusObserver.forget(key)
                return .done  // deleted meanwhile
            } catch {
                retry = retry ?? error
            }
        }
        statusObserver.observe(key, status)
        let advisories = deploymentApplied ? SpecAdvisories.all(resource.spec) : []
        let eventCount = recordEvents(resource, previous: previous, status: status, changes: changes,
                                      advisories: advisories, context: context)
        let statusWrites = status.json != previous.json ? 1 : 0
        log.debug("reconciled", ["key": key.description, "generation": "\(resource.generation)",
                                 "writes": "\(changes.count + statusWrites + eventCount)",
                                 "degraded": status.condition(StatusComputation.degraded)?.reason ?? "",
                                 "error": retry.map { "\($0)" } ?? ""])
        if let retry { return .error(retry) }
        return .done
    }

    // MARK: Children

    /// Applies or deletes one child as needed; returns the applied object (nil when nothing was written).
    private func converge(_ child: DesiredChild, resource r: GatewayResource, capabilities: ClusterCapabilities,
                          context: ReconcileContext, problems: inout [DegradedProblem],
                          changes: inout [String]) throws -> JSONValue? {
        let key = ObjectKey(namespace: r.namespace, name: child.name)
        let label = "\(child.kind.rawValue) \(r.namespace)/\(child.name)"
        guard let resource = child.kind.resource(capabilities) else {
            if child.object != nil {
                problems.append(DegradedProblem(reason: DegradedProblem.kindNotServed,
                    message: "The cluster does not serve \(child.kind.rawValue) (\(Self.apiGroupHint(child.kind))), which spec.\(Self.specField(child.kind)) asks for; install it or turn the feature off. Everything else was applied."))
            }
            return nil
        }
        let live: JSONValue?
        if let store = caches.children[child.kind] {
            live = store.get(key)
        } else {
            live = try client.getIfExists(resource, key)
        }
        if let desired = child.object {
            let stamped = ChildComparison.stamped(desired)
            guard ChildComparison.needsApply(stamped, live: live) else { return nil }
            try context.checkNotCancelled()
            do {
                let applied = try client.apply(resource, stamped, fieldManager: Builders.fieldManager, force: true)
                changes.append((live == nil ? "created " : "updated ") + label)
                return applied
            } catch {
                if error.isRetryable { throw error }
                if case .notFound = error { self.capabilities.invalidate(); throw error }
                problems.append(DegradedProblem(reason: DegradedProblem.applyFailed,
                                                message: "Applying \(label) failed: \(error)"))
                if case .forbidden = error { throw error }  // RBAC may be fixed without any event: retry with backoff
                return nil
            }
        }
        guard let live, Self.isControlled(live, by: r.uid) else { return nil }
        try context.checkNotCancelled()
        do {
            try client.delete(resource, key, propagation: .background)
            changes.append("deleted " + label)
        } catch .notFound {
        }
        return nil
    }

    static func isControlled(_ object: JSONValue, by uid: String) -> Bool {
        (object[path: "metadata", "ownerReferences"]?.array ?? []).contains {
            $0["controller"]?.bool == true && $0["uid"]?.string == uid
        }
    }

    static func specField(_ kind: ChildKind) -> String {
        switch kind {
        case .hpa: return "autoscaling.enabled"
        case .pdb: return "podDisruptionBudget.enabled"
        case .ingress: return "ingress.enabled"
        case .serviceMonitor: return "serviceMonitor.enabled"
        case .networkPolicy: return "networkPolicy.enabled"
        default: return "(always)"
        }
    }

    static func apiGroupHint(_ kind: ChildKind) -> String {
        switch kind {
        case .hpa: return "autoscaling/v2 or v2beta2"
        case .pdb: return "policy/v1 or v1beta1"
        case .ingress: return "networking.k8s.io/v1"
        case .serviceMonitor: return "monitoring.coreos.com/v1, the Prometheus operator's CRD"
        default: return "core"
        }
    }

    // MARK: Secrets

    /// The hash of every referenced Secret key, or the first missing Secret/key as a problem.
    func secretHash(_ r: GatewayResource) -> Result<String, DegradedProblem> {
        var lines: [String] = []
        for use in Builders.secretUses(r.spec) {
            let ref = use.ref, field = use.field
            guard let secret = caches.secrets.get(ObjectKey(namespace: r.namespace, name: ref.name)) else {
                return .failure(DegradedProblem(reason: DegradedProblem.secretNotFound,
                    message: "Secret \(r.namespace)/\(ref.name) (\(field)) does not exist; create it. Nothing was applied until then."))
            }
            guard let value = secret[path: "data", ref.key]?.string else {
                return .failure(DegradedProblem(reason: DegradedProblem.secretKeyNotFound,
                    message: "Secret \(r.namespace)/\(ref.name) has no key \"\(ref.key)\" (\(field)); add it or fix the reference. Nothing was applied until then."))
            }
            if use.rollsPods { lines.append("\(ref.name)/\(ref.key)=\(value)") }
        }
        return .success(sha256Hex(Set(lines).sorted().joined(separator: "\n")))
    }

    /// Secret names a resource references (for the Secret → resource index); empty when its spec does not decode.
    static func referencedSecretNames(_ object: JSONValue) -> [String] {
        let spec = EncryptionGatewaySpec.decode(object["spec"] ?? .object([:]), path: "spec").value
        return Array(Set(Builders.secretUses(spec).map(\.ref.name))).sorted()
    }

    // MARK: Events

    /// Records what changed, and the spec's advisories when the Deployment was just applied; returns how many
    /// events it wrote.
    private func recordEvents(_ r: GatewayResource, previous: EncryptionGatewayStatus, status: EncryptionGatewayStatus,
                              changes: [String], advisories: [(reason: String, note: String)],
                              context: ReconcileContext) -> Int {
        guard !context.isCancelled else { return 0 }
        var count = 0
        func record(_ type: KubeEventRecorder.EventType, _ reason: String, _ note: String) {
            events.record(r, type, reason: reason, action: type == .normal && reason == "Applied" ? "Apply" : "Reconcile", note: note)
            count += 1
        }
        if !changes.isEmpty { record(.normal, "Applied", changes.joined(separator: ", ")) }
        for advisory in advisories { record(.warning, advisory.reason, advisory.note) }
        let before = previous.condition(StatusComputation.degraded), after = status.condition(StatusComputation.degraded)
        if let after, after.status == "True", before?.status != "True" || before?.reason != after.reason {
            record(.warning, after.reason, after.message)
        } else if before?.status == "True", after?.status == "False" {
            record(.normal, "Recovered", "No longer degraded (was \(before?.reason ?? "")).")
        }
        let readyBefore = previous.condition(StatusComputation.ready), readyAfter = status.condition(StatusComputation.ready)
        if readyAfter?.status == "True", readyBefore?.status != "True" {
            record(.normal, "Available", readyAfter?.message ?? "")
        }
        return count
    }
}

/// RFC 3339 in UTC with whole seconds, as metav1.Time is serialized.
enum RFC3339 {
    static func format(_ date: Date) -> String {
        String(MicroTime.format(date).prefix(19)) + "Z"
    }
}
