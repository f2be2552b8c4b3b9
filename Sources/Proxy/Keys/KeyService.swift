import Foundation
import Shared
import Synchronization

/// Reports key-manager calls, cache use and failures (metrics and logs); see `KeyTelemetry`.
public protocol KeyServiceObserver: Sendable {
    func providerCall(_ provider: KeyProviderKind, operation: String, duration: Duration, error: KeyProviderError?)
    func cacheLookup(hit: Bool)
    func intermediateKeyCreated(_ provider: KeyProviderKind, bucket: String)
}

public struct NoKeyServiceObserver: KeyServiceObserver {
    public init() {}
    public func providerCall(_ provider: KeyProviderKind, operation: String, duration: Duration, error: KeyProviderError?) {}
    public func cacheLookup(hit: Bool) {}
    public func intermediateKeyCreated(_ provider: KeyProviderKind, bucket: String) {}
}

/// The gateway's keys (replaces the password-only `KeyRing`): local key-encryption keys, remote key
/// managers, the per-bucket policy, the cache of unwrapped keys and the intermediate keys.
///
/// Writing: the policy picks the key for the bucket. A local key wraps the data key itself. With a
/// remote key manager the data key is wrapped by an intermediate key (32 random bytes) that the key
/// manager wrapped once, under the context `{s3eg:bucket}`; the intermediate key is reused for the
/// bucket's new objects for `intermediateLifetime`, so writes cost one key-manager call per bucket and
/// period, not one per object. `intermediateLifetime == 0` gives every object its own intermediate key
/// wrapped under `{s3eg:bucket, s3eg:key}` (one call per write).
///
/// Reading: the object's reference names provider and key; the intermediate key is unwrapped once and
/// cached (bounded, `cacheTTL`), so hot objects and objects sharing an intermediate key cost no call.
///
/// Revocation latency: a key disabled in the key manager stops new writes within `intermediateLifetime`
/// and reads within `cacheTTL` (both bounds hold per replica; nothing is shared between replicas).
public final class KeyService: Sendable {
    public struct Tuning: Sendable, Equatable {
        public var cacheCapacity = 10_000
        public var cacheTTL: Duration = .seconds(300)
        public var intermediateLifetime: Duration = .seconds(900)
        /// A successful call within this window counts as proof of health for `/ready`.
        public var healthWindow: Duration = .seconds(5)
        public init() {}
    }

    public let local: [KeyProviderKind: LocalKeyring]
    public let remote: [KeyProviderKind: any RemoteKeyProvider]
    public let tuning: Tuning
    let cache: UnwrappedKeyCache
    /// Read by every request (the bucket decision), replaced by a policy file reload.
    private let policyState: ReadMostly<BucketPolicy>
    private let slots = Mutex<[SlotKey: IntermediateSlot]>([:])
    /// The last call to each provider: when, and whether it reached the provider.
    private let lastOutcome = Mutex<[KeyProviderKind: (at: ContinuousClock.Instant, reached: Bool)]>([:])
    /// Same-provider re-wraps already done in this process (rotate): source cache key → new reference.
    private let rewrapMemo = Mutex<[[UInt8]: KeyReference]>([:])
    private let observer: any KeyServiceObserver
    private let clock: @Sendable () -> ContinuousClock.Instant

    static let maxSlots = 10_000

    public init(local: [LocalKeyring], remote: [any RemoteKeyProvider], policy: BucketPolicy, tuning: Tuning = Tuning(),
                observer: any KeyServiceObserver = NoKeyServiceObserver(),
                clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) throws(KeyProviderError) {
        var localTable: [KeyProviderKind: LocalKeyring] = [:]
        for ring in local {
            guard localTable[ring.kind] == nil else { throw KeyProviderError(.misconfigured, "two \(ring.kind) keyrings") }
            localTable[ring.kind] = ring
        }
        var remoteTable: [KeyProviderKind: any RemoteKeyProvider] = [:]
        for provider in remote {
            guard remoteTable[provider.kind] == nil else { throw KeyProviderError(.misconfigured, "two \(provider.kind) providers") }
            remoteTable[provider.kind] = provider
        }
        self.local = localTable
        self.remote = remoteTable
        self.tuning = tuning
        self.cache = UnwrappedKeyCache(capacity: tuning.cacheCapacity, ttl: tuning.cacheTTL, clock: clock)
        self.policyState = ReadMostly(policy)
        self.observer = observer
        self.clock = clock
        try Self.validate(policy, local: localTable, remote: remoteTable)
    }

