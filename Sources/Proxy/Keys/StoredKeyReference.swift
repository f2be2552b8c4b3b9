import Shared

/// (Provisional: replaced by the format's `KeyReference`/`WrappingKey` when format version 2 lands.)
/// What object metadata records about the key side of one object (besides the wrapped data key):
/// which provider and key (with version) protect it, and, for remote providers, the intermediate key
/// as the key manager wrapped it (an `IntermediateKeyEnvelope`).
public struct StoredKeyReference: Sendable, Hashable, CustomStringConvertible {
    public var provider: KeyProviderKind
    /// Local: 16 hex digits. KMIP: unique identifier. AWS KMS: key ARN. Vault: `<key>:v<N>`.
    public var keyID: String
    public var wrappedIntermediateKey: [UInt8]?

    public init(provider: KeyProviderKind, keyID: String, wrappedIntermediateKey: [UInt8]? = nil) {
        self.provider = provider
        self.keyID = keyID
        self.wrappedIntermediateKey = wrappedIntermediateKey
    }

    public var description: String { "\(provider.rawValue) key \(keyID)" }

    /// Identifies the wrapped key, under the context it is unwrapped with, for the unwrapped-key cache:
    /// a key cached for one bucket (or object) is never handed out for another.
    func cacheKey(_ context: KeyManagerContext) -> [UInt8] {
        var digest = Digest(.sha256)
        digest.update(provider.rawValue)
        digest.update([0] as [UInt8])
        digest.update(keyID)
        digest.update([0] as [UInt8])
        digest.update(wrappedIntermediateKey ?? [])
        digest.update(context.canonicalBytes)
        return digest.finalize()
    }
}

/// The 32-byte key that wraps an object's data key (AES-256-GCM, docs/FORMAT.md), with the reference
/// to record: a local key-encryption key, or an intermediate key protected by a key manager.
public struct ResolvedWrappingKey: Sendable {
    public let reference: StoredKeyReference
    public let bytes: [UInt8]
}
