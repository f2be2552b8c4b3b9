import Synchronization

/// The exact bytes a metadata check depends on: the object's bucket and key and every gateway header
/// (`x-amz-meta-s3eg-*`, any case) of a backend answer, names and values as they arrived and in their order.
/// Two answers with equal fingerprints parse to the same metadata and verify (or fail) alike, so a
/// verification done for one holds for the other.
struct MetadataFingerprint: Hashable, Sendable {
    /// Length-prefixed pieces, so that no two different inputs give the same text.
    let text: String

    init(fields: [(name: String, value: String)], identity: ObjectIdentity) {
        var text = ""
        text.reserveCapacity(512)
        func piece(_ s: String) {
            text += String(s.utf8.count)
            text += ":"
            text += s
        }
        piece(identity.bucket)
        piece(identity.key)
        for field in fields where EncryptionMetadata.isReserved(headerName: field.name) {
            piece(field.name)
            piece(field.value)
        }
        self.text = text
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

    private struct Entry {
        var metadata: EncryptionMetadata
        var dataKey: DataKey
        var expires: ContinuousClock.Instant
        var lastUse: UInt64
    }

    private struct State {
        var entries: [MetadataFingerprint: Entry] = [:]
        var tick: UInt64 = 0
    }

    private let state = Mutex(State())

    /// `ttl == .zero` or `capacity == 0` keeps nothing.
    init(capacity: Int, ttl: Duration, clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.capacity = max(0, capacity)
        self.ttl = ttl
        self.clock = clock
    }

    var isEnabled: Bool { capacity > 0 && ttl > .zero }

    var count: Int { state.withLock { $0.entries.count } }

    /// The verified metadata and data key for `fingerprint`, or nil (expired entries are dropped).
    func lookup(_ fingerprint: MetadataFingerprint) -> (metadata: EncryptionMetadata, dataKey: DataKey)? {
        guard isEnabled else { return nil }
        let now = clock()
        return state.withLock { s -> (metadata: EncryptionMetadata, dataKey: DataKey)? in
            guard var entry = s.entries[fingerprint] else { return nil }
            guard entry.expires > now else {
                s.entries[fingerprint] = nil
                return nil
            }
            s.tick += 1
            entry.lastUse = s.tick
            s.entries[fingerprint] = entry
            return (entry.metadata, entry.dataKey)
        }
    }

    func insert(_ metadata: EncryptionMetadata, dataKey: DataKey, for fingerprint: MetadataFingerprint) {
        guard isEnabled else { return }
        let now = clock()
        state.withLock { s in
            s.tick += 1
            s.entries[fingerprint] = Entry(metadata: metadata, dataKey: dataKey, expires: now + ttl, lastUse: s.tick)
            guard s.entries.count > capacity else { return }
            // Expired entries first, then the least recently used down to 7/8 of capacity (amortises the sort).
            s.entries = s.entries.filter { $0.value.expires > now }
            let target = capacity - capacity / 8
            guard s.entries.count > target else { return }
            let victims = s.entries.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(s.entries.count - target)
            for (key, _) in victims { s.entries[key] = nil }
        }
    }
}