    /// The providers this service can use.
    public var configuredProviders: Set<KeyProviderKind> { Set(local.keys).union(remote.keys) }

    // MARK: Policy

    public var policy: BucketPolicy { policyState.value }

    /// Replaces the policy (file reload). Refused when it names a provider that is not configured.
    public func replacePolicy(_ policy: BucketPolicy) throws(KeyProviderError) {
        try Self.validate(policy, local: local, remote: remote)
        policyState.replace(policy)
    }

    private static func validate(_ policy: BucketPolicy, local: [KeyProviderKind: LocalKeyring],
                                 remote: [KeyProviderKind: any RemoteKeyProvider]) throws(KeyProviderError) {
        for spec in policy.keys.values where local[spec.provider] == nil && remote[spec.provider] == nil {
            throw KeyProviderError(.misconfigured, "the policy names provider \(spec.provider), which is not configured")
        }
    }

    /// What a new object in `bucket` gets: plain, or encrypted with a key.
    public func decision(bucket: String) -> BucketDecision { policyState.value.decision(bucket: bucket) }

    // MARK: Writing

    /// The wrapping key for a new object, as the policy decides for its bucket. `nil` when the policy
    /// says the bucket is plain (the caller must then not encrypt).
    public func wrappingKeyForNewObject(_ identity: ObjectIdentity) throws(EncryptionError) -> WrappingKey? {
        guard case .encrypt(let spec, _) = decision(bucket: identity.bucket) else { return nil }
        return try wrappingKey(forNewObject: identity, spec: spec)
    }

    /// The wrapping key for a new object under an explicit key (CopyObject destinations, `rotate --to`).
    public func wrappingKey(forNewObject identity: ObjectIdentity, spec: KeySpec) throws(EncryptionError) -> WrappingKey {
        if spec.provider.isLocal {
            guard let ring = local[spec.provider] else {
                throw EncryptionError(.unknownKeyID, "provider \(spec.provider) is not configured")
            }
            return try WrappingKey(reference: KeyReference(provider: spec.provider.rawValue, keyID: ring.active.idHex), bytes: ring.active.bytes)
        }
        guard let provider = remote[spec.provider] else {
            throw EncryptionError(.unknownKeyID, "provider \(spec.provider) is not configured")
        }
        let keyName = spec.name.isEmpty ? provider.defaultKeyName : spec.name
        if tuning.intermediateLifetime <= .zero {
            return try createIntermediate(provider, keyName: keyName, scope: .object, identity: identity)
        }
        let slot = slots.withLock { table -> IntermediateSlot in
            let key = SlotKey(provider: spec.provider, keyName: keyName, bucket: identity.bucket)
            if let slot = table[key] { return slot }
            if table.count >= Self.maxSlots {
                let now = clock()
                table = table.filter { $0.value.isLive(now: now) }
                if table.count >= Self.maxSlots { table.removeAll() }
            }
            let slot = IntermediateSlot()
            table[key] = slot
            return slot
        }
        return try slot.key(now: clock(), lifetime: tuning.intermediateLifetime) { () throws(EncryptionError) -> WrappingKey in
            try createIntermediate(provider, keyName: keyName, scope: .bucket, identity: identity)
        }
    }

