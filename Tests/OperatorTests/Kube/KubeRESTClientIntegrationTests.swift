import Foundation
import Shared
import Synchronization
import Testing
@testable import Operator

/// The REST client against the test API server, a real process over real sockets.
@Suite(.serialized) struct KubeRESTClientIntegrationTests {
    static func configMap(_ name: String, _ data: [String: JSONValue] = ["k": "v"], labels: [String: JSONValue] = [:]) -> JSONValue {
        ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name), "labels": .object(labels)],
         "data": .object(data)]
    }

    static func gateway(_ name: String, spec: JSONValue) -> JSONValue {
        ["apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
         "metadata": ["name": .string(name), "namespace": "default"], "spec": spec]
    }

    @Test func crudWithConflictsAndNotFound() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        let key = ObjectKey(namespace: "default", name: "cm1")

        let created = try kube.create(.configMaps, namespace: "default", Self.configMap("cm1"))
        #expect(created.uid?.isEmpty == false)
        let rv1 = try #require(created.resourceVersion)
        #expect(throws: KubeError.self) { try kube.create(.configMaps, namespace: "default", Self.configMap("cm1")) }
        do { _ = try kube.create(.configMaps, namespace: "default", Self.configMap("cm1")) } catch {
            guard case .alreadyExists = error else { Issue.record("want alreadyExists, got \(error)"); return }
        }

        var got = try kube.get(.configMaps, key)
        #expect(got[path: "data", "k"] == "v")
        got["data"] = ["k": "v2"]
        let updated = try kube.update(.configMaps, got)
        #expect(updated[path: "data", "k"] == "v2")
        #expect(updated.resourceVersion != rv1)

        // The stale copy (rv1) must not overwrite.
        var stale = created
        stale["data"] = ["k": "stale"]
        do { _ = try kube.update(.configMaps, stale); Issue.record("stale update succeeded") } catch {
            guard case .conflict = error else { Issue.record("want conflict, got \(error)"); return }
        }

        let patched = try kube.mergePatch(.configMaps, key, ["data": ["extra": "x", "k": nil]])
        #expect(patched["data"] == ["extra": "x"])

        try kube.delete(.configMaps, key, propagation: .background)
        #expect(try kube.getIfExists(.configMaps, key) == nil)
        do { try kube.delete(.configMaps, key, propagation: nil); Issue.record("second delete succeeded") } catch {
            guard case .notFound = error else { Issue.record("want notFound, got \(error)"); return }
        }
    }

    @Test func pagedListWithSelectorsAndExpiredContinue() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        for i in 0..<7 {
            _ = try kube.create(.configMaps, namespace: "default",
                                Self.configMap("cm\(i)", labels: ["app": i % 2 == 0 ? "even" : "odd"]))
        }
        _ = try kube.create(.configMaps, namespace: "other", Self.configMap("elsewhere"))

        let all = try kube.listAll(.configMaps, namespace: "default", pageSize: 3)
        #expect(all.items.compactMap(\.name).sorted() == (0..<7).map { "cm\($0)" })
        #expect(all.items.allSatisfy { $0["kind"] == "ConfigMap" && $0["apiVersion"] == "v1" })
        #expect(!all.resourceVersion.isEmpty)
        #expect(try kube.listAll(.configMaps, namespace: nil, pageSize: 2).items.count == 8)

        let even = try kube.listAll(.configMaps, namespace: "default", labelSelector: "app=even")
        #expect(even.items.compactMap(\.name).sorted() == ["cm0", "cm2", "cm4", "cm6"])
        #expect(try kube.listAll(.configMaps, namespace: "default", labelSelector: "app!=even").items.count == 3)

        let first = try kube.list(.configMaps, namespace: "default", options: ListOptions(limit: 3))
        #expect(first.items.count == 3)
        let token = try #require(first.continueToken)
        try server.control("POST", "compact")
        do {
            _ = try kube.list(.configMaps, namespace: "default", options: ListOptions(limit: 3, continueToken: token))
            Issue.record("expired continue token accepted")
        } catch {
            guard case .gone = error else { Issue.record("want gone, got \(error)"); return }
        }
    }

    @Test func watchSeesAddModifyDeleteAndBookmarks() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        let start = try kube.list(.configMaps, namespace: "default", options: ListOptions()).resourceVersion
        _ = try kube.create(.configMaps, namespace: "default", Self.configMap("w1"))
        _ = try kube.mergePatch(.configMaps, ObjectKey(namespace: "default", name: "w1"), ["data": ["k": "changed"]])
        try kube.delete(.configMaps, ObjectKey(namespace: "default", name: "w1"), propagation: nil)
        _ = try kube.create(.configMaps, namespace: "other", Self.configMap("not-watched"))

        // Events after `start` are replayed; the watch is cancelled from inside the handler once a bookmark
        // arrived after the delete.
        let cancel = CancellationToken()
        var seen: [WatchEvent] = []
        try kube.watch(.configMaps, namespace: "default", options: WatchOptions(resourceVersion: start, timeoutSeconds: 60),
                       cancellation: cancel) { event in
            seen.append(event)
            if case .bookmark = event, seen.contains(where: { if case .deleted = $0 { true } else { false } }) {
                cancel.cancel()
            }
        }
        let kinds = seen.map { e -> String in
            switch e {
            case .added(let o): return "ADDED \(o.name ?? "")"
            case .modified(let o): return "MODIFIED \(o[path: "data", "k"]?.string ?? "")"
            case .deleted(let o): return "DELETED \(o.name ?? "")"
            case .bookmark: return "BOOKMARK"
            case .error: return "ERROR"
            }
        }
        #expect(Array(kinds.filter { $0 != "BOOKMARK" }) == ["ADDED w1", "MODIFIED changed", "DELETED w1"])
        #expect(kinds.last == "BOOKMARK")
    }

    @Test func watchEndsAtServerTimeoutWithABookmark() throws {
        let server = try TestAPIServer(arguments: ["--token", "t1", "--bookmark-interval", "30"])
        let kube = server.client()
        let rv = try kube.list(.configMaps, namespace: nil, options: ListOptions()).resourceVersion
        var events: [WatchEvent] = []
        try kube.watch(.configMaps, namespace: nil, options: WatchOptions(resourceVersion: rv, timeoutSeconds: 1),
                       cancellation: CancellationToken()) { events.append($0) }
        #expect(events == [.bookmark(resourceVersion: rv)])
    }

    @Test func expiredWatchIsAnInStreamErrorOrAnHTTP410() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        let old = try kube.create(.configMaps, namespace: "default", Self.configMap("a")).resourceVersion!
        _ = try kube.create(.configMaps, namespace: "default", Self.configMap("b"))
        try server.control("POST", "compact")

        var events: [WatchEvent] = []
        try kube.watch(.configMaps, namespace: "default", options: WatchOptions(resourceVersion: old),
                       cancellation: CancellationToken()) { events.append($0) }
        #expect(events.count == 1)
        guard case .error(let status)? = events.first else { Issue.record("want ERROR, got \(events)"); return }
        #expect(status["code"]?.int == 410)
        guard case .gone = KubeStatus.error(fromStatus: status) else { Issue.record("not gone: \(status)"); return }

        try server.control("POST", "config", ["expiredWatchAsHTTPStatus": true])
        do {
            try kube.watch(.configMaps, namespace: "default", options: WatchOptions(resourceVersion: old),
                           cancellation: CancellationToken()) { _ in Issue.record("event on a 410 answer") }
            Issue.record("watch from an expired resourceVersion returned normally")
        } catch {
            guard case .gone = error else { Issue.record("want gone, got \(error)"); return }
        }
    }

    @Test func droppedWatchConnectionThrowsInsteadOfHanging() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        let rv = try kube.list(.configMaps, namespace: nil, options: ListOptions()).resourceVersion
        let watch = Background<String> {
            do throws(KubeError) {
                try kube.watch(.configMaps, namespace: nil, options: WatchOptions(resourceVersion: rv, timeoutSeconds: 300),
                               cancellation: CancellationToken()) { _ in }
                return "returned"
            } catch {
                if case .transport = error { return "transport" }
                return "other: \(error)"
            }
        }
        // Wait (bounded) until the server holds the watch, then cut it.
        var active = 0
        for _ in 0..<1000 where active == 0 {
            active = try server.control("GET", "watches")["active"]?.int ?? 0
            if active == 0 { usleep(10_000) }
        }
        try #require(active == 1)
        try server.control("POST", "drop-watches")
        let outcome = watch.wait(upTo: 60)
        #expect(outcome == "transport")
    }

    @Test func serverSideApplyCreatesReplacesConflictsAndForces() throws {
        let server = try TestAPIServer()
        let observer = RecordingObserver()
        let kube = server.client(observer: observer)
        let key = ObjectKey(namespace: "default", name: "gw")
        let desired = Self.gateway("gw", spec: ["replicas": 2, "image": "gw:1", "tls": ["enabled": true]])

        let created = try kube.apply(.encryptionGateways, desired, fieldManager: "operator", force: false)
        #expect(created[path: "spec", "replicas"] == 2)
        #expect(created[path: "metadata", "generation"] == 1)
        // Same apply again: a no-op that neither writes nor bumps the resourceVersion.
        let again = try kube.apply(.encryptionGateways, desired, fieldManager: "operator", force: false)
        #expect(again.resourceVersion == created.resourceVersion)

        // Replace-on-apply: a field the manager stops sending disappears.
        let smaller = Self.gateway("gw", spec: ["replicas": 2, "image": "gw:1"])
        let replaced = try kube.apply(.encryptionGateways, smaller, fieldManager: "operator", force: false)
        #expect(replaced[path: "spec", "tls"] == nil)
        #expect(replaced[path: "metadata", "generation"] == 2)

        // Another manager changing an owned field conflicts without force and wins with it.
        let scaler = Self.gateway("gw", spec: ["replicas": 5])
        do {
            _ = try kube.apply(.encryptionGateways, scaler, fieldManager: "autoscaler", force: false)
            Issue.record("conflicting apply succeeded")
        } catch {
            guard case .conflict(let message) = error else { Issue.record("want conflict, got \(error)"); return }
            #expect(message.contains(".spec.replicas"))
            #expect(message.contains("operator"))
        }
        let forced = try kube.apply(.encryptionGateways, scaler, fieldManager: "autoscaler", force: true)
        #expect(forced[path: "spec", "replicas"] == 5)
        #expect(forced[path: "spec", "image"] == "gw:1")
        let managers = forced[path: "metadata", "managedFields"]?.array?.compactMap { $0["manager"]?.string } ?? []
        #expect(Set(managers) == ["operator", "autoscaler"])
        // The operator no longer owns replicas: omitting it now leaves the autoscaler's value alone.
        let noReplicas = Self.gateway("gw", spec: ["image": "gw:2"])
        let after = try kube.apply(.encryptionGateways, noReplicas, fieldManager: "operator", force: false)
        #expect(after[path: "spec", "replicas"] == 5)
        #expect(after[path: "spec", "image"] == "gw:2")
        #expect(try kube.get(.encryptionGateways, key)[path: "spec", "image"] == "gw:2")

        let requests = try server.control("GET", "requests")["requests"]?.array ?? []
        let applies = requests.filter { $0["method"] == "PATCH" }
        #expect(!applies.isEmpty && applies.allSatisfy { $0["contentType"] == "application/apply-patch+yaml" })
        #expect(applies.allSatisfy { $0[path: "query", "fieldManager"] != nil })
        let verbs = observer.calls.withLock { $0.map { "\($0.verb) \($0.code)" } }
        #expect(verbs.contains("APPLY 201") && verbs.contains("APPLY 200") && verbs.contains("APPLY 409"))
    }

    @Test func statusSubresourceChangesOnlyStatus() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        var gw = try kube.create(.encryptionGateways, namespace: "default",
                                 Self.gateway("s", spec: ["replicas": 1]).merging(["status": ["phase": "ignored"]]))
        #expect(gw["status"] == nil)   // create ignores status
        #expect(gw[path: "metadata", "generation"] == 1)

        gw["status"] = ["observedGeneration": 1, "phase": "Ready"]
        gw["spec"] = ["replicas": 9]    // ignored by the status endpoint
        let withStatus = try kube.updateStatus(.encryptionGateways, gw)
        #expect(withStatus[path: "status", "phase"] == "Ready")
        #expect(withStatus[path: "spec", "replicas"] == 1)
        #expect(withStatus[path: "metadata", "generation"] == 1)

        var main = withStatus
        main["status"] = ["phase": "Hacked"]
        main["spec"] = ["replicas": 3]
        let updated = try kube.update(.encryptionGateways, main)
        #expect(updated[path: "status", "phase"] == "Ready")
        #expect(updated[path: "spec", "replicas"] == 3)
        #expect(updated[path: "metadata", "generation"] == 2)

        // Status by server-side apply on the subresource.
        let statusApply: JSONValue = ["apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
                                      "metadata": ["name": "s", "namespace": "default"],
                                      "status": ["phase": "Degraded", "observedGeneration": 2]]
        let applied = try kube.apply(.encryptionGateways, statusApply, fieldManager: "operator", force: true, subresource: "status")
        #expect(applied[path: "status", "phase"] == "Degraded")
        #expect(applied[path: "spec", "replicas"] == 3)
    }

    @Test func tooManyRequestsSurfacesRetryAfter() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        try server.control("POST", "inject", ["pathPrefix": "/api/v1/namespaces/default/configmaps", "count": 1,
                                             "code": 429, "reason": "TooManyRequests", "retryAfter": 4])
        do {
            _ = try kube.list(.configMaps, namespace: "default", options: ListOptions())
            Issue.record("throttled request succeeded")
        } catch {
            #expect(error == .tooManyRequests(retryAfter: .seconds(4), message: "injected failure"))
            #expect(error.isRetryable)
        }
        // Only the next request was throttled.
        #expect(try kube.list(.configMaps, namespace: "default", options: ListOptions()).items.isEmpty)
    }

    @Test func rotatedTokenIsReReadAfterA401() throws {
        let server = try TestAPIServer()
        let dir = TempDir()
        let tokenFile = dir.write("token", "t1\n")
        let kube = server.client(token: nil, tokenFile: tokenFile)
        _ = try kube.create(.configMaps, namespace: "default", Self.configMap("tok"))

        // Rotate: the server only accepts t2 now and the file holds t2; the cached t1 gets a 401, the client
        // re-reads the file and retries once.
        try server.control("POST", "tokens", ["tokens": ["t2"]])
        dir.write("token", "t2\n")
        try server.control("DELETE", "requests")
        let got = try kube.get(.configMaps, ObjectKey(namespace: "default", name: "tok"))
        #expect(got.name == "tok")
        let auths = try server.control("GET", "requests")["requests"]?.array?.compactMap { $0["authorization"]?.string } ?? []
        #expect(auths == ["Bearer t1", "Bearer t2"])

        // A token nobody accepts stays unauthorized (one retry, then the error).
        try server.control("POST", "tokens", ["tokens": ["t3"]])
        do {
            _ = try kube.get(.configMaps, ObjectKey(namespace: "default", name: "tok"))
            Issue.record("revoked token accepted")
        } catch {
            guard case .unauthorized = error else { Issue.record("want unauthorized, got \(error)"); return }
        }
    }

    @Test func ownerReferencesAreGarbageCollected() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        let owner = try kube.create(.encryptionGateways, namespace: "default", Self.gateway("owner", spec: [:]))
        let ref: JSONValue = ["apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway", "name": "owner",
                              "uid": .string(owner.uid!), "controller": true, "blockOwnerDeletion": true]
        for name in ["child1", "child2"] {
            var cm = Self.configMap(name)
            cm["metadata"]?["ownerReferences"] = [ref]
            _ = try kube.create(.configMaps, namespace: "default", cm)
        }
        try kube.delete(.encryptionGateways, ObjectKey(namespace: "default", name: "owner"), propagation: .background)
        #expect(try kube.listAll(.configMaps, namespace: "default").items.isEmpty)

        let owner2 = try kube.create(.encryptionGateways, namespace: "default", Self.gateway("owner2", spec: [:]))
        var cm = Self.configMap("orphan")
        var ref2 = ref
        ref2["uid"] = .string(owner2.uid!)
        cm["metadata"]?["ownerReferences"] = [ref2]
        _ = try kube.create(.configMaps, namespace: "default", cm)
        try kube.delete(.encryptionGateways, ObjectKey(namespace: "default", name: "owner2"), propagation: .orphan)
        let left = try kube.get(.configMaps, ObjectKey(namespace: "default", name: "orphan"))
        #expect(left[path: "metadata", "ownerReferences"] == nil)
    }

    @Test func httpsVerifiesTheClusterCAAndAcceptsClientCertificates() throws {
        let pki = try TestPKI()
        let server = try TestAPIServer(arguments: ["--token", "t1", "--client-ca", pki.caCert],
                                       tls: (pki.serverCert, pki.serverKey))
        // Trusted through inline CA data (kubeconfig certificate-authority-data).
        let inline = server.client { $0.caPEM = pki.read(pki.caCert) }
        #expect(try inline.create(.configMaps, namespace: "default", Self.configMap("tls")).name == "tls")
        // Trusted through a CA file (in-cluster ca.crt).
        #expect(try server.client { $0.caFile = pki.caCert }.get(.configMaps, ObjectKey(namespace: "default", name: "tls")).name == "tls")

        // insecure-skip-tls-verify connects without any CA.
        #expect(try server.client { $0.insecureSkipVerify = true }.get(.configMaps, ObjectKey(namespace: "default", name: "tls")).name == "tls")

        // The wrong CA fails the handshake: a transport error, never a response.
        let wrong = server.client { $0.caPEM = pki.read(pki.otherCACert) }
        do {
            _ = try wrong.get(.configMaps, ObjectKey(namespace: "default", name: "tls"))
            Issue.record("connected although the server certificate is not signed by the configured CA")
        } catch {
            guard case .transport = error else { Issue.record("want transport, got \(error)"); return }
        }

        // Client certificate instead of a token.
        let certOnly = server.client(token: nil) {
            $0.caPEM = pki.read(pki.caCert)
            $0.clientCertificatePEM = pki.read(pki.clientCert)
            $0.clientKeyPEM = pki.read(pki.clientKey)
        }
        #expect(try certOnly.get(.configMaps, ObjectKey(namespace: "default", name: "tls")).name == "tls")
        let anonymous = server.client(token: nil) { $0.caPEM = pki.read(pki.caCert) }
        do {
            _ = try anonymous.get(.configMaps, ObjectKey(namespace: "default", name: "tls"))
            Issue.record("anonymous request accepted")
        } catch {
            guard case .unauthorized = error else { Issue.record("want unauthorized, got \(error)"); return }
        }
    }
}

