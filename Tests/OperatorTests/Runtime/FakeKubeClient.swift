import Foundation
import Shared
import Synchronization
@testable import Operator

/// An in-memory `KubeClient` for unit tests of the runtime: objects of any resource, a global resourceVersion,
/// and scripted watch outcomes. Integration tests use the Python test API server instead.
final class FakeKubeClient: KubeClient, Sendable {
    enum WatchScript: Sendable {
        /// Deliver these events, then end normally.
        case events([WatchEvent])
        /// Throw this error at once.
        case fail(KubeError)
        /// Deliver events, then block until cancelled.
        case eventsThenBlock([WatchEvent])
        /// Wait until `gate` is stopped (or cancelled), then deliver events and end normally.
        case gated(StopSignal, [WatchEvent])
    }

    struct State {
        var objects: [String: [ObjectKey: JSONValue]] = [:]
        var rv = 100
        var watchScripts: [WatchScript] = []
        /// Per-resource scripts, consulted before `watchScripts`.
        var watchScriptsByResource: [String: [WatchScript]] = [:]
        var watchRequests: [WatchOptions] = []
        var listRequests: [ListOptions] = []
        var failCreatesAndUpdates: KubeError?
        var writes: [String] = []
        /// Every update/apply answers only after this long (a slow API server).
        var writeDelay: Duration?
    }
    let state = Mutex(State())

    func seed(_ r: GroupVersionResource, _ objects: [JSONValue]) {
        state.withLock { s in
            for var o in objects {
                s.rv += 1
                o["metadata"]?["resourceVersion"] = .string("\(s.rv)")
                s.objects[r.resource, default: [:]][ObjectKey(of: o)!] = o
            }
        }
    }

    func remove(_ r: GroupVersionResource, _ key: ObjectKey) {
        state.withLock { s in
            s.rv += 1
            _ = s.objects[r.resource]?.removeValue(forKey: key)
        }
    }

    func scriptWatches(_ r: GroupVersionResource, _ scripts: [WatchScript]) {
        state.withLock { $0.watchScriptsByResource[r.resource, default: []].append(contentsOf: scripts) }
    }

    func scriptWatches(_ scripts: [WatchScript]) { state.withLock { $0.watchScripts.append(contentsOf: scripts) } }

    var watchRequests: [WatchOptions] { state.withLock { $0.watchRequests } }
    var writes: [String] { state.withLock { $0.writes } }
    var listCount: Int { state.withLock { $0.listRequests.filter { $0.continueToken == nil }.count } }

    func get(_ r: GroupVersionResource, _ key: ObjectKey) throws(KubeError) -> JSONValue {
        let o = state.withLock { $0.objects[r.resource]?[key] }
        guard let o else { throw .notFound("\(r.resource) \(key) not found") }
        return o
    }

    func list(_ r: GroupVersionResource, namespace: String?, options: ListOptions) throws(KubeError) -> ListPage {
        state.withLock { s in
            s.listRequests.append(options)
            let all = (s.objects[r.resource] ?? [:]).filter { namespace == nil || $0.key.namespace == namespace }
                .sorted { $0.key.description < $1.key.description }.map(\.value)
            // Two items per page, to exercise paging.
            let start = Int(options.continueToken ?? "0") ?? 0
            let limit = options.limit ?? all.count
            let end = min(all.count, start + max(1, min(limit, 2)))
            let page = Array(all[min(start, all.count)..<end])
            return ListPage(items: page, resourceVersion: "\(s.rv)", continueToken: end < all.count ? "\(end)" : nil)
        }
    }

    func watch(_ r: GroupVersionResource, namespace: String?, options: WatchOptions, cancellation: CancellationToken,
               onEvent: (WatchEvent) throws -> Void) throws(KubeError) {
        let script = state.withLock { s -> WatchScript in
            s.watchRequests.append(options)
            if var own = s.watchScriptsByResource[r.resource], !own.isEmpty {
                let first = own.removeFirst()
                s.watchScriptsByResource[r.resource] = own
                return first
            }
            return s.watchScripts.isEmpty ? .eventsThenBlock([]) : s.watchScripts.removeFirst()
        }
        func deliver(_ events: [WatchEvent]) throws(KubeError) {
            for e in events {
                do { try onEvent(e) } catch let error as KubeError { throw error } catch { throw .transport("\(error)") }
            }
        }
        switch script {
        case .fail(let error): throw error
        case .events(let events): try deliver(events)
        case .gated(let gate, let events):
            while !gate.wait(timeout: .milliseconds(5)) {
                if cancellation.isCancelled { return }
            }
            try deliver(events)
        case .eventsThenBlock(let events):
            try deliver(events)
            while !cancellation.isCancelled { Thread.sleep(forTimeInterval: 0.005) }
        }
    }

