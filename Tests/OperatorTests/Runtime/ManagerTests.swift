import Foundation
import Shared
import Glibc
import Synchronization
import Testing
@testable import Operator

@Suite struct ManagerTests {
    static let gateways = GroupVersionResource.encryptionGateways

    static func managerConfig(election: Bool) -> ManagerConfiguration {
        var c = ManagerConfiguration()
        c.healthProbeBindAddress = "127.0.0.1:0"
        c.metricsBindAddress = "127.0.0.1:0"
        c.gracefulShutdownTimeout = .seconds(30)
        if election { c.leaderElection = LeaderElectorTests.config("me") }
        return c
    }

    @Test func runsProbesElectsReconcilesAndShutsDownReleasingTheLease() throws {
        let client = FakeKubeClient()
        client.seed(Self.gateways, [testObject("ns", "gw1"), testObject("ns", "gw2")])
        let reconciler = ScriptedReconciler()
        let manager = Manager(client: client, configuration: Self.managerConfig(election: true))
        let controller = Controller(name: "gw", reconciler: reconciler, workers: 2)
        manager.informer(InformerConfiguration(resource: Self.gateways)).addEventHandler(.enqueueObject(controller.queue))
        manager.add(controller)
        let exit = Mutex<ManagerExit?>(nil)
        let runner = TestThread { let e = manager.run(); exit.withLock { $0 = e } }

        #expect(eventually { manager.probeAddress != nil && manager.metricsAddress != nil })
        let probes = try #require(manager.probeAddress)
        #expect(rawGET(probes, "/healthz")?.status == 200)
        #expect(eventually { rawGET(probes, "/readyz")?.status == 200 })
        #expect(rawGET(probes, "/metrics")?.status == 404)
        #expect(rawGET(try #require(manager.metricsAddress), "/metrics")?.status == 200)
        #expect(eventually { reconciler.calls.sorted() == ["ns/gw1", "ns/gw2"] })
        #expect(manager.isLeader)
        #expect(LeaderElectorTests.holder(client, namespace: "ops") == "me")

        manager.requestShutdown()
        #expect(eventually { exit.withLock { $0 } != nil })
        #expect(exit.withLock { $0 } == .shutdown)
        #expect(LeaderElectorTests.holder(client, namespace: "ops") == "")
        runner.join()
        #expect(rawGET(probes, "/healthz") == nil)
    }

    @Test func readyzIsUnavailableUntilCachesSync() throws {
        let client = FakeKubeClient()
        // Every LIST fails until we allow it: the cache cannot sync.
        let manager = Manager(client: FailingListClient(inner: client), configuration: Self.managerConfig(election: false))
        _ = manager.informer(InformerConfiguration(resource: Self.gateways))
        let exit = Mutex<ManagerExit?>(nil)
        let runner = TestThread { let e = manager.run(); exit.withLock { $0 = e } }
        #expect(eventually { manager.probeAddress != nil })
        let probes = try #require(manager.probeAddress)
        #expect(rawGET(probes, "/healthz")?.status == 200)
        #expect(rawGET(probes, "/readyz")?.status == 503)
        manager.requestShutdown()
        #expect(eventually { exit.withLock { $0 } == .shutdown })
        runner.join()
    }

    @Test func losingTheLeaseStopsWorkAndReportsIt() {
        let client = FakeKubeClient()
        client.seed(Self.gateways, [testObject("ns", "gw1")])
        let reconciler = ScriptedReconciler()
        let manager = Manager(client: client, configuration: Self.managerConfig(election: true))
        let controller = Controller(name: "gw", reconciler: reconciler)
        manager.informer(InformerConfiguration(resource: Self.gateways)).addEventHandler(.enqueueObject(controller.queue))
        manager.add(controller)
        let exit = Mutex<ManagerExit?>(nil)
        let runner = TestThread { let e = manager.run(); exit.withLock { $0 = e } }
        #expect(eventually { reconciler.calls == ["ns/gw1"] })
        client.state.withLock { $0.failCreatesAndUpdates = .server(code: 503, reason: "ServiceUnavailable", message: "etcd down") }
        #expect(eventually(.seconds(60)) { exit.withLock { $0 } != nil })
        #expect(exit.withLock { $0 } == .leadershipLost)
        #expect(ManagerExit.leadershipLost.exitCode == 1)
        // No further reconciles after the loss.
        controller.queue.add(ObjectKey(namespace: "ns", name: "gw1"))
        Thread.sleep(forTimeInterval: 0.1)
        #expect(reconciler.calls == ["ns/gw1"])
        runner.join()
    }

    /// `run(prepare:)`: listeners answer while preparation (discovery) waits; informers made there run afterwards.
    @Test func prepareRunsWithListenersUpAndMayRegisterInformers() throws {
        let client = FakeKubeClient()
        client.seed(Self.gateways, [testObject("ns", "gw1")])
        let reconciler = ScriptedReconciler()
        let manager = Manager(client: client, configuration: Self.managerConfig(election: false))
        let controller = Controller(name: "gw", reconciler: reconciler)
        manager.add(controller)
        let gate = StopSignal()
        let healthyDuringPrepare = Mutex<Bool?>(nil)
        let exit = Mutex<ManagerExit?>(nil)
        let runner = TestThread {
            let e = manager.run(prepare: {
                let probes = manager.probeAddress ?? ""
                healthyDuringPrepare.withLock { $0 = rawGET(probes, "/healthz")?.status == 200 && rawGET(probes, "/readyz")?.status == 503 }
                gate.wait(timeout: .seconds(30))
                manager.informer(InformerConfiguration(resource: Self.gateways)).addEventHandler(.enqueueObject(controller.queue))
                return true
            })
            exit.withLock { $0 = e }
        }
        #expect(eventually { healthyDuringPrepare.withLock { $0 } == true })
        #expect(reconciler.calls.isEmpty)
        gate.stop()
        #expect(eventually { reconciler.calls == ["ns/gw1"] })
        manager.requestShutdown()
        #expect(eventually { exit.withLock { $0 } == .shutdown })
        runner.join()

        // Shutdown while preparing: prepare gives up and the run ends cleanly.
        let second = Manager(client: client, configuration: Self.managerConfig(election: false))
        let exit2 = Mutex<ManagerExit?>(nil)
        let runner2 = TestThread {
            let e = second.run(prepare: {
                while second.sleepUnlessShuttingDown(.milliseconds(20)) {}
                return false
            })
            exit2.withLock { $0 = e }
        }
        second.requestShutdown()
        #expect(eventually { exit2.withLock { $0 } == .shutdown })
        runner2.join()
    }

