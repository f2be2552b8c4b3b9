import Shared
import Synchronization

/// The key interface `rotate` gives the object format: data keys are unwrapped with whatever key their
/// object names (any configured provider) and wrapped again under `target`. When the object's key and the
/// target are in the same key manager, the object keeps its intermediate key and only the key manager's
/// wrap of it changes (`KeyService.rewrapTarget`: Vault `rewrap`, once per intermediate key).
///
/// `ObjectEncryptor.rewrap` unwraps then wraps for the same object; the reference seen by `unwrap` is
/// remembered per object until the matching `wrap`.
final class RotationKeys: DataKeyWrapping {
    let service: KeyService
    let target: KeySpec
    private let sources = Mutex<[ObjectIdentity: KeyReference]>([:])

    init(service: KeyService, target: KeySpec) {
        self.service = service
        self.target = target
    }

    func wrap(_ dataKey: DataKey, context: WrapContext) throws(EncryptionError) -> WrappedDataKey {
        let source = sources.withLock { $0.removeValue(forKey: context.identity) }
        let key: WrappingKey
        if let source {
            key = try service.rewrapTarget(for: source, identity: context.identity, target: target)
        } else {
            key = try service.wrappingKey(forNewObject: context.identity, spec: target)
        }
        return try LocalKeyWrap.seal(dataKey, with: key, context: context)
    }

    func unwrap(_ wrapped: WrappedDataKey, context: WrapContext) throws(EncryptionError) -> DataKey {
        let dataKey = try service.unwrap(wrapped, context: context)
        sources.withLock { table in
            if table.count > 1024 { table.removeAll() }  // a rotate handles one object at a time; never grows
            table[context.identity] = wrapped.reference
        }
        return dataKey
    }

    func v1Key(id: [UInt8]) -> KeyEncryptionKey? { service.v1Key(id: id) }

    /// Under the target key's current version (a key-manager call for versioned keys; false on failure,
    /// so the object is tried and its failure reported).
    func isActive(_ reference: KeyReference) -> Bool {
        (try? service.isCurrent(reference, target: target)) ?? false
    }
}