    private func createIntermediate(_ provider: any RemoteKeyProvider, keyName: String, scope: IntermediateKeyEnvelope.Scope,
                                    identity: ObjectIdentity) throws(EncryptionError) -> WrappingKey {
        let secret = SecureRandom.bytes(IntermediateKeyEnvelope.keySize)
        let envelope0 = IntermediateKeyEnvelope(scope: scope, ciphertext: [])
        let context = envelope0.context(for: identity)
        let wrapped = try call(provider.kind, "wrap") { () throws(KeyProviderError) in
            try provider.wrap(secret, keyName: keyName, context: context)
        }
        guard !wrapped.ciphertext.isEmpty, wrapped.ciphertext.count <= IntermediateKeyEnvelope.maxCiphertextSize,
              KeyService.isValidKeyID(wrapped.keyID) else {
            throw EncryptionError(.keyUnavailable, "\(provider.kind) returned a key id or ciphertext the object format cannot record")
        }
        let envelope = IntermediateKeyEnvelope(scope: scope, ciphertext: wrapped.ciphertext)
        let reference = try KeyReference(provider: provider.kind.rawValue, keyID: wrapped.keyID, wrappedIntermediateKey: envelope.bytes)
        cache.insert(secret, for: reference.cacheKey(context))
        observer.intermediateKeyCreated(provider.kind, bucket: identity.bucket)
        return try WrappingKey(reference: reference, bytes: secret)
    }

