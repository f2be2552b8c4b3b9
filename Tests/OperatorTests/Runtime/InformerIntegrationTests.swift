import Foundation
import Shared
import Testing
@testable import Operator

/// The informer against the Python test API server (a real process, real sockets, the real REST client).
@Suite(.serialized) struct InformerIntegrationTests {
    static let namespace = "team"

    static func configMap(_ name: String, namespace: String = InformerIntegrationTests.namespace,
                          data: String = "v", labels: [String: JSONValue] = [:]) -> JSONValue {
        ["apiVersion": "v1", "kind": "ConfigMap",
         "metadata": ["name": .string(name), "namespace": .string(namespace), "labels": .object(labels)],
         "data": ["k": .string(data)]]
    }

    static func informerConfig(labelSelector: String? = nil) -> InformerConfiguration {
        var c = InformerConfiguration(resource: .configMaps, namespace: namespace, labelSelector: labelSelector)
        c.pageSize = 2
        c.backoff = Backoff(initial: .milliseconds(50), cap: .milliseconds(200))
        return c
    }

    /// Requests the server saw, as (isWatch, resourceVersion) for configmap requests.
    static func configMapRequests(_ server: TestAPIServer) throws -> [(watch: Bool, resourceVersion: String?, query: JSONValue)] {
        let all = try server.control("GET", "requests")["requests"]?.array ?? []
        return all.filter { $0["method"] == "GET" && ($0["path"]?.string ?? "").hasSuffix("/configmaps") }.map { r in
            let q = r["query"] ?? [:]
            return (q["watch"] == "true" || q["watch"] == "1", q["resourceVersion"]?.string, q)
        }
    }

    static func serverResourceVersion(_ server: TestAPIServer) throws -> String {
        try server.control("GET", "healthz")["resourceVersion"]?.string ?? ""
    }

    /// Watches fail (HTTP 500) while the world changes and the history is compacted; when they come back, the
    /// resumed watch gets 410 and the relist reports exactly what happened while away.
    @Test(arguments: [false, true])
    func relistAfterExpiryReportsChangesMissedWhileAway(expiredAsHTTPStatus: Bool) throws {
        let server = try TestAPIServer()
        try server.control("POST", "config", ["expiredWatchAsHTTPStatus": .bool(expiredAsHTTPStatus)])
        let kube = server.client()
        for name in ["a", "b", "c", "d", "e"] { _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap(name)) }
        _ = try kube.create(.configMaps, namespace: "elsewhere", Self.configMap("x", namespace: "elsewhere"))

        let recorder = EventRecorder()
        let informer = SharedInformer(client: kube, configuration: Self.informerConfig())
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(informer.waitForSync(timeout: .seconds(60)))
        #expect(informer.store.keys().map(\.name) == ["a", "b", "c", "d", "e"])
        #expect(recorder.all.sorted() == ["add team/a", "add team/b", "add team/c", "add team/d", "add team/e"])
        // The list was paged (pageSize 2).
        let lists = try Self.configMapRequests(server).filter { !$0.watch }
        #expect(lists.count == 3)
        #expect(eventually { ((try? server.control("GET", "watches")["active"]?.int) ?? 0) == 1 })
        recorder.clear()

