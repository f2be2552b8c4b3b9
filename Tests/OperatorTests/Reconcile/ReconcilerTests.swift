import Foundation
import Shared
import Synchronization
import Testing
@testable import Operator

/// The reconciler against in-memory caches and the fake client: what it writes, and what it refuses to write.
/// (The same scenarios run against a real kube-apiserver in Cluster/ClusterOperatorTests.swift.)
@Suite struct ReconcilerTests {
    struct Harness {
        let client = FakeKubeClient()
        let gateways = Store()
        let secrets = Store()
        let children: [ChildKind: Store] = Dictionary(uniqueKeysWithValues: ChildKind.allCases.map { ($0, Store()) })
        let reconciler: EncryptionGatewayReconciler
        let metrics = OperatorMetrics()
        let key = ObjectKey(namespace: "ns", name: "gw")

        init(spec: JSONValue = APITypesTests.minimalSpec, secrets withSecrets: Bool = true) {
            reconciler = EncryptionGatewayReconciler(
                client: client, caches: ReconcilerCaches(gateways: gateways, secrets: secrets, children: children),
                capabilities: CapabilitiesCache(initial: .current),
                events: KubeEventRecorder(client: client, instance: "test", log: SilentLog()),
                defaultImage: "img", log: SilentLog(), statusObserver: metrics,
                now: { Date(timeIntervalSince1970: 1_800_000_000) })
            gateways.upsert(["apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
                             "metadata": ["name": "gw", "namespace": "ns", "uid": "u1", "generation": 1], "spec": spec])
            if withSecrets {
                for (name, keys) in [("b", ["accessKeyID", "secretAccessKey"]), ("e", ["password"]), ("c", ["accessKeyID", "secretAccessKey"])] {
                    addSecret(name, keys)
                }
            }
        }

        func addSecret(_ name: String, _ keys: [String], value: String = "djE=") {
            var data: [String: JSONValue] = [:]
            for k in keys { data[k] = .string(value) }
            secrets.upsert(SecretDigest.transform(["metadata": ["name": .string(name), "namespace": "ns",
                                                                "annotations": ["kubectl.kubernetes.io/last-applied-configuration": "secret!"]],
                                                   "data": .object(data)]))
        }

        /// Copies what the fake server holds into the caches, as the informers would.
        func syncCaches() {
            for kind in ChildKind.allCases {
                guard let r = kind.resource(.current) else { continue }
                if let o = try? client.get(r, ObjectKey(namespace: "ns", name: kind == .configMap ? "gw-config" : "gw")) {
                    children[kind]!.upsert(o)
                }
            }
            if let status = (try? client.get(.encryptionGateways, key))?["status"], var gw = gateways.get(key) {
                gw["status"] = status
                gateways.upsert(gw)
            }
        }

        func run(_ context: ReconcileContext = ReconcileContext(cancellation: CancellationToken())) -> ReconcileResult {
            reconciler.reconcile(key, context: context)
        }

        var status: JSONValue? { (try? client.get(.encryptionGateways, key))?["status"] }
        func condition(_ type: String) -> JSONValue? { status?["conditions"]?.array?.first { $0["type"]?.string == type } }
        var events: [JSONValue] { client.state.withLock { s in Array((s.objects["events"] ?? [:]).values) } }
    }

    @Test func appliesEveryChildThenWritesNothingWhenNothingChanged() {
        let h = Harness()
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        guard case .done = h.run() else { Issue.record("expected done"); return }
        let writes = h.client.writes
        #expect(writes.filter { $0.hasPrefix("apply ") && !$0.contains("/status") }.count == 5)
        #expect(writes.contains("apply encryptiongateways/status ns/gw"))
        #expect(h.events.contains { $0["reason"] == "Applied" })
        h.syncCaches()
        let before = h.client.writes.count
        guard case .done = h.run() else { Issue.record("expected done"); return }
        #expect(h.client.writes.count == before, "second pass wrote: \(h.client.writes.dropFirst(before))")
    }

