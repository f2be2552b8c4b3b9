import Foundation
import Synchronization
import Testing
import TestSupport
@testable import Proxy
@testable import Shared

/// An in-memory key manager for the KeyService's own logic (call counting, failures on demand).
/// The real providers are tested against real servers (moto KMS, PyKMIP, the Vault Transit double).
final class InMemoryKeyManager: RemoteKeyProvider, @unchecked Sendable {
    let kind: KeyProviderKind
    let defaultKeyName = "k1"
    private let lock = NSLock()
    private var keys: [String: (version: Int, material: [Int: [UInt8]])] = ["k1": (1, [1: SecureRandom.bytes(32)])]
    var wraps = 0, unwraps = 0, rewraps = 0
    var failure: KeyProviderError?

    init(kind: KeyProviderKind = .vaultTransit) { self.kind = kind }

    func rotate(_ name: String) {
        lock.withLock {
            var key = keys[name] ?? (0, [:])
            key.version += 1
            key.material[key.version] = SecureRandom.bytes(32)
            keys[name] = key
        }
    }

    func wrap(_ secret: [UInt8], keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8]) {
        let (error, key) = lock.withLock { () -> (KeyProviderError?, (Int, [UInt8])?) in
            wraps += 1
            return (failure, keys[keyName].map { ($0.version, $0.material[$0.version]!) })
        }
        if let error { throw error }
        guard let (version, material) = key else { throw KeyProviderError(.denied, "no key \(keyName)") }
        let nonce = SecureRandom.bytes(12)
        let sealed = try! AEAD.seal(.aes256GCM, key: material, nonce: nonce, aad: context.canonicalBytes, plaintext: secret)
        return ("\(keyName):v\(version)", nonce + sealed)
    }

    func unwrap(_ ciphertext: [UInt8], keyID: String, context: KeyManagerContext) throws(KeyProviderError) -> [UInt8] {
        let parts = keyID.split(separator: ":")
        let (error, material) = lock.withLock { () -> (KeyProviderError?, [UInt8]?) in
            unwraps += 1
            return (failure, keys[String(parts[0])]?.material[Int(parts[1].dropFirst())!])
        }
        if let error { throw error }
        guard let material else { throw KeyProviderError(.denied, "no key \(keyID)") }
        do {
            return try AEAD.open(.aes256GCM, key: material, nonce: Array(ciphertext.prefix(12)), aad: context.canonicalBytes,
                                 sealed: Array(ciphertext.dropFirst(12)))
        } catch {
            throw KeyProviderError(.invalidCiphertext, "does not open")
        }
    }

    func isCurrent(keyID: String, keyName: String) throws(KeyProviderError) -> Bool {
        lock.withLock { keyID == "\(keyName):v\(keys[keyName]?.version ?? 0)" }
    }

    func rewrap(_ ciphertext: [UInt8], keyID: String, keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8]) {
        lock.withLock { rewraps += 1 }
        let secret = try unwrap(ciphertext, keyID: keyID, context: context)
        return try wrap(secret, keyName: keyName, context: context)
    }

    func checkHealth(keyName: String) throws(KeyProviderError) {
        if let failure = lock.withLock({ failure }) { throw failure }
    }
}

@Suite struct KeyServiceTests {
    let rawKey = try! LocalKey.raw(Array(repeating: 7, count: 32))
    let oldRawKey = try! LocalKey.raw(Array(repeating: 8, count: 32))
    let photo = ObjectIdentity(bucket: "photos", key: "cat.jpg")