    /// Key ids the format can record: 1-256 printable ASCII characters, no comma.
    static func isValidKeyID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return !bytes.isEmpty && bytes.count <= 256 && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") }
    }

    // MARK: Reading

    /// The wrapping key of a stored object, whatever the policy says now.
    public func wrappingKey(for reference: KeyReference, identity: ObjectIdentity) throws(EncryptionError) -> WrappingKey {
        let kind = try Self.kind(of: reference)
        if kind.isLocal {
            guard reference.wrappedIntermediateKey == nil else {
                throw EncryptionError(.malformedMetadata, "a \(kind) key reference has no intermediate key")
            }
            guard let ring = local[kind] else {
                throw EncryptionError(.unknownKeyID, "the object's key is a \(kind) key (id \(reference.keyID)) and no \(kind) key is configured")
            }
            guard let key = ring.key(idHex: reference.keyID) else {
                throw EncryptionError(.unknownKeyID, "the object was encrypted with \(kind) key id \(reference.keyID), which is not configured; add it as a previous key (\(kind == .raw ? "ENCRYPTION_PREVIOUS_KEY_FILES" : "ENCRYPTION_PREVIOUS_PASSWORDS"))")
            }
            return try WrappingKey(reference: reference, bytes: key.bytes)
        }
        guard let provider = remote[kind] else {
            throw EncryptionError(.unknownKeyID, "the object's key is held by \(kind) (key \(reference.keyID)), which this gateway has no settings for")
        }
        guard let wrapped = reference.wrappedIntermediateKey else {
            throw EncryptionError(.malformedMetadata, "a \(kind) key reference needs its wrapped intermediate key")
        }
        let envelope = try IntermediateKeyEnvelope(parsing: wrapped)
        let context = envelope.context(for: identity)
        let (secret, hit): ([UInt8], Bool)
        do {
            (secret, hit) = try cache.value(for: reference.cacheKey(context)) { () throws(KeyProviderError) -> [UInt8] in
                try timedProviderCall(kind, "unwrap") { () throws(KeyProviderError) in
                    try provider.unwrap(envelope.ciphertext, keyID: reference.keyID, context: context)
                }
            }
        } catch {
            throw describe(error, reference: reference, identity: identity)
        }
        observer.cacheLookup(hit: hit)
        guard secret.count == IntermediateKeyEnvelope.keySize else {
            throw EncryptionError(.tamperDetected, "the intermediate key of \(identity.bucket)/\(identity.key) unwrapped to \(secret.count) bytes")
        }
        return try WrappingKey(reference: reference, bytes: secret)
    }

    /// The provider a stored reference names; an unknown name is damaged (or newer) metadata.
    static func kind(of reference: KeyReference) throws(EncryptionError) -> KeyProviderKind {
        guard let kind = KeyProviderKind(rawValue: reference.provider) else {
            throw EncryptionError(.unknownKeyID, "the object's key provider \"\(reference.provider)\" is not one this gateway knows (\(KeyProviderKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return kind
    }

    /// The key-encryption key of a format-version-1 object (password keys only, fixed public salt).
    public func version1Key(id: [UInt8]) throws(EncryptionError) -> [UInt8] {
        guard let ring = local[.password] else {
            throw EncryptionError(.unknownKeyID, "the object is in format version 1 (password key id \(Encoding.hex(id))) and no password is configured")
        }
        guard let key = ring.key(id: id) else {
            throw EncryptionError(.unknownKeyID, "object was encrypted with key id \(Encoding.hex(id)), which is not configured; add its password as a previous key")
        }
        return key.bytes
    }

    // MARK: Rotation

    /// Whether an object under `reference` is already under `target`'s current key (so `rotate` skips it).
    public func isCurrent(_ reference: KeyReference, target: KeySpec) throws(EncryptionError) -> Bool {
        guard reference.provider == target.provider.rawValue else { return false }
        if let ring = local[target.provider] { return reference.keyID == ring.active.idHex }
        guard let provider = remote[target.provider] else {
            throw EncryptionError(.unknownKeyID, "provider \(target.provider) is not configured")
        }
        let keyName = target.name.isEmpty ? provider.defaultKeyName : target.name
        return try call(target.provider, "describe") { () throws(KeyProviderError) in
            try provider.isCurrent(keyID: reference.keyID, keyName: keyName)
        }
    }

    /// The wrapping key an object under `reference` gets when re-wrapped onto `target`. Within one
    /// remote provider the intermediate key is kept and only re-wrapped by the key manager (Vault
    /// `rewrap`), once per distinct intermediate key; otherwise the object gets `target`'s key.
    public func rewrapTarget(for reference: KeyReference, identity: ObjectIdentity, target: KeySpec) throws(EncryptionError) -> WrappingKey {
        guard reference.provider == target.provider.rawValue, !target.provider.isLocal, let provider = remote[target.provider],
              let wrapped = reference.wrappedIntermediateKey else {
            return try wrappingKey(forNewObject: identity, spec: target)
        }
        let current = try wrappingKey(for: reference, identity: identity)
        let envelope = try IntermediateKeyEnvelope(parsing: wrapped)
        let context = envelope.context(for: identity)
        let memoKey = reference.cacheKey(context)
        if let done = rewrapMemo.withLock({ $0[memoKey] }) { return try WrappingKey(reference: done, bytes: current.bytes) }
        let keyName = target.name.isEmpty ? provider.defaultKeyName : target.name
        let rewrapped = try call(provider.kind, "rewrap") { () throws(KeyProviderError) in
            try provider.rewrap(envelope.ciphertext, keyID: reference.keyID, keyName: keyName, context: context)
        }
        let newEnvelope = IntermediateKeyEnvelope(scope: envelope.scope, ciphertext: rewrapped.ciphertext)
        let newReference = try KeyReference(provider: provider.kind.rawValue, keyID: rewrapped.keyID, wrappedIntermediateKey: newEnvelope.bytes)
        rewrapMemo.withLock { memo in
            if memo.count >= 10_000 { memo.removeAll() }
            memo[memoKey] = newReference
        }
        cache.insert(current.bytes, for: newReference.cacheKey(context))
        return try WrappingKey(reference: newReference, bytes: current.bytes)
    }

    // MARK: Health

    /// One entry per configured remote provider: nil when healthy, else why not.
    public func providerHealth() -> [(provider: KeyProviderKind, problem: String?)] {
        remote.keys.sorted { $0.rawValue < $1.rawValue }.map { kind in
            let provider = remote[kind]!
            if let last = lastOutcome.withLock({ $0[kind] }), last.reached, clock() - last.at < tuning.healthWindow { return (kind, nil) }
            do throws(KeyProviderError) {
                try timedProviderCall(kind, "health") { () throws(KeyProviderError) in
                    try provider.checkHealth(keyName: provider.defaultKeyName)
                }
                return (kind, nil)
            } catch {
                return (kind, error.description)
            }
        }
    }

    // MARK: Calls

    private func call<T>(_ kind: KeyProviderKind, _ operation: String,
                         _ body: () throws(KeyProviderError) -> T) throws(EncryptionError) -> T {
        do {
            return try timedProviderCall(kind, operation, body)
        } catch {
            throw error.encryptionError
        }
    }

    private func timedProviderCall<T>(_ kind: KeyProviderKind, _ operation: String,
                                      _ body: () throws(KeyProviderError) -> T) throws(KeyProviderError) -> T {
        let started = ContinuousClock.now
        do {
            let result = try body()
            observer.providerCall(kind, operation: operation, duration: .now - started, error: nil)
            lastOutcome.withLock { $0[kind] = (clock(), true) }
            return result
        } catch {
            observer.providerCall(kind, operation: operation, duration: .now - started, error: error)
            // A refusal is an answer: the provider is reachable.
            let reached = error.code == .denied || error.code == .invalidCiphertext
            lastOutcome.withLock { $0[kind] = (clock(), reached) }
            throw error
        }
    }

    private func describe(_ error: KeyProviderError, reference: KeyReference, identity: ObjectIdentity) -> EncryptionError {
        switch error.code {
        case .invalidCiphertext:
            return EncryptionError(.tamperDetected, "the intermediate key of \(identity.bucket)/\(identity.key) does not unwrap under \(reference): \(error.message)")
        default:
            return error.encryptionError
        }
    }
}

private struct SlotKey: Hashable {
    var provider: KeyProviderKind
    var keyName: String
    var bucket: String
}

/// The current intermediate key of one (key, bucket); creation is serialised so an expiry under load
/// costs one key-manager call.
private final class IntermediateSlot: Sendable {
    private let current = Mutex<(key: WrappingKey, expires: ContinuousClock.Instant)?>(nil)
    private let creation = Mutex<Void>(())

    func isLive(now: ContinuousClock.Instant) -> Bool { current.withLock { $0.map { $0.expires > now } ?? false } }

    func key(now: ContinuousClock.Instant, lifetime: Duration,
             create: () throws(EncryptionError) -> WrappingKey) throws(EncryptionError) -> WrappingKey {
        if let live = current.withLock({ $0 }), live.expires > now { return live.key }
        return try creation.withLock { _ throws(EncryptionError) -> WrappingKey in
            if let live = current.withLock({ $0 }), live.expires > now { return live.key }
            let key = try create()
            current.withLock { $0 = (key, now + lifetime) }
            return key
        }
    }
}

extension KeyReference {
    /// Identifies the wrapped key, under the context it is unwrapped with, for the unwrapped-key cache:
    /// a key cached for one bucket (or object) is never handed out for another.
    func cacheKey(_ context: KeyManagerContext) -> [UInt8] {
        var digest = Digest(.sha256)
        digest.update(provider)
        digest.update([0] as [UInt8])
        digest.update(keyID)
        digest.update([0] as [UInt8])
        digest.update(wrappedIntermediateKey ?? [])
        digest.update(context.canonicalBytes)
        return digest.finalize()
    }
}

// MARK: - The format's key interface

extension KeyService: DataKeyWrapping {
    /// Wraps a new object's data key with the key the policy gives its bucket (the default key for a
    /// bucket the policy keeps plain: a handler that encrypts there anyway, e.g. a copy of an encrypted
    /// object, still gets a key).
    public func wrap(_ dataKey: DataKey, context: WrapContext) throws(EncryptionError) -> WrappedDataKey {
        let spec: KeySpec
        switch decision(bucket: context.identity.bucket) {
        case .encrypt(let chosen, _): spec = chosen
        case .plain: spec = policy.defaultKey
        }
        return try LocalKeyWrap.seal(dataKey, with: wrappingKey(forNewObject: context.identity, spec: spec), context: context)
    }

    public func unwrap(_ wrapped: WrappedDataKey, context: WrapContext) throws(EncryptionError) -> DataKey {
        try LocalKeyWrap.open(wrapped, with: wrappingKey(for: wrapped.reference, identity: context.identity), context: context)
    }

    public func v1Key(id: [UInt8]) -> KeyEncryptionKey? {
        local[.password]?.key(id: id).map { KeyEncryptionKey(id: $0.id, key: $0.bytes) }
    }

    /// Whether `reference` is the current version of the default key (objects of other policy keys are
    /// judged by `isCurrent(_:target:)`, which `rotate` uses).
    public func isActive(_ reference: KeyReference) -> Bool {
        (try? isCurrent(reference, target: policy.defaultKey)) ?? false
    }
}