        // Take the watch down and keep it down.
        try server.control("POST", "inject", ["pathPrefix": "/api/v1/namespaces/team/configmaps", "watch": true,
                                              "code": 500, "reason": "InternalError", "count": 100000])
        try server.control("POST", "drop-watches")
        try kube.delete(.configMaps, ObjectKey(namespace: Self.namespace, name: "b"), propagation: nil)
        var c = try kube.get(.configMaps, ObjectKey(namespace: Self.namespace, name: "c"))
        c["data"] = ["k": "changed"]
        _ = try kube.update(.configMaps, c)
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("f"))
        try server.control("POST", "compact")
        let listsBefore = informer.counters.lists
        try server.control("DELETE", "inject")

        #expect(eventually(.seconds(60)) { informer.counters.lists > listsBefore && recorder.all.count >= 3 })
        let events = recorder.all
        #expect(events.contains("delete team/b"))
        #expect(events.contains("add team/f"))
        #expect(events.contains { $0.hasPrefix("update team/c ") })
        #expect(events.count == 3)
        #expect(informer.store.keys().map(\.name) == ["a", "c", "d", "e", "f"])
        #expect(informer.store.get(ObjectKey(namespace: Self.namespace, name: "c"))?[path: "data", "k"] == "changed")

        // And it keeps watching afterwards.
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("g"))
        #expect(eventually(.seconds(60)) { recorder.all.contains("add team/g") })
    }

    /// A connection dropped mid-stream resumes from the last resourceVersion (no relist) and sees later changes.
    @Test func droppedConnectionResumesAndSeesLaterChanges() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("a"))
        let recorder = EventRecorder()
        let informer = SharedInformer(client: kube, configuration: Self.informerConfig())
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(informer.waitForSync(timeout: .seconds(60)))
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("b"))
        #expect(eventually(.seconds(60)) { recorder.all.contains("add team/b") })
        let resumeFrom = informer.lastSyncResourceVersion
        #expect(eventually { ((try? server.control("GET", "watches")["active"]?.int) ?? 0) == 1 })

        try server.control("POST", "drop-watches")
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("c"))
        try kube.delete(.configMaps, ObjectKey(namespace: Self.namespace, name: "a"), propagation: nil)
        #expect(eventually(.seconds(60)) { recorder.all.contains("add team/c") && recorder.all.contains("delete team/a") })
        #expect(informer.counters.lists == 1)
        #expect(informer.store.keys().map(\.name) == ["b", "c"])
        let watches = try Self.configMapRequests(server).filter(\.watch)
        #expect(watches.count >= 2)
        #expect(watches.dropFirst().contains { $0.resourceVersion == resumeFrom })
        // Every watch asked for bookmarks and a server-side timeout.
        for w in watches {
            #expect(w.query["allowWatchBookmarks"] == "true")
            #expect(w.query["timeoutSeconds"]?.string.flatMap(Int.init) != nil)
        }
    }

    /// Bookmarks move the informer's resourceVersion forward even when nothing it watches changes, so a resumed
    /// watch starts from the bookmark rather than from the last object.
    @Test func bookmarksAdvanceTheResourceVersion() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("a"))
        let informer = SharedInformer(client: kube, configuration: Self.informerConfig())
        let recorder = EventRecorder()
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(informer.waitForSync(timeout: .seconds(60)))
        let listed = informer.lastSyncResourceVersion
        // Changes in another namespace: invisible to this watch, but they advance the global resourceVersion.
        for i in 0..<3 { _ = try kube.create(.configMaps, namespace: "elsewhere", Self.configMap("o\(i)", namespace: "elsewhere")) }
        let target = try Self.serverResourceVersion(server)
        #expect(Int(target)! > Int(listed)!)
        #expect(eventually(.seconds(60)) { informer.lastSyncResourceVersion == target })
        #expect(recorder.all == ["add team/a"])
        try server.control("POST", "drop-watches")
        #expect(eventually(.seconds(60)) { ((try? Self.configMapRequests(server).filter(\.watch).map(\.resourceVersion)) ?? []).contains(target) })
        #expect(informer.counters.lists == 1)
    }

    @Test func labelSelectorFiltersTheCache() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("mine", labels: ["app": "gw"]))
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("other", labels: ["app": "db"]))
        let informer = SharedInformer(client: kube, configuration: Self.informerConfig(labelSelector: "app=gw"))
        let recorder = EventRecorder()
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(informer.waitForSync(timeout: .seconds(60)))
        #expect(informer.store.keys().map(\.name) == ["mine"])
        // In watch order: if "later" arrives, "ignored" (written first) was filtered, not merely late.
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("ignored", labels: ["app": "db"]))
        _ = try kube.create(.configMaps, namespace: Self.namespace, Self.configMap("later", labels: ["app": "gw"]))
        #expect(eventually(.seconds(60)) { recorder.all.contains("add team/later") })
        #expect(!recorder.all.contains("add team/ignored"))
        #expect(informer.store.keys().map(\.name) == ["later", "mine"])
    }
}