extension JSONValue {
    /// Shallow merge of object keys (test convenience).
    func merging(_ other: JSONValue) -> JSONValue {
        guard case .object(var a) = self, case .object(let b) = other else { return other }
        for (k, v) in b { a[k] = v }
        return .object(a)
    }
}

@Suite(.serialized) struct KubeRESTClientWatchAuthTests {
    @Test func watchWithoutResourceVersionStartsWithSyntheticAddsAndFiltersLabels() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        _ = try kube.create(.configMaps, namespace: "default", KubeRESTClientIntegrationTests.configMap("x", labels: ["app": "gw"]))
        _ = try kube.create(.configMaps, namespace: "default", KubeRESTClientIntegrationTests.configMap("y", labels: ["app": "other"]))
        var names: [String] = []
        try kube.watch(.configMaps, namespace: "default", options: WatchOptions(labelSelector: "app=gw", timeoutSeconds: 1),
                       cancellation: CancellationToken()) { event in
            if case .added(let o) = event { names.append(o.name ?? "") }
        }
        #expect(names == ["x"])
    }

    @Test func watchReReadsTheTokenAfterA401() throws {
        let server = try TestAPIServer()
        let dir = TempDir()
        let tokenFile = dir.write("token", "t1")
        let kube = server.client(token: nil, tokenFile: tokenFile)
        let rv = try kube.list(.configMaps, namespace: nil, options: ListOptions()).resourceVersion
        try server.control("POST", "tokens", ["tokens": ["t2"]])
        dir.write("token", "t2")
        var events: [WatchEvent] = []
        try kube.watch(.configMaps, namespace: nil, options: WatchOptions(resourceVersion: rv, timeoutSeconds: 1),
                       cancellation: CancellationToken()) { events.append($0) }
        #expect(!events.isEmpty && events.allSatisfy { $0 == .bookmark(resourceVersion: rv) })
        let watches = try server.control("GET", "requests")["requests"]?.array?
            .filter { $0[path: "query", "watch"] == "1" }.compactMap { $0["authorization"]?.string } ?? []
        #expect(watches == ["Bearer t1", "Bearer t2"])
    }
}