    /// `ControllerWiring`: a child event enqueues its controlling owner, a Secret event every gateway referencing it.
    @Test func wiringMapsChildrenAndSecretsToGateways() {
        let client = FakeKubeClient()
        func gateway(_ name: String, secret: String) -> JSONValue {
            var spec = APITypesTests.minimalSpec
            spec["encryption"]?["passwordSecretRef"]?["name"] = .string(secret)
            return testObject("ns", name, spec: spec)
        }
        client.seed(Self.gateways, [gateway("gw1", secret: "pw"), gateway("gw2", secret: "other"), gateway("gw3", secret: "pw")])
        let deploymentGate = StopSignal(), secretGate = StopSignal()
        var child = testObject("ns", "gw2-proxy", rv: "500")
        child["metadata"]?["ownerReferences"] = [["apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
                                                   "name": "gw2", "uid": "u2", "controller": true]]
        client.scriptWatches(.deployments, [.gated(deploymentGate, [.added(child)])])
        client.scriptWatches(.secrets, [.gated(secretGate, [.added(testObject("ns", "pw", rv: "501"))])])
        let reconciler = ScriptedReconciler()
        let manager = Manager(client: client, configuration: Self.managerConfig(election: false))
        let controller = Controller(name: "gw", reconciler: reconciler, workers: 2)
        let wiring = ControllerWiring(namespace: nil, capabilities: .current, syncPeriod: nil)
        _ = wiring.register(on: manager, controller: controller)
        manager.add(controller)
        let exit = Mutex<ManagerExit?>(nil)
        let runner = TestThread { let e = manager.run(); exit.withLock { $0 = e } }
        func count(_ key: String) -> Int { reconciler.calls.filter { $0 == key }.count }
        #expect(eventually { count("ns/gw1") == 1 && count("ns/gw2") == 1 && count("ns/gw3") == 1 })

        deploymentGate.stop()
        #expect(eventually { count("ns/gw2") == 2 })
        secretGate.stop()
        #expect(eventually { count("ns/gw1") == 2 && count("ns/gw3") == 2 })
        Thread.sleep(forTimeInterval: 0.1)
        #expect(count("ns/gw2") == 2)
        manager.requestShutdown()
        #expect(eventually { exit.withLock { $0 } == .shutdown })
        runner.join()
    }

    @Test func bindFailureFailsTheRun() {
        var config = Self.managerConfig(election: false)
        config.healthProbeBindAddress = "not-an-address"
        let manager = Manager(client: FakeKubeClient(), configuration: config)
        if case .failed = manager.run() {} else { Issue.record("expected .failed") }
    }
}

/// Wraps a client so every LIST fails.
struct FailingListClient: KubeClient {
    let inner: FakeKubeClient
    func get(_ r: GroupVersionResource, _ key: ObjectKey) throws(KubeError) -> JSONValue { try inner.get(r, key) }
    func list(_ r: GroupVersionResource, namespace: String?, options: ListOptions) throws(KubeError) -> ListPage {
        throw .server(code: 500, reason: "InternalError", message: "list disabled")
    }
    func watch(_ r: GroupVersionResource, namespace: String?, options: WatchOptions, cancellation: CancellationToken,
               onEvent: (WatchEvent) throws -> Void) throws(KubeError) {
        try inner.watch(r, namespace: namespace, options: options, cancellation: cancellation, onEvent: onEvent)
    }
    func create(_ r: GroupVersionResource, namespace: String?, _ o: JSONValue) throws(KubeError) -> JSONValue { try inner.create(r, namespace: namespace, o) }
    func update(_ r: GroupVersionResource, _ o: JSONValue) throws(KubeError) -> JSONValue { try inner.update(r, o) }
    func updateStatus(_ r: GroupVersionResource, _ o: JSONValue) throws(KubeError) -> JSONValue { try inner.updateStatus(r, o) }
    func apply(_ r: GroupVersionResource, _ o: JSONValue, fieldManager: String, force: Bool, subresource: String?) throws(KubeError) -> JSONValue {
        try inner.apply(r, o, fieldManager: fieldManager, force: force, subresource: subresource)
    }
    func mergePatch(_ r: GroupVersionResource, _ key: ObjectKey, _ patch: JSONValue) throws(KubeError) -> JSONValue { try inner.mergePatch(r, key, patch) }
    func delete(_ r: GroupVersionResource, _ key: ObjectKey, propagation: PropagationPolicy?) throws(KubeError) { try inner.delete(r, key, propagation: propagation) }
    func apiGroups() throws(KubeError) -> JSONValue { try inner.apiGroups() }
}