    func service(remote: InMemoryKeyManager? = nil, default spec: KeySpec? = nil, lifetime: Duration = .seconds(900),
                 ttl: Duration = .seconds(300), clock: ManualClock = .init(),
                 policy: String? = nil) throws -> KeyService {
        var tuning = KeyService.Tuning()
        tuning.intermediateLifetime = lifetime
        tuning.cacheTTL = ttl
        let defaultSpec = spec ?? KeySpec(provider: remote?.kind ?? .raw, name: "k1")
        var configured: Set<KeyProviderKind> = [.raw]
        if let remote { configured.insert(remote.kind) }
        let parsed = try policy.map { try BucketPolicy.parse(Array($0.utf8), defaultKey: defaultSpec, configured: configured) }
            ?? BucketPolicy(defaultKey: defaultSpec)
        return try KeyService(local: [LocalKeyring(active: rawKey, previous: [oldRawKey])], remote: remote.map { [$0] } ?? [],
                              policy: parsed, tuning: tuning, clock: clock.read)
    }

    @Test func localKeysWrapDirectlyAndReadPreviousKeys() throws {
        let keys = try service()
        let w = try #require(try keys.wrappingKeyForNewObject(photo))
        #expect(w.reference == (try KeyReference(provider: "raw", keyID: rawKey.idHex)))
        #expect(w.bytes == rawKey.bytes)
        let old = try keys.wrappingKey(for: try KeyReference(provider: "raw", keyID: oldRawKey.idHex), identity: photo)
        #expect(old.bytes == oldRawKey.bytes)
        #expect(throws: EncryptionError.self) {
            try keys.wrappingKey(for: try KeyReference(provider: "raw", keyID: "0011223344556677"), identity: photo)
        }
        #expect(throws: EncryptionError.self) {
            try keys.wrappingKey(for: try KeyReference(provider: "password", keyID: rawKey.idHex), identity: photo)
        }
        #expect(rawKey.idHex != oldRawKey.idHex && rawKey.idHex.count == 16)
    }

    @Test func oneIntermediateKeyPerBucketAndLifetime() throws {
        let kms = InMemoryKeyManager()
        let clock = ManualClock()
        let keys = try service(remote: kms, lifetime: .seconds(900), clock: clock)
        var references = Set<KeyReference>()
        for i in 0..<1000 {
            let w = try #require(try keys.wrappingKeyForNewObject(ObjectIdentity(bucket: "photos", key: "k\(i)")))
            references.insert(w.reference)
        }
        #expect(kms.wraps == 1)
        #expect(references.count == 1)
        _ = try keys.wrappingKeyForNewObject(ObjectIdentity(bucket: "videos", key: "a"))
        #expect(kms.wraps == 2)
        clock.advance(.seconds(901))
        let renewed = try #require(try keys.wrappingKeyForNewObject(photo))
        #expect(kms.wraps == 3)
        #expect(!references.contains(renewed.reference))
        let envelope = try IntermediateKeyEnvelope(parsing: renewed.reference.wrappedIntermediateKey!)
        #expect(envelope.scope == .bucket)
        // A fresh intermediate key is cached: reading what was just written costs no call.
        #expect(try keys.wrappingKey(for: renewed.reference, identity: photo).bytes == renewed.bytes)
        #expect(kms.unwraps == 0)
    }

    @Test func zeroLifetimeGivesEveryObjectItsOwnKeyBoundToItsName() throws {
        let kms = InMemoryKeyManager()
        let keys = try service(remote: kms, lifetime: .zero)
        let a = try #require(try keys.wrappingKeyForNewObject(photo))
        _ = try keys.wrappingKeyForNewObject(photo)
        #expect(kms.wraps == 2)
        #expect(try IntermediateKeyEnvelope(parsing: a.reference.wrappedIntermediateKey!).scope == .object)
        // Another replica (no cache) unwraps under the object's own name only.
        let replica = try service(remote: kms, lifetime: .zero)
        #expect(try replica.wrappingKey(for: a.reference, identity: photo).bytes == a.bytes)
        #expect(throws: EncryptionError.self) {
            try replica.wrappingKey(for: a.reference, identity: ObjectIdentity(bucket: "photos", key: "dog.jpg"))
        }
    }

    @Test func readsAreCachedUntilTheTTLAndSharedIntermediateKeysCostOneCall() throws {
        let kms = InMemoryKeyManager()
        let writer = try service(remote: kms)
        let w = try #require(try writer.wrappingKeyForNewObject(photo))
        let clock = ManualClock()
        let reader = try service(remote: kms, ttl: .seconds(60), clock: clock)
        for i in 0..<100 {
            let got = try reader.wrappingKey(for: w.reference, identity: ObjectIdentity(bucket: "photos", key: "k\(i)"))
            #expect(got.bytes == w.bytes)
        }
        #expect(kms.unwraps == 1)
        clock.advance(.seconds(61))
        _ = try reader.wrappingKey(for: w.reference, identity: photo)
        #expect(kms.unwraps == 2)
        // Without a cache every read is a call.
        let uncached = try service(remote: kms, ttl: .zero)
        for _ in 0..<3 { _ = try uncached.wrappingKey(for: w.reference, identity: photo) }
        #expect(kms.unwraps == 5)
        // Another bucket's name does not open a bucket-scoped key.
        #expect(throws: EncryptionError.self) {
            try uncached.wrappingKey(for: w.reference, identity: ObjectIdentity(bucket: "other", key: "cat.jpg"))
        }
    }

    @Test func providerFailuresBecomeUnavailableOrDenied() throws {
        let kms = InMemoryKeyManager()
        let keys = try service(remote: kms, ttl: .zero)
        let w = try #require(try keys.wrappingKeyForNewObject(photo))
        kms.failure = KeyProviderError(.unavailable, "connection refused")
        #expect(throws: EncryptionError(.keyUnavailable, "connection refused")) { try keys.wrappingKey(for: w.reference, identity: photo) }
        #expect(throws: EncryptionError(.keyUnavailable, "connection refused")) {
            try keys.wrappingKeyForNewObject(ObjectIdentity(bucket: "new-bucket", key: "x"))
        }
        #expect(keys.providerHealth().first?.problem?.contains("connection refused") == true)
        kms.failure = KeyProviderError(.denied, "key disabled")
        #expect(throws: EncryptionError(.keyAccessDenied, "key disabled")) { try keys.wrappingKey(for: w.reference, identity: photo) }
        kms.failure = nil
        #expect(keys.providerHealth().first?.problem == nil)
        // Damaged envelopes are refused before any call.
        var envelope = w.reference.wrappedIntermediateKey!
        envelope[0] = 9
        let damaged = try KeyReference(provider: w.reference.provider, keyID: w.reference.keyID, wrappedIntermediateKey: envelope)
        #expect(throws: EncryptionError.self) { try keys.wrappingKey(for: damaged, identity: photo) }
    }

    @Test func policyDecidesPerBucketAndCanBeReplaced() throws {
        let kms = InMemoryKeyManager()
        let keys = try service(remote: kms, default: KeySpec(provider: .raw), policy: """
            {"keys": {"vault": {"provider": "vault-transit", "key": "k1"}},
             "buckets": [{"match": "restic-*", "action": "plain"}, {"match": "secure-*", "action": "encrypt", "key": "vault"}]}
            """)
        #expect(try keys.wrappingKeyForNewObject(ObjectIdentity(bucket: "restic-1", key: "x")) == nil)
        #expect(try keys.wrappingKeyForNewObject(ObjectIdentity(bucket: "secure-1", key: "x"))?.reference.provider == "vault-transit")
        #expect(try keys.wrappingKeyForNewObject(ObjectIdentity(bucket: "other", key: "x"))?.reference.provider == "raw")
        try keys.replacePolicy(BucketPolicy(defaultKey: KeySpec(provider: .raw)))
        #expect(try keys.wrappingKeyForNewObject(ObjectIdentity(bucket: "restic-1", key: "x"))?.reference.provider == "raw")
        // A policy naming an unconfigured provider is refused.
        let kmip = try BucketPolicy.parse(Array("{\"keys\": {\"h\": {\"provider\": \"kmip\", \"key\": \"1\"}}}".utf8),
                                          defaultKey: KeySpec(provider: .raw), configured: [.raw, .kmip])
        #expect(throws: KeyProviderError.self) { try keys.replacePolicy(kmip) }
    }

    @Test func rotationRewrapsEachIntermediateKeyOnceWithinAProvider() throws {
        let kms = InMemoryKeyManager()
        let keys = try service(remote: kms)
        let w = try #require(try keys.wrappingKeyForNewObject(photo))
        let target = KeySpec(provider: .vaultTransit, name: "k1")
        #expect(try keys.isCurrent(w.reference, target: target))
        kms.rotate("k1")
        #expect(try !keys.isCurrent(w.reference, target: target))
        var rewrapped: Set<KeyReference> = []
        for i in 0..<50 {
            let t = try keys.rewrapTarget(for: w.reference, identity: ObjectIdentity(bucket: "photos", key: "k\(i)"), target: target)
            #expect(t.bytes == w.bytes)  // same intermediate key, new wrap
            rewrapped.insert(t.reference)
        }
        #expect(kms.rewraps == 1)
        #expect(rewrapped.count == 1)
        let new = rewrapped.first!
        #expect(new.keyID == "k1:v2")
        #expect(try keys.isCurrent(new, target: target))
        // Another provider: the object gets that provider's key.
        let toRaw = try keys.rewrapTarget(for: w.reference, identity: photo, target: KeySpec(provider: .raw))
        #expect(toRaw.reference == (try KeyReference(provider: "raw", keyID: rawKey.idHex)))
        #expect(try keys.isCurrent(toRaw.reference, target: KeySpec(provider: .raw)))
        // `rotate` runs in its own process: its first intermediate key is wrapped under the newest version.
        let rotator = try service(remote: kms)
        let fromRaw = try rotator.rewrapTarget(for: toRaw.reference, identity: photo, target: target)
        #expect(fromRaw.reference.provider == "vault-transit" && fromRaw.reference.keyID == "k1:v2")
    }

    @Test func rawKeyFilesAcceptHexAndBase64Only() throws {
        let key = (0..<32).map { UInt8($0) }
        #expect(try RawKeyFile.parse(Array((Encoding.hex(key) + "\n").utf8)) == key)
        #expect(try RawKeyFile.parse(Array(("  " + Data(key).base64EncodedString() + "\r\n").utf8)) == key)
        let urlSafe = Data(key).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        #expect(try RawKeyFile.parse(Array(urlSafe.utf8)) == key)
        for bad in ["", "abc", String(repeating: "a", count: 63), Data(key.prefix(16)).base64EncodedString(), "correct horse battery staple"] {
            do {
                _ = try RawKeyFile.parse(Array(bad.utf8))
                Issue.record("accepted \(bad)")
            } catch {
                #expect(!bad.isEmpty ? !error.message.contains(bad) || bad.count < 4 : true)
            }
        }
    }

    @Test func passwordKeysMatchFormatVersionOneAndTheSaltChangesThem() throws {
        let v1 = try KeyEncryptionKey.derive(password: "correct horse battery staple")
        let plain = try LocalKey.password("correct horse battery staple")
        #expect(plain.id == v1.id && plain.bytes == v1.key)
        let salted = try LocalKey.password("correct horse battery staple", salt: Array("deployment-salt-0001".utf8))
        #expect(salted.id != plain.id && salted.bytes != plain.bytes)
        let ring = try LocalKeyring(active: salted, previous: [plain])
        let keys = try KeyService(local: [ring], remote: [], policy: BucketPolicy(defaultKey: KeySpec(provider: .password)))
        #expect(try keys.version1Key(id: v1.id) == v1.key)
        #expect(try keys.wrappingKeyForNewObject(photo)?.reference.keyID == salted.idHex)
    }
}