@Suite struct KubeRESTClientConcurrencyTests {
    /// Optimistic concurrency end to end: threads sharing one client increment a counter with get+update and retry
    /// on conflict; resourceVersion preconditions must make every increment count exactly once.
    @Test func concurrentOptimisticUpdatesLoseNothing() throws {
        let server = try TestAPIServer()
        let kube = server.client()
        _ = try kube.create(.configMaps, namespace: "default", KubeRESTClientIntegrationTests.configMap("counter", ["n": "0"]))
        let key = ObjectKey(namespace: "default", name: "counter")
        let workers = (0..<4).map { _ in
            Background<Int> {
                var conflicts = 0
                for _ in 0..<10 {
                    while true {
                        do throws(KubeError) {
                            var cm = try kube.get(.configMaps, key)
                            let n = Int(cm[path: "data", "n"]?.string ?? "") ?? -1000
                            cm["data"] = ["n": .string(String(n + 1))]
                            _ = try kube.update(.configMaps, cm)
                            break
                        } catch .conflict {
                            conflicts += 1
                        } catch {
                            return -1
                        }
                    }
                }
                return conflicts
            }
        }
        let results = workers.map { $0.wait(upTo: 120) }
        #expect(results.allSatisfy { ($0 ?? -1) >= 0 })
        #expect(try kube.get(.configMaps, key)[path: "data", "n"] == "40")
    }
}
