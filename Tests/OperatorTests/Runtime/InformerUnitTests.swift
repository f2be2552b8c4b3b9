import Foundation
import Shared
import Testing
@testable import Operator

/// The informer's list/watch state machine against a scripted fake client (the real protocol is covered by
/// `InformerIntegrationTests` against the test API server).
@Suite struct InformerUnitTests {
    static let gvr = GroupVersionResource.configMaps

    static func config() -> InformerConfiguration {
        var c = InformerConfiguration(resource: gvr, namespace: "ns")
        c.backoff = Backoff(initial: .milliseconds(1), cap: .milliseconds(5))
        c.minimumWatchDuration = .zero
        c.watchTimeoutSeconds = 7...9
        return c
    }

    @Test func listsAllPagesThenWatchesFromTheListResourceVersion() throws {
        let client = FakeKubeClient()
        client.seed(Self.gvr, (0..<5).map { testObject("ns", "o\($0)") })
        let recorder = EventRecorder()
        let informer = SharedInformer(client: client, configuration: Self.config())
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(informer.waitForSync(timeout: .seconds(20)))
        #expect(informer.store.count == 5)
        #expect(recorder.all.sorted() == (0..<5).map { "add ns/o\($0)" })
        #expect(eventually { !client.watchRequests.isEmpty })
        let w = try #require(client.watchRequests.first)
        #expect(w.resourceVersion == "105")
        #expect(w.allowWatchBookmarks)
        #expect((7...9).contains(w.timeoutSeconds ?? 0))
    }

    @Test func normalEndRewatchesFromLastSeenVersionIncludingBookmarks() {
        let client = FakeKubeClient()
        client.seed(Self.gvr, [testObject("ns", "a")])
        client.scriptWatches([
            .events([.added(testObject("ns", "b", rv: "120")), .bookmark(resourceVersion: "130")]),
            .events([.modified(testObject("ns", "a", rv: "140"))]),
        ])
        let recorder = EventRecorder()
        let informer = SharedInformer(client: client, configuration: Self.config())
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(eventually { client.watchRequests.count >= 3 })
        #expect(client.watchRequests.prefix(3).map(\.resourceVersion) == ["101", "130", "140"])
        #expect(recorder.all == ["add ns/a", "add ns/b", "update ns/a 101->140"])
        #expect(client.listCount == 1)
    }

    @Test func goneInStreamRelistsAndReportsWhatChangedWhileAway() {
        let client = FakeKubeClient()
        client.seed(Self.gvr, [testObject("ns", "keep"), testObject("ns", "vanish"), testObject("ns", "change")])
        let gate = StopSignal()
        client.scriptWatches([
            .gated(gate, [.error(status: ["kind": "Status", "code": 410, "reason": "Expired", "message": "too old"])]),
        ])
        let recorder = EventRecorder()
        let informer = SharedInformer(client: client, configuration: Self.config())
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(informer.waitForSync(timeout: .seconds(20)))
        #expect(recorder.all.sorted() == ["add ns/change", "add ns/keep", "add ns/vanish"])
        recorder.clear()
        // Changes the watch never reports; then the stream says 410.
        client.seed(Self.gvr, [testObject("ns", "change"), testObject("ns", "new")])
        client.remove(Self.gvr, ObjectKey(namespace: "ns", name: "keep"))
        client.remove(Self.gvr, ObjectKey(namespace: "ns", name: "vanish"))
        gate.stop()
        #expect(eventually { client.listCount == 2 && recorder.all.count == 4 })
        #expect(recorder.all == ["delete ns/keep", "delete ns/vanish", "update ns/change 103->104", "add ns/new"])
        #expect(informer.store.keys().map(\.name) == ["change", "new"])
        // The next watch starts from the relist's resourceVersion.
        #expect(eventually { client.watchRequests.count == 2 })
        #expect(client.watchRequests.last?.resourceVersion == "107")
    }

    @Test func goneAsHTTPStatusRelists() {
        let client = FakeKubeClient()
        client.seed(Self.gvr, [testObject("ns", "a")])
        client.scriptWatches([.fail(.gone("expired"))])
        let informer = SharedInformer(client: client, configuration: Self.config())
        informer.start()
        defer { informer.stop() }
        #expect(eventually { client.listCount >= 2 })
    }

    @Test func transportFailureBacksOffAndResumesWithoutRelisting() {
        let client = FakeKubeClient()
        client.seed(Self.gvr, [testObject("ns", "a")])
        client.scriptWatches([.fail(.transport("connection reset")), .fail(.transport("refused")),
                              .events([.added(testObject("ns", "b", rv: "150"))])])
        let recorder = EventRecorder()
        let informer = SharedInformer(client: client, configuration: Self.config())
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(eventually { client.watchRequests.count >= 4 })
        #expect(client.watchRequests.prefix(4).map(\.resourceVersion) == ["101", "101", "101", "150"])
        #expect(client.listCount == 1)
        #expect(recorder.all == ["add ns/a", "add ns/b"])
    }

    @Test func forbiddenWatchStartsOverWithAList() {
        let client = FakeKubeClient()
        client.seed(Self.gvr, [testObject("ns", "a")])
        client.scriptWatches([.fail(.forbidden("no"))])
        let informer = SharedInformer(client: client, configuration: Self.config())
        informer.start()
        defer { informer.stop() }
        #expect(eventually { client.listCount >= 2 })
    }

    @Test func stopEndsABlockedWatch() {
        let client = FakeKubeClient()
        let informer = SharedInformer(client: client, configuration: Self.config())
        informer.start()
        #expect(eventually { client.watchRequests.count == 1 })
        #expect(informer.stop(timeout: .seconds(20)))
    }

    @Test func transformAppliesToListedAndWatchedObjects() {
        let client = FakeKubeClient()
        var listed = testObject("ns", "listed")
        listed["metadata"]?["managedFields"] = [["manager": "x"]]
        client.seed(Self.gvr, [listed])
        var watched = testObject("ns", "watched", rv: "900")
        watched["metadata"]?["managedFields"] = [["manager": "y"]]
        client.scriptWatches([.eventsThenBlock([.added(watched)])])
        var c = Self.config()
        c.transform = { o in
            var o = InformerConfiguration.dropManagedFields(o)
            o["metadata"]?["labels"] = ["seen": "yes"]
            return o
        }
        let informer = SharedInformer(client: client, configuration: c)
        let recorder = EventRecorder()
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        #expect(eventually { informer.store.count == 2 })
        for name in ["listed", "watched"] {
            let o = informer.store.get(ObjectKey(namespace: "ns", name: name))
            #expect(o?[path: "metadata", "managedFields"] == nil && o?[path: "metadata", "labels", "seen"] == "yes")
        }
    }

    @Test func resyncRedeliversEveryCachedObjectAsAnUpdate() {
        let client = FakeKubeClient()
        client.seed(Self.gvr, [testObject("ns", "a"), testObject("ns", "b")])
        var c = Self.config()
        c.resyncPeriod = .milliseconds(50)
        let informer = SharedInformer(client: client, configuration: c)
        let recorder = EventRecorder()
        informer.addEventHandler(recorder.handler)
        informer.start()
        defer { informer.stop() }
        // Same object, same resourceVersion: "update ns/a 101->101".
        #expect(eventually { recorder.all.filter { $0.hasPrefix("update ns/a") }.count >= 2 })
        #expect(recorder.all.filter { $0.hasPrefix("update ns/b") }.allSatisfy { $0 == "update ns/b 102->102" })
    }
}
