import Shared
import Synchronization

/// A backend key pair a client credential is mapped to, so the backend's own per-user ACLs, bucket
/// policies and quotas apply to the client (instead of every client acting as the gateway's backend user).
struct BackendCredential: Sendable, Equatable {
    var accessKey: String
    var secretKey: String
}

/// One client identity the gateway accepts, with what it may do.
struct Credential: Sendable, Equatable {
    var accessKey: String
    var secretKey: String
    /// Buckets this credential may address; nil means every bucket.
    var buckets: Set<String>?
    /// Only reads (GET/HEAD) are allowed.
    var readOnly = false
    /// The backend key pair its requests are signed with; nil means the gateway's `BACKEND_*` pair.
    var backend: BackendCredential?

    init(accessKey: String, secretKey: String, buckets: Set<String>? = nil, readOnly: Bool = false,
         backend: BackendCredential? = nil) {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.buckets = buckets
        self.readOnly = readOnly
        self.backend = backend
    }

    /// Whether this credential may address `bucket`.
    func allows(bucket: String) -> Bool { buckets?.contains(bucket) ?? true }
}

/// Looks up the credential of an access key id.
protocol CredentialProvider: Sendable {
    func credential(forAccessKey accessKey: String) -> Credential?
}

/// A single configured key pair with full access (`GATEWAY_ACCESS_KEY`/`GATEWAY_SECRET_KEY`).
struct StaticCredentials: CredentialProvider {
    var credential: Credential

    init(accessKey: String, secretKey: String) {
        credential = Credential(accessKey: accessKey, secretKey: secretKey)
    }

    func credential(forAccessKey accessKey: String) -> Credential? {
        // Access key ids are not secret; the comparison need not be constant-time.
        accessKey == credential.accessKey ? credential : nil
    }
}

/// The current set of credentials, replaced as a whole when `GATEWAY_CREDENTIALS_FILE` changes.
///
/// Lookups take no lock: each thread keeps the snapshot it last used (per store) with the generation it
/// belongs to, and checks one atomic generation per lookup; only a thread's first lookup after a
/// replacement takes the lock, for nanoseconds, to fetch the new snapshot. Requests in flight keep the set
/// they started with.
final class CredentialStore: CredentialProvider {
    fileprivate final class Snapshot: Sendable {
        let byAccessKey: [String: Credential]
        init(_ credentials: [Credential]) {
            byAccessKey = Dictionary(credentials.map { ($0.accessKey, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    private let current: Mutex<Snapshot>
    /// Advanced (under `current`'s lock) by every replacement.
    private let generation = Atomic<UInt64>(0)
    /// Tells this store's snapshots apart in the threads' caches (never reused, unlike an address).
    private let id: UInt64

    init(_ credentials: [Credential]) {
        current = Mutex(Snapshot(credentials))
        id = Self.ids.add(1, ordering: .relaxed).newValue
    }

    func credential(forAccessKey accessKey: String) -> Credential? {
        snapshot().byAccessKey[accessKey]
    }

    /// Replaces the whole set. Signing keys cached for the old set are dropped too.
    func replace(with credentials: [Credential]) {
        let snapshot = Snapshot(credentials)
        current.withLock {
            $0 = snapshot
            generation.add(1, ordering: .releasing)
        }
        SigningKeyCache.forgetAll()
    }

    var count: Int { snapshot().byAccessKey.count }

    private func snapshot() -> Snapshot {
        let seen = generation.load(ordering: .acquiring)
        let local = Self.threadSnapshots.current
        if let snapshot = local.snapshot(store: id, generation: seen) { return snapshot }
        let (snapshot, itsGeneration) = current.withLock { ($0, self.generation.load(ordering: .relaxed)) }
        local.keep(snapshot, store: id, generation: itsGeneration)
        return snapshot
    }

    private static let ids = Atomic<UInt64>(0)
    private static let threadSnapshots = ThreadLocal { ThreadSnapshots() }
}

/// The snapshots one thread last used, one per store (the few stores a process has). Only its thread touches it.
private final class ThreadSnapshots {
    private static let limit = 4
    private var entries: [(store: UInt64, generation: UInt64, snapshot: CredentialStore.Snapshot)] = []

    func snapshot(store: UInt64, generation: UInt64) -> CredentialStore.Snapshot? {
        for entry in entries where entry.store == store {
            return entry.generation == generation ? entry.snapshot : nil
        }
        return nil
    }

    func keep(_ snapshot: CredentialStore.Snapshot, store: UInt64, generation: UInt64) {
        entries.removeAll { $0.store == store }
        if entries.count >= Self.limit { entries.removeFirst() }
        entries.append((store, generation, snapshot))
    }
}
