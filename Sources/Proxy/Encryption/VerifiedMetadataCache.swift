import Glibc
import Synchronization

/// The exact bytes a metadata check depends on: the object's bucket and key and every gateway header
/// (`x-amz-meta-s3eg-*`, any case) of a backend answer, names and values as they arrived and in their order.
/// Two answers with equal fingerprints parse to the same metadata and verify (or fail) alike, so a
/// verification done for one holds for the other.
///
/// A request's fingerprint (a probe) keeps the answer's fields and compares them in place; only the one the
/// cache keeps is laid out as bytes (`stored`), so a hit builds no byte array (issue 12: ~3–4 k instructions
/// and an allocation per encrypted GET).
struct MetadataFingerprint: Hashable, Sendable {
    private enum Form: Sendable {
        /// Length-prefixed pieces (4-byte big-endian length, then the UTF-8), so that no two different
        /// inputs give the same bytes.
        case bytes([UInt8])
        /// The same pieces, not yet laid out: read from these fields and this identity.
        case fields([(name: String, value: String)], ObjectIdentity)
    }

    private let form: Form
    /// Hashed once, outside the cache's lock.
    ///
    /// Only over part of the pieces (the identity, and each gateway value's length and last 8 bytes, folded): it picks
    /// the dictionary's bucket and nothing more. Whether a cached entry is used is decided by `==`, which
    /// compares every byte of every piece, so no digest, colliding or not, can match an answer to another
    /// answer's key or format. Entries are only ever metadata the gateway's own MAC verified, whose values end
    /// in random bytes (wrapped key, MAC), so their digests spread.
    private let digest: Int

    init(fields: [(name: String, value: String)], identity: ObjectIdentity) {
        // No `var` is captured by a closure here or in `matches`: a captured var costs a dynamic exclusivity check
        // (swift_beginAccess) per access, which ate this type's saving the first time (issue 12).
        var hasher = Hasher()
        // String hashing: the UTF-8 bytes of an ASCII string, then a 0xff terminator (no UTF-8 byte), so bucket
        // and key cannot slide into each other.
        hasher.combine(identity.bucket)
        hasher.combine(identity.key)
        // Each gateway value's length and last 8 bytes, folded into one word and combined once.
        let tails = fields.withUnsafeBufferPointer { fields in
            var tails: UInt64 = 0
            for i in fields.indices where EncryptionMetadata.isReserved(headerName: fields[i].name) {
                let (count, tail) = Self.withBytes(fields[i].value) { Self.lengthAndTail($0) }
                tails = (tails ^ UInt64(truncatingIfNeeded: count)) &* 0x0000_0100_0000_01b3
                tails = (tails ^ tail) &* 0x0000_0100_0000_01b3
            }
            return tails
        }
        hasher.combine(tails)
        self.form = .fields(fields, identity)
        self.digest = hasher.finalize()
    }

    /// The byte count and the last (up to) 8 bytes as one word.
    private static func lengthAndTail(_ bytes: UnsafeBufferPointer<UInt8>) -> (Int, UInt64) {
        let n = bytes.count
        guard n >= 8 else {
            var tail: UInt64 = 0
            for byte in bytes { tail = tail << 8 | UInt64(byte) }
            return (n, tail)
        }
        return (n, UnsafeRawPointer(bytes.baseAddress! + (n - 8)).loadUnaligned(as: UInt64.self))
    }

    private init(bytes: [UInt8], digest: Int) {
        self.form = .bytes(bytes)
        self.digest = digest
    }

    /// This fingerprint laid out as bytes, for keeping: the cache holds no answer's other headers.
    var stored: MetadataFingerprint {
        switch form {
        case .bytes: return self
        case .fields(let fields, let identity):
            return MetadataFingerprint(bytes: Self.layOut(fields, identity), digest: digest)
        }
    }

    /// The laid-out pieces (tests compare with them).
    var layout: [UInt8] {
        switch form {
        case .bytes(let bytes): return bytes
        case .fields(let fields, let identity): return Self.layOut(fields, identity)
        }
    }

    func hash(into hasher: inout Hasher) { hasher.combine(digest) }

    static func == (a: MetadataFingerprint, b: MetadataFingerprint) -> Bool {
        guard a.digest == b.digest else { return false }
        switch (a.form, b.form) {
        case (.bytes(let x), .bytes(let y)):
            // memcmp, not `Array ==`: its element loop cost ~3 000 instructions per cache hit (a few hundred bytes).
            guard x.count == y.count else { return false }
            return x.withUnsafeBytes { x in
                y.withUnsafeBytes { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
            }
        case (.bytes(let bytes), .fields(let fields, let identity)), (.fields(let fields, let identity), .bytes(let bytes)):
            return matches(bytes, fields, identity)
        case (.fields, .fields(let fields, let identity)):
            // Two probes (tests): the same in-place comparison against one of them laid out.
            guard case .bytes(let bytes) = a.stored.form else { return false }
            return matches(bytes, fields, identity)
        }
    }

    /// Whether `bytes` is exactly the layout of these pieces: piece by piece, length prefix and content,
    /// and nothing left over. An explicit cursor (`match` returns the next offset, or -1): no captured var.
    private static func matches(_ bytes: [UInt8], _ fields: [(name: String, value: String)], _ identity: ObjectIdentity) -> Bool {
        // The fields are read in place through the array's buffer (a `for field in fields` copy retained and
        // released both strings of every field: ≈ 1.4 k instructions per hit).
        bytes.withUnsafeBufferPointer { bytes in
            fields.withUnsafeBufferPointer { fields in
                var offset = match(identity.bucket, in: bytes, at: 0)
                offset = match(identity.key, in: bytes, at: offset)
                for i in fields.indices where EncryptionMetadata.isReserved(headerName: fields[i].name) {
                    guard offset >= 0 else { return false }
                    offset = match(fields[i].name, in: bytes, at: offset)
                    offset = match(fields[i].value, in: bytes, at: offset)
                }
                return offset == bytes.count
            }
        }
    }

    /// The offset after `s`'s piece if `bytes` holds it at `offset` (length prefix, then the UTF-8); -1 if not,
    /// or if `offset` is already -1.
    private static func match(_ s: String, in bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> Int {
        guard offset >= 0 else { return -1 }
        return withBytes(s) { utf8 in
            let n = utf8.count
            guard bytes.count - offset >= 4 + n else { return -1 }
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard length == n, n == 0 || memcmp(bytes.baseAddress! + offset + 4, utf8.baseAddress!, n) == 0 else { return -1 }
            return offset + 4 + n
        }
    }

    /// The pieces laid out (once per verified entry, not per request).
    private static func layOut(_ fields: [(name: String, value: String)], _ identity: ObjectIdentity) -> [UInt8] {
        var bytes: [UInt8] = []
        func piece(_ s: String) {
            let n = s.utf8.count
            precondition(n <= Int(UInt32.max), "header piece too long")
            bytes += [UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16),
                      UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
            bytes += s.utf8
        }
        piece(identity.bucket)
        piece(identity.key)
        for field in fields where EncryptionMetadata.isReserved(headerName: field.name) {
            piece(field.name)
            piece(field.value)
        }
        return bytes
    }

    /// The string's UTF-8, contiguous (native strings already are; others are copied once).
    private static func withBytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = s.utf8.withContiguousStorageIfAvailable(body) { return r }
        var copy = s
        return copy.withUTF8(body)
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
        let key = fingerprint.stored  // laid out outside the lock
        entries.write { entries in
            entries[key] = entry
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
