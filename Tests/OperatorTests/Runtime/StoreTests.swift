import Testing
@testable import Operator

func testObject(_ namespace: String?, _ name: String, rv: String = "1", spec: JSONValue = [:]) -> JSONValue {
    var meta: [String: JSONValue] = ["name": .string(name), "resourceVersion": .string(rv)]
    if let namespace { meta["namespace"] = .string(namespace) }
    return ["metadata": .object(meta), "spec": spec]
}

@Suite struct StoreTests {
    static let secretIndex = EventMapping.secretReferenceIndex(
        EventMapping.strings(atPaths: [["spec", "passwordSecretRef", "name"], ["spec", "keys", "*", "secretName"]]))

    @Test func upsertGetDeleteList() {
        let store = Store()
        #expect(store.upsert(testObject("ns", "b")) == nil)
        #expect(store.upsert(testObject("ns", "a")) == nil)
        #expect(store.upsert(testObject(nil, "cluster")) == nil)
        let old = store.upsert(testObject("ns", "a", rv: "2"))
        #expect(old?.resourceVersion == "1")
        #expect(store.get(ObjectKey(namespace: "ns", name: "a"))?.resourceVersion == "2")
        #expect(store.keys().map(\.description) == ["cluster", "ns/a", "ns/b"])
        #expect(store.delete(ObjectKey(namespace: "ns", name: "b"))?.name == "b")
        #expect(store.delete(ObjectKey(namespace: "ns", name: "b")) == nil)
        #expect(store.list().compactMap(\.name) == ["cluster", "a"])
        // Objects without a name cannot be keyed and are ignored.
        #expect(store.upsert(["metadata": [:]]) == nil)
        #expect(store.count == 2)
    }

    @Test func indexFollowsUpdatesAndDeletes() {
        let store = Store(indexers: ["secret": Self.secretIndex])
        store.upsert(testObject("ns", "gw1", spec: ["passwordSecretRef": ["name": "pw"],
                                                    "keys": [["secretName": "k1"], ["secretName": "k2"]]]))
        store.upsert(testObject("ns", "gw2", spec: ["passwordSecretRef": ["name": "pw"]]))
        store.upsert(testObject("other", "gw3", spec: ["passwordSecretRef": ["name": "pw"]]))
        #expect(store.keys(byIndex: "secret", "ns/pw").map(\.name) == ["gw1", "gw2"])
        #expect(store.keys(byIndex: "secret", "other/pw").map(\.name) == ["gw3"])
        #expect(store.byIndex("secret", "ns/k2").compactMap(\.name) == ["gw1"])
        // gw1 stops referencing pw.
        store.upsert(testObject("ns", "gw1", rv: "2", spec: ["passwordSecretRef": ["name": "pw2"]]))
        #expect(store.keys(byIndex: "secret", "ns/pw").map(\.name) == ["gw2"])
        #expect(store.keys(byIndex: "secret", "ns/k2").isEmpty)
        #expect(store.keys(byIndex: "secret", "ns/pw2").map(\.name) == ["gw1"])
        store.delete(ObjectKey(namespace: "ns", name: "gw2"))
        #expect(store.keys(byIndex: "secret", "ns/pw").isEmpty)
        #expect(store.byIndex("no-such-index", "ns/pw").isEmpty)
    }

    @Test func replaceReportsAddedUpdatedDeletedAndReindexes() {
        let store = Store(indexers: ["secret": Self.secretIndex])
        store.upsert(testObject("ns", "keep", rv: "5"))
        store.upsert(testObject("ns", "change", rv: "6"))
        store.upsert(testObject("ns", "gone", rv: "7", spec: ["passwordSecretRef": ["name": "pw"]]))
        let diff = store.replace(with: [
            testObject("ns", "keep", rv: "5"),
            testObject("ns", "change", rv: "9"),
            testObject("ns", "new", rv: "10", spec: ["passwordSecretRef": ["name": "pw"]]),
        ])
        #expect(diff.added.compactMap(\.name) == ["new"])
        #expect(diff.updated.map { "\($0.old.resourceVersion!)->\($0.new.resourceVersion!)" } == ["6->9"])
        #expect(diff.deleted.compactMap(\.name) == ["gone"])
        #expect(store.keys().map(\.name) == ["change", "keep", "new"])
        #expect(store.keys(byIndex: "secret", "ns/pw").map(\.name) == ["new"])
    }
}

@Suite struct EventMappingTests {
    static func child(_ refs: [JSONValue], namespace: String = "ns") -> JSONValue {
        ["metadata": ["name": "child", "namespace": .string(namespace), "ownerReferences": .array(refs)]]
    }

    static func ref(_ apiVersion: String, _ kind: String, _ name: String, controller: Bool?) -> JSONValue {
        var o: [String: JSONValue] = ["apiVersion": .string(apiVersion), "kind": .string(kind),
                                      "name": .string(name), "uid": .string("u-\(name)")]
        if let controller { o["controller"] = .bool(controller) }
        return .object(o)
    }

    struct OwnerCase: Sendable, CustomTestStringConvertible {
        var label: String
        var child: JSONValue
        var expected: ObjectKey?
        var testDescription: String { label }
    }

