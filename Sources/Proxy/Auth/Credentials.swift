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
///
/// The key is a `Substring`: SigV4 verification looks up a slice of the Authorization header, which then needs
/// no String (a malloc per request for a 20-character key, issue 12). `someString[...]` passes a whole String.
protocol CredentialProvider: Sendable {
    func credential(forAccessKey accessKey: Substring) -> Credential?
}

/// A single configured key pair with full access (`GATEWAY_ACCESS_KEY`/`GATEWAY_SECRET_KEY`).
struct StaticCredentials: CredentialProvider {
    var credential: Credential

    init(accessKey: String, secretKey: String) {
        credential = Credential(accessKey: accessKey, secretKey: secretKey)
    }

    func credential(forAccessKey accessKey: Substring) -> Credential? {
        // Access key ids are not secret; the comparison need not be constant-time.
        accessKey == credential.accessKey ? credential : nil
    }
}

/// The current set of credentials, replaced as a whole when `GATEWAY_CREDENTIALS_FILE` changes.
///
/// Lookups take no lock (`ReadMostly`); requests in flight keep the set they started with.
final class CredentialStore: CredentialProvider {
    private struct Snapshot: Sendable {
        /// Keyed by `Substring` so that a slice of a request header looks up without a copy.
        let byAccessKey: [Substring: Credential]
        init(_ credentials: [Credential]) {
            byAccessKey = Dictionary(credentials.map { ($0.accessKey[...], $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    private let current: ReadMostly<Snapshot>

    init(_ credentials: [Credential]) {
        current = ReadMostly(Snapshot(credentials))
    }

    func credential(forAccessKey accessKey: Substring) -> Credential? {
        current.value.byAccessKey[accessKey]
    }

    /// Replaces the whole set. Signing keys cached for the old set are dropped too.
    func replace(with credentials: [Credential]) {
        current.replace(Snapshot(credentials))
        SigningKeyCache.forgetAll()
    }

    var count: Int { current.value.byAccessKey.count }
}
