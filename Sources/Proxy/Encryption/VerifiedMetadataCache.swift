import Glibc
import Synchronization

/// The exact bytes a metadata check depends on: the object's bucket and key and every gateway header
/// (`x-amz-meta-s3eg-*`, any case) of a backend answer, names and values as they arrived and in their order.
/// Two answers with equal fingerprints parse to the same metadata and verify (or fail) alike, so a
/// verification done for one holds for the other.
struct MetadataFingerprint: Hashable, Sendable {
    /// Length-prefixed pieces, so that no two different inputs give the same bytes.
    let bytes: [UInt8]
    /// Hashed once here, outside the cache's lock.
    private let digest: Int

    init(fields: [(name: String, value: String)], identity: ObjectIdentity) {
        // Runs on every encrypted GET (issue 12): one pass finds the gateway's fields and the exact size, the second
        // copies just those into one allocation (no per-append growth or uniqueness checks).
        var size = 8 + identity.bucket.utf8.count + identity.key.utf8.count
        var ours: UInt64 = 0  // which of the first 64 fields are the gateway's (later ones are checked again)
        fields.withUnsafeBufferPointer { fields in
            for i in fields.indices where EncryptionMetadata.isReserved(headerName: fields[i].name) {
                size += 8 + fields[i].name.utf8.count + fields[i].value.utf8.count
                if i < 64 { ours |= 1 << UInt64(i) }
            }
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            func piece(_ s: String) {
                let n = s.utf8.count
                precondition(count + 4 + n <= buffer.count, "fingerprint size miscounted")
                buffer[count] = UInt8(truncatingIfNeeded: n >> 24)
                buffer[count + 1] = UInt8(truncatingIfNeeded: n >> 16)
                buffer[count + 2] = UInt8(truncatingIfNeeded: n >> 8)
                buffer[count + 3] = UInt8(truncatingIfNeeded: n)
                count += 4
                let copied = s.utf8.withContiguousStorageIfAvailable { utf8 in
                    UnsafeMutableBufferPointer(rebasing: buffer[count..<(count + n)]).initialize(fromContentsOf: utf8)
                }
                if copied == nil { _ = UnsafeMutableBufferPointer(rebasing: buffer[count..<(count + n)]).initialize(from: s.utf8) }
                count += n
            }
            piece(identity.bucket)
            piece(identity.key)
            fields.withUnsafeBufferPointer { fields in
                for i in fields.indices {
                    guard i < 64 ? ours & (1 << UInt64(i)) != 0 : EncryptionMetadata.isReserved(headerName: fields[i].name) else { continue }
                    piece(fields[i].name)
                    piece(fields[i].value)
                }
            }
        }
        var hasher = Hasher()
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        self.bytes = bytes
        self.digest = hasher.finalize()
    }

    func hash(into hasher: inout Hasher) { hasher.combine(digest) }

    static func == (a: MetadataFingerprint, b: MetadataFingerprint) -> Bool {
        // memcmp, not `Array ==`: its element loop cost ~3 000 instructions per cache hit (a few hundred bytes).
        guard a.digest == b.digest, a.bytes.count == b.bytes.count else { return false }
        return a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
        }
    }
}

/// Metadata that `ObjectEncryptor.dataKey(of:identity:)` verified, with the data key it unwrapped, by the
/// fingerprint of the backend headers it was parsed from: a hot object's later reads skip the parse, the
/// unwrap, HKDF and the MAC (issue 12). Bounded (`capacity`, least recently used first) and time-limited
/// (`ttl` after the check, whatever its use), like the key manager's own cache: a key revoked there stops
/// working here within `ttl`. Only successes are kept; a failing check is redone every time.
final class VerifiedMetadataCache: Sendable {
    let capacity: Int
    let ttl: Duration
    private let clock: @Sendable () -> ContinuousClock.Instant

    /// A class, so that a hit under the lock is one lookup and a retain; its use is recorded outside the lock.
    private final class Entry: Sendable {
        let metadata: EncryptionMetadata
        let dataKey: DataKey
        let expires: ContinuousClock.Instant
        let lastUse: Atomic<UInt64>

        init(metadata: EncryptionMetadata, dataKey: DataKey, expires: ContinuousClock.Instant, use: UInt64) {
            self.metadata = metadata
            self.dataKey = dataKey
            self.expires = expires
            self.lastUse = Atomic(use)
        }
    }

    /// Read-mostly: every hit of every request reads, only a miss writes. With a mutex, the concurrent hits of
    /// one hot object queued on its lock (about 2 % of a c=64 profile in the lock's slow path).
    private let entries = ReadWriteLocked<[MetadataFingerprint: Entry]>([:])
    private let tick = Atomic<UInt64>(0)

    /// `ttl == .zero` or `capacity == 0` keeps nothing.
    init(capacity: Int, ttl: Duration, clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.capacity = max(0, capacity)
        self.ttl = ttl
        self.clock = clock
    }

    var isEnabled: Bool { capacity > 0 && ttl > .zero }

    var count: Int { entries.read { $0.count } }

    /// The verified metadata and data key for `fingerprint`, or nil (expired entries are dropped).
    func lookup(_ fingerprint: MetadataFingerprint) -> (metadata: EncryptionMetadata, dataKey: DataKey)? {
        guard isEnabled else { return nil }
        let now = clock()
        // An expired entry stays until the next insert replaces or evicts it.
        guard let found = entries.read({ $0[fingerprint] }), found.expires > now else { return nil }
        found.lastUse.store(tick.wrappingAdd(1, ordering: .relaxed).newValue, ordering: .relaxed)
        return (found.metadata, found.dataKey)
    }

    func insert(_ metadata: EncryptionMetadata, dataKey: DataKey, for fingerprint: MetadataFingerprint) {
        guard isEnabled else { return }
        let now = clock()
        let entry = Entry(metadata: metadata, dataKey: dataKey, expires: now + ttl,
                          use: tick.wrappingAdd(1, ordering: .relaxed).newValue)
        entries.write { entries in
            entries[fingerprint] = entry
            guard entries.count > capacity else { return }
            // Expired entries first, then the least recently used down to 7/8 of capacity (amortises the sort).
            entries = entries.filter { $0.value.expires > now }
            let target = capacity - capacity / 8
            guard entries.count > target else { return }
            let victims = entries.map { (key: $0.key, use: $0.value.lastUse.load(ordering: .relaxed)) }
                .sorted { $0.use < $1.use }.prefix(entries.count - target)
            for victim in victims { entries[victim.key] = nil }
        }
    }
}

/// A value behind a `pthread_rwlock_t`: readers share it, a writer has it alone.
private final class ReadWriteLocked<Value>: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        lock.initialize(to: pthread_rwlock_t())
        precondition(pthread_rwlock_init(lock, nil) == 0, "pthread_rwlock_init failed")
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deinitialize(count: 1)
        lock.deallocate()
    }

    func read<R>(_ body: (Value) throws -> R) rethrows -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(value)
    }

    func write<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(&value)
    }
}