    @Test func statusGaugesFollowTheResourceAndDisappearWithIt() throws {
        let h = Harness()
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        _ = h.run()
        h.syncCaches()
        var deployment = try #require(h.children[.deployment]!.get(h.key))
        deployment["status"] = ["replicas": 3, "readyReplicas": 1, "updatedReplicas": 3, "availableReplicas": 1,
                                "observedGeneration": deployment[path: "metadata", "generation"] ?? 1]
        h.children[.deployment]!.upsert(deployment)
        _ = h.run()
        let page = h.metrics.exposition()
        #expect(page.contains("encryptiongateway_status_replicas{namespace=\"ns\",name=\"gw\"} 3"), "\(page)")
        #expect(page.contains("encryptiongateway_status_ready_replicas{namespace=\"ns\",name=\"gw\"} 1"))
        #expect(page.contains("encryptiongateway_status_available_replicas{namespace=\"ns\",name=\"gw\"} 1"))
        #expect(page.contains("encryptiongateway_status_condition{namespace=\"ns\",name=\"gw\",type=\"Degraded\"} 0"))
        let ready = h.condition("Ready")?["status"]?.string == "True" ? 1 : 0
        #expect(page.contains("encryptiongateway_status_condition{namespace=\"ns\",name=\"gw\",type=\"Ready\"} \(ready)"))
        // Deleted: its series go too (no alert about a resource that no longer exists).
        h.gateways.delete(h.key)
        _ = h.run()
        #expect(!h.metrics.exposition().contains("name=\"gw\""))
    }

    @Test func missingSecretDegradesWithoutApplyingAnythingThenRecovers() {
        let h = Harness(secrets: false)
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        h.addSecret("b", ["accessKeyID", "secretAccessKey"])
        h.addSecret("c", ["accessKeyID", "secretAccessKey"])
        h.addSecret("e", ["wrong-key"])
        guard case .done = h.run() else { Issue.record("a missing Secret is not retried with backoff"); return }
        #expect(h.client.writes.filter { !$0.hasPrefix("create ") }.allSatisfy { $0.contains("/status") }, "\(h.client.writes)")
        #expect(h.condition("Degraded")?["reason"] == "SecretKeyNotFound")
        #expect(h.condition("Degraded")?["message"]?.string?.contains("Secret ns/e has no key \"password\"") == true)
        #expect(h.events.contains { $0["reason"] == "SecretKeyNotFound" && $0["type"] == "Warning" })
        h.secrets.delete(ObjectKey(namespace: "ns", name: "e"))
        h.syncCaches()
        _ = h.run()
        #expect(h.condition("Degraded")?["reason"] == "SecretNotFound")
        h.addSecret("e", ["password"])
        h.syncCaches()
        _ = h.run()
        #expect(h.condition("Degraded")?["status"] == "False")
        #expect(h.events.contains { $0["reason"] == "Recovered" })
        #expect(h.client.writes.contains("apply deployments ns/gw"))
    }

    @Test func secretDataChangeChangesTheHashOnly() throws {
        let h = Harness()
        let first = try #require(try? h.reconciler.secretHash(BuildersTests.snapshot().resource).get())
        h.addSecret("e", ["password"], value: "djI=")
        let second = try #require(try? h.reconciler.secretHash(BuildersTests.snapshot().resource).get())
        #expect(first != second)
        // The cache keeps hashes only: no value, no last-applied annotation.
        let cached = h.secrets.get(ObjectKey(namespace: "ns", name: "e"))
        #expect(cached?[path: "data", "password"]?.string?.count == 64)
        #expect(cached?[path: "metadata", "annotations"] == nil)
    }

    @Test func tlsSecretMustExistButItsRotationDoesNotRollThePods() throws {
        var spec = APITypesTests.minimalSpec
        spec["tls"] = ["secretName": "tls"]
        let h = Harness(spec: spec)
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        _ = h.run()
        #expect(h.condition("Degraded")?["reason"] == "SecretNotFound")
        h.addSecret("tls", ["tls.crt", "tls.key"])
        let resource = GatewayResource.parse(h.gateways.get(h.key)!).resource
        let before = try #require(try? h.reconciler.secretHash(resource).get())
        h.addSecret("tls", ["tls.crt", "tls.key"], value: "cm90YXRlZA==")
        #expect((try? h.reconciler.secretHash(resource).get()) == before, "the gateway reloads certificates itself")
    }