    static let ownerCases: [OwnerCase] = [
        OwnerCase(label: "controller owner of the kind",
                  child: child([ref("s3gateway.dev/v1alpha1", "EncryptionGateway", "gw", controller: true)]),
                  expected: ObjectKey(namespace: "ns", name: "gw")),
        OwnerCase(label: "other version of the same group matches",
                  child: child([ref("s3gateway.dev/v1", "EncryptionGateway", "gw", controller: true)]),
                  expected: ObjectKey(namespace: "ns", name: "gw")),
        OwnerCase(label: "non-controller reference is ignored",
                  child: child([ref("s3gateway.dev/v1alpha1", "EncryptionGateway", "gw", controller: false)]),
                  expected: nil),
        OwnerCase(label: "missing controller flag is ignored",
                  child: child([ref("s3gateway.dev/v1alpha1", "EncryptionGateway", "gw", controller: nil)]),
                  expected: nil),
        OwnerCase(label: "controller of another kind",
                  child: child([ref("apps/v1", "ReplicaSet", "rs", controller: true)]),
                  expected: nil),
        OwnerCase(label: "same kind in another group",
                  child: child([ref("example.com/v1", "EncryptionGateway", "gw", controller: true)]),
                  expected: nil),
        OwnerCase(label: "controller found among several references",
                  child: child([ref("v1", "ConfigMap", "cm", controller: false),
                                ref("s3gateway.dev/v1alpha1", "EncryptionGateway", "gw2", controller: true)],
                               namespace: "team"),
                  expected: ObjectKey(namespace: "team", name: "gw2")),
        OwnerCase(label: "no ownerReferences", child: ["metadata": ["name": "x", "namespace": "ns"]], expected: nil),
        OwnerCase(label: "empty owner name",
                  child: child([ref("s3gateway.dev/v1alpha1", "EncryptionGateway", "", controller: true)]),
                  expected: nil),
    ]

    @Test(arguments: ownerCases)
    func controllerOwner(_ c: OwnerCase) {
        #expect(EventMapping.controllerOwner(of: c.child, ownerGroup: "s3gateway.dev", ownerKind: "EncryptionGateway") == c.expected)
    }

    @Test func clusterScopedOwnerHasNoNamespace() {
        let c = Self.child([Self.ref("v1", "Namespace", "team", controller: true)])
        #expect(EventMapping.controllerOwner(of: c, ownerGroup: "", ownerKind: "Namespace", ownerNamespaced: false)
                == ObjectKey(namespace: nil, name: "team"))
    }

    @Test(arguments: [("apps/v1", "apps"), ("v1", ""), ("s3gateway.dev/v1alpha1", "s3gateway.dev")])
    func groupOfAPIVersion(_ apiVersion: String, _ group: String) {
        #expect(EventMapping.group(ofAPIVersion: apiVersion) == group)
    }

    @Test func secretMapsToEveryReferrerInItsNamespace() {
        let owners = Store(indexers: ["secret": StoreTests.secretIndex])
        owners.upsert(testObject("ns", "a", spec: ["passwordSecretRef": ["name": "pw"]]))
        owners.upsert(testObject("ns", "b", spec: ["keys": [["secretName": "pw"], ["secretName": "old"]]]))
        owners.upsert(testObject("ns", "c", spec: ["passwordSecretRef": ["name": "other"]]))
        owners.upsert(testObject("elsewhere", "d", spec: ["passwordSecretRef": ["name": "pw"]]))
        let secret = testObject("ns", "pw")
        #expect(EventMapping.referrers(of: secret, in: owners, indexName: "secret").map(\.description) == ["ns/a", "ns/b"])
        #expect(EventMapping.referrers(of: testObject("ns", "unused"), in: owners, indexName: "secret").isEmpty)
    }

    @Test func stringsAtPathsSkipsNonStringsAndMissingPaths() {
        let extract = EventMapping.strings(atPaths: [["spec", "a"], ["spec", "list", "*", "n"], ["spec", "missing", "x"]])
        let object: JSONValue = ["spec": ["a": 5, "list": [["n": "x"], ["n": true], ["m": "y"], "plain", ["n": "z"]]]]
        #expect(extract(object) == ["x", "z"])
    }

    @Test func enqueueHandlerMapsOldAndNewOnUpdate() {
        let q = WorkQueue<ObjectKey>()
        let handler = ResourceEventHandler.enqueue(q) { object in
            EventMapping.controllerOwner(of: object, ownerGroup: "s3gateway.dev", ownerKind: "EncryptionGateway").map { [$0] } ?? []
        }
        let old = Self.child([Self.ref("s3gateway.dev/v1alpha1", "EncryptionGateway", "first", controller: true)])
        let new = Self.child([Self.ref("s3gateway.dev/v1alpha1", "EncryptionGateway", "second", controller: true)])
        handler.onUpdate(old, new)
        handler.onAdd(testObject("ns", "unowned"))
        var got: [String] = []
        while q.depth > 0, let k = q.get() { got.append(k.description); q.done(k) }
        #expect(got.sorted() == ["ns/first", "ns/second"])
    }
}
