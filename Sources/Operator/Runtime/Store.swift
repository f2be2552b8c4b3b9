import Synchronization

/// Computes the index values of one object (e.g. the Secrets it references). Must be pure and cheap.
typealias IndexFunc = @Sendable (JSONValue) -> [String]

/// What a `Store.replace` changed: the informer turns it into handler events after a relist.
struct StoreDiff: Sendable {
    var added: [JSONValue] = []
    var updated: [(old: JSONValue, new: JSONValue)] = []
    var deleted: [JSONValue] = []
}

/// The informer's thread-safe cache of one kind: objects by key plus secondary indexes
/// (client-go's `ThreadSafeStore` + `Indexers`). Readers get value copies; only the informer writes.
final class Store: Sendable {
    private struct State {
        var objects: [ObjectKey: JSONValue] = [:]
        /// index name → index value → keys
        var indices: [String: [String: Set<ObjectKey>]] = [:]
    }

    private let state = Mutex(State())
    let indexers: [String: IndexFunc]

    init(indexers: [String: IndexFunc] = [:]) {
        self.indexers = indexers
    }

    // MARK: Reading

    func get(_ key: ObjectKey) -> JSONValue? {
        state.withLock { $0.objects[key] }
    }

    /// Every object, sorted by key so callers see a stable order.
    func list() -> [JSONValue] {
        state.withLock { s in s.objects.sorted { $0.key.description < $1.key.description }.map(\.value) }
    }

    func keys() -> [ObjectKey] {
        state.withLock { s in s.objects.keys.sorted { $0.description < $1.description } }
    }

    var count: Int { state.withLock { $0.objects.count } }

    /// Objects whose `indexName` values include `value`, sorted by key. An unknown index yields nothing.
    func byIndex(_ indexName: String, _ value: String) -> [JSONValue] {
        state.withLock { s in
            let keys = s.indices[indexName]?[value] ?? []
            return keys.sorted { $0.description < $1.description }.compactMap { s.objects[$0] }
        }
    }

    /// Keys whose `indexName` values include `value`, sorted.
    func keys(byIndex indexName: String, _ value: String) -> [ObjectKey] {
        state.withLock { s in (s.indices[indexName]?[value] ?? []).sorted { $0.description < $1.description } }
    }

    // MARK: Writing (informer only)

    /// Inserts or replaces `object`; returns the previous version. Objects without a name are ignored.
    @discardableResult
    func upsert(_ object: JSONValue) -> JSONValue? {
        guard let key = ObjectKey(of: object) else { return nil }
        return state.withLock { s in
            let old = s.objects[key]
            if let old { unindex(&s, key, old) }
            s.objects[key] = object
            index(&s, key, object)
            return old
        }
    }

    /// Removes the object with `key`; returns what was stored.
    @discardableResult
    func delete(_ key: ObjectKey) -> JSONValue? {
        state.withLock { s in
            guard let old = s.objects.removeValue(forKey: key) else { return nil }
            unindex(&s, key, old)
            return old
        }
    }

    /// Replaces the whole content with `objects` (a relist) and reports what changed. An object counts as
    /// updated when its resourceVersion differs (or, lacking one, its content).
    func replace(with objects: [JSONValue]) -> StoreDiff {
        var fresh: [ObjectKey: JSONValue] = [:]
        for object in objects {
            if let key = ObjectKey(of: object) { fresh[key] = object }
        }
        return state.withLock { s in
            var diff = StoreDiff()
            for (key, old) in s.objects.sorted(by: { $0.key.description < $1.key.description }) where fresh[key] == nil {
                diff.deleted.append(old)
            }
            for (key, new) in fresh.sorted(by: { $0.key.description < $1.key.description }) {
                if let old = s.objects[key] {
                    let changed = (old.resourceVersion != nil && new.resourceVersion != nil)
                        ? old.resourceVersion != new.resourceVersion : old != new
                    if changed { diff.updated.append((old, new)) }
                } else {
                    diff.added.append(new)
                }
            }
            s.objects = fresh
            s.indices = [:]
            for (key, object) in fresh { index(&s, key, object) }
            return diff
        }
    }

    private func index(_ s: inout State, _ key: ObjectKey, _ object: JSONValue) {
        for (name, fn) in indexers {
            for value in Set(fn(object)) { s.indices[name, default: [:]][value, default: []].insert(key) }
        }
    }

    private func unindex(_ s: inout State, _ key: ObjectKey, _ object: JSONValue) {
        for (name, fn) in indexers {
            for value in Set(fn(object)) {
                s.indices[name]?[value]?.remove(key)
                if s.indices[name]?[value]?.isEmpty == true { s.indices[name]?[value] = nil }
            }
        }
    }
}