    @Test func invalidSpecIsReportedAndNothingApplied() {
        var spec = APITypesTests.minimalSpec
        spec["autoscaling"] = ["enabled": true, "minReplicas": 9, "maxReplicas": 3]
        let h = Harness(spec: spec)
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        _ = h.run()
        #expect(h.client.writes.filter { !$0.hasPrefix("create ") }.allSatisfy { $0.contains("/status") })
        #expect(h.condition("Degraded")?["reason"] == "InvalidSpec")
        #expect(h.condition("Degraded")?["message"]?.string?.contains("minReplicas must not exceed maxReplicas") == true)
    }

    @Test func disabledFeatureDeletesItsChildButNotForeignOnes() {
        let h = Harness()
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        _ = h.run()
        h.syncCaches()
        var spec = APITypesTests.minimalSpec
        spec["podDisruptionBudget"] = ["enabled": false]
        spec["networkPolicy"] = ["enabled": false]
        var gw = h.gateways.get(h.key)!
        gw["spec"] = spec
        h.gateways.upsert(gw)
        // Someone else's NetworkPolicy of the same name is not ours to delete.
        var foreign = h.children[.networkPolicy]!.get(h.key)!
        foreign["metadata"]?["ownerReferences"] = [["controller": true, "uid": "someone-else"]]
        h.children[.networkPolicy]!.upsert(foreign)
        _ = h.run()
        #expect(h.client.writes.contains("delete poddisruptionbudgets ns/gw"))
        #expect(!h.client.writes.contains("delete networkpolicies ns/gw"))
    }

    /// A proxy that would be asked for an in-cluster backend is a Warning when the Deployment is applied with it,
    /// not on every reconcile; fixing noProxy rolls the Deployment again, without the warning.
    @Test func proxiedClusterBackendIsAWarningWhenApplied() {
        var spec = APITypesTests.minimalSpec
        spec["backend"]?["endpoint"] = "http://rook-ceph-rgw.rook-ceph.svc"
        spec["proxy"] = ["url": "http://proxy.corp:3128", "noProxy": ["10.0.0.0/8"]]
        let h = Harness(spec: spec)
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        _ = h.run()
        let warnings = { h.events.filter { $0["reason"] == "ProxiedClusterHost" } }
        #expect(warnings().count == 1)
        #expect(warnings().first?["type"] == "Warning")
        #expect(warnings().first?["note"]?.string?.contains("Add .svc to spec.proxy.noProxy") == true)
        h.syncCaches()
        _ = h.run()
        #expect(warnings().count == 1, "an unchanged resource warned again")
        spec["proxy"]?["noProxy"] = ["10.0.0.0/8", ".svc"]
        var gw = h.gateways.get(h.key)!
        gw["spec"] = spec
        h.gateways.upsert(gw)
        _ = h.run()
        #expect(h.client.writes.filter { $0 == "apply deployments ns/gw" }.count == 2)
        #expect(warnings().count == 1)
    }

    @Test func aCancelledReconcileWritesNothing() {
        let h = Harness()
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        let token = CancellationToken()
        token.cancel()
        guard case .error(let e) = h.run(ReconcileContext(cancellation: token)), e is ReconcileCancelled else {
            Issue.record("expected a cancellation error")
            return
        }
        #expect(h.client.writes.isEmpty)
    }

    @Test func leadershipLossCancelsTheReconcileInFlight() {
        // A reconciler that blocks mid-way, like one waiting for a slow API server, then tries to write.
        final class Slow: Reconciler, Sendable {
            let entered = StopSignal(), release = StopSignal()
            let wrote = Mutex(false), result = Mutex<String?>(nil)
            func reconcile(_ key: ObjectKey, context: ReconcileContext) -> ReconcileResult {
                entered.stop()
                release.wait(timeout: .seconds(30))
                do {
                    try context.checkNotCancelled()
                    wrote.withLock { $0 = true }
                    result.withLock { $0 = "wrote" }
                    return .done
                } catch {
                    result.withLock { $0 = "cancelled" }
                    return .error(error)
                }
            }
        }
        let slow = Slow()
        let controller = Controller(name: "c", reconciler: slow)
        controller.start()
        controller.queue.add(ObjectKey(namespace: "ns", name: "a"))
        #expect(slow.entered.wait(timeout: .seconds(10)))
        controller.stopNow()  // what the manager does when the Lease is lost
        slow.release.stop()
        #expect(eventually { slow.result.withLock { $0 } != nil })
        #expect(slow.result.withLock { $0 } == "cancelled" && !slow.wrote.withLock { $0 })
    }
}
