import Foundation
import Shared
import Synchronization
import Testing
@testable import Operator

/// The client and informer behaviours the Python test API server fakes, each exercised once against the real
/// kube-apiserver: paging, conflicts, server-side apply ownership, authentication and authorization errors, an
/// expired resourceVersion (410), and a watch cut by the API server going away, resumed when it comes back.
@Suite(.timeLimit(.minutes(3))) struct ClusterClientTests {
    let cluster: KubeCluster
    let kube: KubeRESTClient

    init() throws {
        cluster = try KubeCluster.get()
        kube = cluster.client()
    }

    static func configMap(_ name: String, _ data: [String: String] = [:]) -> JSONValue {
        ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name)], "data": .object(data.mapValues(JSONValue.string))]
    }

    @Test func pagingConflictsAndApplyOwnership() throws {
        let ns = try cluster.namespace("client")
        for i in 0..<5 { _ = try kube.create(.configMaps, namespace: ns, Self.configMap("cm\(i)")) }
        let first = try kube.list(.configMaps, namespace: ns, options: ListOptions(limit: 2))
        #expect(first.items.count == 2 && first.continueToken != nil)
        let all = try kube.listAll(.configMaps, namespace: ns, pageSize: 2)
        #expect(all.items.filter { $0.name?.hasPrefix("cm") == true }.count == 5)
        #expect(all.items.allSatisfy { $0["kind"] == "ConfigMap" && $0["apiVersion"] == "v1" })

        #expect { _ = try kube.create(.configMaps, namespace: ns, Self.configMap("cm0")) } throws: {
            if case KubeError.alreadyExists = $0 { true } else { false }
        }
        var stale = try kube.get(.configMaps, ObjectKey(namespace: ns, name: "cm1"))
        _ = try kube.mergePatch(.configMaps, ObjectKey(namespace: ns, name: "cm1"), ["data": ["a": "1"]])
        stale["data"] = ["b": "2"]
        #expect { _ = try kube.update(.configMaps, stale) } throws: { if case KubeError.conflict = $0 { true } else { false } }

        // Server-side apply: a field another manager owns conflicts unless forced.
        var applied = Self.configMap("cm2", ["k": "mine"])
        applied["metadata"]?["namespace"] = .string(ns)
        _ = try kube.apply(.configMaps, applied, fieldManager: "first", force: false)
        var other = applied
        other["data"] = ["k": "theirs"]
        #expect { _ = try kube.apply(.configMaps, other, fieldManager: "second", force: false) } throws: { error in
            if case KubeError.conflict(let m) = error { return m.contains("first") } else { return false }
        }
        let forced = try kube.apply(.configMaps, other, fieldManager: "second", force: true)
        #expect(forced[path: "data", "k"] == "theirs")
        // An identical apply changes nothing (same resourceVersion).
        let again = try kube.apply(.configMaps, other, fieldManager: "second", force: true)
        #expect(again.resourceVersion == forced.resourceVersion)

        #expect { _ = try kube.get(.configMaps, ObjectKey(namespace: ns, name: "nope")) } throws: {
            if case KubeError.notFound = $0 { true } else { false }
        }
        #expect { _ = try kube.create(.configMaps, namespace: ns, Self.configMap("Not_Valid")) } throws: {
            if case KubeError.invalid = $0 { true } else { false }
        }
    }

    @Test func authenticationAndAuthorizationErrors() throws {
        let stranger = cluster.client(token: "not-a-token")
        #expect { _ = try stranger.list(.configMaps, namespace: "default", options: ListOptions()) } throws: {
            if case KubeError.unauthorized = $0 { true } else { false }
        }
        let op = cluster.client(token: cluster.operatorToken)
        #expect { _ = try op.list(.leases, namespace: "default", options: ListOptions()) } throws: { error in
            if case KubeError.forbidden(let m) = error { return m.contains("system:serviceaccount:s3gateway-system") } else { return false }
        }
    }

    /// A second API server on the same etcd, without a watch cache (watches are served by etcd, whose history the
    /// test compacts), which the test stops and starts again on the same port.
    @Test func informerAcrossDroppedWatchesAndAnExpiredResourceVersion() throws {
        let ns = try cluster.namespace("drop")
        let port = try freePort()
        func startSecond() throws -> KubeCluster {
            try KubeCluster(arguments: ["--apiserver-only", "--etcd", cluster.etcd, "--port", "\(port)",
                                        "--apiserver-arg=--watch-cache=false"], dir: cluster.dir)
        }
        var second = try startSecond()
        defer { second.stop() }
        let client = cluster.client(server: second.server)
        _ = try kube.create(.configMaps, namespace: ns, Self.configMap("old"))
        var config = InformerConfiguration(resource: .configMaps, namespace: ns)
        config.backoff = Backoff(initial: .milliseconds(200), cap: .seconds(1))
        let informer = SharedInformer(client: client, configuration: config)
        let added = Mutex<[String]>([]), deleted = Mutex<[String]>([])
        informer.addEventHandler(ResourceEventHandler(onAdd: { o in added.withLock { $0.append(o.name ?? "") } },
                                                      onDelete: { o in deleted.withLock { $0.append(o.name ?? "") } }))
        informer.start()
        defer { informer.stop() }
        #expect(informer.waitForSync(timeout: .seconds(60)))
        #expect(added.withLock { $0.contains("old") })
        let lists = informer.counters.lists

        // 1. The API server goes away mid-watch and comes back: the informer watches again from its
        //    resourceVersion and sees what happened meanwhile, without a relist.
        var watches = informer.counters.watches
        second.stop()
        _ = try kube.create(.configMaps, namespace: ns, Self.configMap("while-away"))
        second = try startSecond()
        #expect(eventually(.seconds(90)) { added.withLock { $0.contains("while-away") } })
        #expect(informer.counters.watches > watches)
        #expect(informer.counters.lists == lists)

        // 2. Away again, and meanwhile the history it would resume from is compacted: 410 Gone, a relist, and the
        //    delete it missed is reported.
        let oldRV = informer.lastSyncResourceVersion
        watches = informer.counters.watches
        second.stop()
        try kube.delete(.configMaps, ObjectKey(namespace: ns, name: "old"), propagation: nil)
        _ = try kube.create(.configMaps, namespace: ns, Self.configMap("after-compaction"))
        try cluster.compactEtcd(try cluster.etcdRevision())
        second = try startSecond()
        #expect(eventually(.seconds(90)) { deleted.withLock { $0.contains("old") } && added.withLock { $0.contains("after-compaction") } })
        #expect(informer.counters.lists == lists + 1)

        // The same 410 seen by a plain watch from that resourceVersion.
        var gone = false
        do {
            try client.watch(.configMaps, namespace: ns, options: WatchOptions(resourceVersion: oldRV, timeoutSeconds: 5),
                             cancellation: CancellationToken()) { event in
                if case .error(let status) = event, case .gone = KubeStatus.error(fromStatus: status) { gone = true }
                throw KubeError.transport("stop")
            }
        } catch .gone {
            gone = true
        } catch {
        }
        #expect(gone)
    }
}