    func create(_ r: GroupVersionResource, namespace: String?, _ object: JSONValue) throws(KubeError) -> JSONValue {
        try state.withLock { (s) throws(KubeError) -> JSONValue in
            if let e = s.failCreatesAndUpdates { throw e }
            let key = ObjectKey(of: object)!
            if s.objects[r.resource]?[key] != nil { throw .alreadyExists("\(key)") }
            s.rv += 1
            var o = object
            o["metadata"]?["resourceVersion"] = .string("\(s.rv)")
            s.objects[r.resource, default: [:]][key] = o
            s.writes.append("create \(key)")
            return o
        }
    }

    func update(_ r: GroupVersionResource, _ object: JSONValue) throws(KubeError) -> JSONValue {
        if let delay = state.withLock({ $0.writeDelay }) { Thread.sleep(forTimeInterval: delay.runtimeSeconds) }
        return try state.withLock { (s) throws(KubeError) -> JSONValue in
            if let e = s.failCreatesAndUpdates { throw e }
            let key = ObjectKey(of: object)!
            guard let current = s.objects[r.resource]?[key] else { throw .notFound("\(key)") }
            guard current.resourceVersion == object.resourceVersion else { throw .conflict("stale resourceVersion") }
            s.rv += 1
            var o = object
            o["metadata"]?["resourceVersion"] = .string("\(s.rv)")
            s.objects[r.resource]?[key] = o
            s.writes.append("update \(key)")
            return o
        }
    }

    func updateStatus(_ r: GroupVersionResource, _ object: JSONValue) throws(KubeError) -> JSONValue { try update(r, object) }
    /// A minimal apply: stores the object (or, for `status`, its status) and records the write.
    func apply(_ r: GroupVersionResource, _ object: JSONValue, fieldManager: String, force: Bool,
               subresource: String?) throws(KubeError) -> JSONValue {
        if let delay = state.withLock({ $0.writeDelay }) { Thread.sleep(forTimeInterval: delay.runtimeSeconds) }
        return try state.withLock { (s) throws(KubeError) -> JSONValue in
            if let e = s.failCreatesAndUpdates { throw e }
            guard let key = ObjectKey(of: object) else { throw .invalid("no name") }
            s.rv += 1
            var o: JSONValue
            if subresource == "status" {
                guard let current = s.objects[r.resource]?[key] else { throw .notFound("\(key)") }
                o = current
                o["status"] = object["status"]
            } else {
                o = object
            }
            o["metadata"]?["resourceVersion"] = .string("\(s.rv)")
            s.objects[r.resource, default: [:]][key] = o
            s.writes.append("apply \(r.resource)\(subresource.map { "/" + $0 } ?? "") \(key)")
            return o
        }
    }
    func mergePatch(_ r: GroupVersionResource, _ key: ObjectKey, _ patch: JSONValue) throws(KubeError) -> JSONValue {
        throw .invalid("not supported by the fake")
    }
    func delete(_ r: GroupVersionResource, _ key: ObjectKey, propagation: PropagationPolicy?) throws(KubeError) {
        state.withLock { $0.writes.append("delete \(r.resource) \(key)") }
        remove(r, key)
    }

    func apiGroups() throws(KubeError) -> JSONValue { ["kind": "APIGroupList", "groups": []] }
}

/// Records handler events as strings ("add ns/a", "update ns/a 5->7", "delete ns/a").
final class EventRecorder: Sendable {
    let events = Mutex<[String]>([])

    var handler: ResourceEventHandler {
        ResourceEventHandler(
            onAdd: { o in self.events.withLock { $0.append("add \(ObjectKey(of: o)!)") } },
            onUpdate: { old, new in
                self.events.withLock { $0.append("update \(ObjectKey(of: new)!) \(old.resourceVersion ?? "")->\(new.resourceVersion ?? "")") }
            },
            onDelete: { o in self.events.withLock { $0.append("delete \(ObjectKey(of: o)!)") } })
    }

    var all: [String] { events.withLock { $0 } }
    func clear() { events.withLock { $0.removeAll() } }
}
