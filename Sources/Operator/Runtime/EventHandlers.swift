/// Callbacks an informer invokes, on its own thread, in event order. Keep them cheap (enqueue keys).
struct ResourceEventHandler: Sendable {
    var onAdd: @Sendable (JSONValue) -> Void = { _ in }
    var onUpdate: @Sendable (_ old: JSONValue, _ new: JSONValue) -> Void = { _, _ in }
    var onDelete: @Sendable (JSONValue) -> Void = { _ in }

    init(onAdd: @escaping @Sendable (JSONValue) -> Void = { _ in },
         onUpdate: @escaping @Sendable (JSONValue, JSONValue) -> Void = { _, _ in },
         onDelete: @escaping @Sendable (JSONValue) -> Void = { _ in }) {
        self.onAdd = onAdd
        self.onUpdate = onUpdate
        self.onDelete = onDelete
    }

    /// Enqueues the keys `map` returns for every event; on update both the old and the new object are mapped
    /// (an owner reference or a Secret reference may have moved), as controller-runtime's handlers do.
    static func enqueue(_ queue: WorkQueue<ObjectKey>,
                        map: @escaping @Sendable (JSONValue) -> [ObjectKey]) -> ResourceEventHandler {
        ResourceEventHandler(
            onAdd: { object in for key in map(object) { queue.add(key) } },
            onUpdate: { old, new in for key in Set(map(old) + map(new)) { queue.add(key) } },
            onDelete: { object in for key in map(object) { queue.add(key) } })
    }

    /// Enqueues the object's own key (the primary resource).
    static func enqueueObject(_ queue: WorkQueue<ObjectKey>) -> ResourceEventHandler {
        enqueue(queue) { object in ObjectKey(of: object).map { [$0] } ?? [] }
    }
}

/// Pure mappings from a watched object to the keys to reconcile.
enum EventMapping {
    /// The key of `child`'s controlling owner when that owner is of `ownerGroup`/`ownerKind`
    /// (the `ownerReferences` entry with `controller: true`; the version is ignored, as controller-runtime does).
    /// Owners live in the child's namespace; a cluster-scoped owner (`ownerNamespaced == false`) has none.
    static func controllerOwner(of child: JSONValue, ownerGroup: String, ownerKind: String,
                                ownerNamespaced: Bool = true) -> ObjectKey? {
        guard let refs = child[path: "metadata", "ownerReferences"]?.array else { return nil }
        for ref in refs where ref["controller"]?.bool == true {
            guard let apiVersion = ref["apiVersion"]?.string, let kind = ref["kind"]?.string,
                  let name = ref["name"]?.string, !name.isEmpty else { continue }
            // Only one reference may be the controller; if it is of another kind, the child is not ours.
            guard kind == ownerKind, group(ofAPIVersion: apiVersion) == ownerGroup else { return nil }
            return ObjectKey(namespace: ownerNamespaced ? child.namespace : nil, name: name)
        }
        return nil
    }

    /// "apps/v1" → "apps", "v1" → "" (the core group).
    static func group(ofAPIVersion apiVersion: String) -> String {
        guard let slash = apiVersion.firstIndex(of: "/") else { return "" }
        return String(apiVersion[..<slash])
    }

    /// Index value for a namespaced reference: "namespace/name" (references never cross namespaces).
    static func referenceIndexValue(namespace: String?, name: String) -> String {
        ObjectKey(namespace: namespace, name: name).description
    }

    /// An index function over the Secret names an object references, as extracted by `secretNames`;
    /// values are "namespace/name" in the object's namespace.
    static func secretReferenceIndex(_ secretNames: @escaping @Sendable (JSONValue) -> [String]) -> IndexFunc {
        { object in
            secretNames(object).filter { !$0.isEmpty }.map { referenceIndexValue(namespace: object.namespace, name: $0) }
        }
    }

    /// The string values found at each of `paths` (object keys; `"*"` walks every array element), e.g.
    /// `[["spec", "encryption", "passwordSecretRef", "name"], ["spec", "keys", "*", "secretRef", "name"]]`.
    static func strings(atPaths paths: [[String]]) -> @Sendable (JSONValue) -> [String] {
        { object in
            var out: [String] = []
            for path in paths { collect(object, path[...], into: &out) }
            return out
        }
    }

    private static func collect(_ value: JSONValue, _ path: ArraySlice<String>, into out: inout [String]) {
        guard let first = path.first else {
            if let s = value.string { out.append(s) }
            return
        }
        if first == "*" {
            for element in value.array ?? [] { collect(element, path.dropFirst(), into: &out) }
        } else if let next = value[first] {
            collect(next, path.dropFirst(), into: &out)
        }
    }

    /// Keys of every owner in `owners` whose `indexName` index references `secret`.
    static func referrers(of secret: JSONValue, in owners: Store, indexName: String) -> [ObjectKey] {
        guard let name = secret.name else { return [] }
        return owners.keys(byIndex: indexName, referenceIndexValue(namespace: secret.namespace, name: name))
    }
}
