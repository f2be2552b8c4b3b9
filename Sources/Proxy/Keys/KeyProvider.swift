import Shared

/// The kinds of key-encryption-key sources the gateway supports. The raw value is what object
/// metadata and configuration name them.
public enum KeyProviderKind: String, Sendable, CaseIterable, CustomStringConvertible {
    /// A 256-bit key read from a file (a mounted Secret); no key derivation.
    case raw
    /// A key derived from a password with scrypt (compatibility; `raw` or a key manager is preferred).
    case password
    /// A symmetric key held by a KMIP 1.4 server, used through Encrypt/Decrypt over mutual TLS.
    case kmip
    /// A key held by AWS KMS, used through Encrypt/Decrypt (SigV4 over HTTPS).
    case awsKMS = "aws-kms"
    /// A key held by Vault/OpenBao's Transit engine, used through encrypt/decrypt/rewrap.
    case vaultTransit = "vault-transit"

    public var description: String { rawValue }

    /// Local providers hold the key-encryption key in the gateway's memory and wrap data keys with
    /// it directly; remote providers never release their key and wrap intermediate keys instead.
    public var isLocal: Bool { self == .raw || self == .password }
}

/// Why a key provider call failed. The code decides what a client sees: `unavailable` is a
/// `503 ServiceUnavailable` (retry later), `denied` a `403 AccessDenied` (the key manager refuses:
/// disabled, revoked or deleted key, missing permission), `invalid` a refusal of damaged input.
public struct KeyProviderError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Not reachable, timed out, 5xx, throttled, TLS handshake failed: try again later.
        case unavailable
        /// The key manager answered and refused: key disabled, revoked, deleted or not permitted.
        case denied
        /// The ciphertext does not decrypt under that key and context (tampered or foreign).
        case invalidCiphertext
        /// A configuration problem: unknown key id, a provider that is not configured.
        case misconfigured
        /// The key manager answered something this client cannot read.
        case protocolError
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The same failure in the format layer's terms.
    public var encryptionError: EncryptionError {
        switch code {
        case .unavailable: return EncryptionError(.keyUnavailable, message)
        case .denied: return EncryptionError(.keyAccessDenied, message)
        case .invalidCiphertext: return EncryptionError(.tamperDetected, message)
        case .misconfigured: return EncryptionError(.unknownKeyID, message)
        case .protocolError: return EncryptionError(.keyUnavailable, message)
        }
    }
}

/// Name/value pairs a remote key manager authenticates together with a wrapped key: the AWS KMS
/// encryption context, the Vault Transit derivation context, the KMIP authenticated data. They tie an
/// intermediate key to the bucket (and, for a per-object key, the object) it protects, and show in the
/// key manager's audit log.
public struct KeyManagerContext: Sendable, Hashable {
    /// Sorted by name; names are unique.
    public let pairs: [Pair]

    public struct Pair: Sendable, Hashable {
        public let name: String
        public let value: String
    }

    public init(_ pairs: [(String, String)]) {
        var seen = Set<String>()
        self.pairs = pairs.filter { seen.insert($0.0).inserted }.map { Pair(name: $0.0, value: $0.1) }
            .sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    }

    public static let bucketName = "s3eg:bucket"
    public static let objectKeyName = "s3eg:key"

    /// The context of an intermediate key shared by the objects of one bucket.
    public static func bucket(_ bucket: String) -> KeyManagerContext { KeyManagerContext([(bucketName, bucket)]) }

    /// The context of an intermediate key used by one object only.
    public static func object(bucket: String, key: String) -> KeyManagerContext {
        KeyManagerContext([(bucketName, bucket), (objectKeyName, key)])
    }

    /// Unambiguous bytes for providers that take opaque authenticated data (KMIP, Vault):
    /// `"s3eg/context/v1" || for each pair: u32be(len(name)) || name || u32be(len(value)) || value`.
    public var canonicalBytes: [UInt8] {
        var out = Array("s3eg/context/v1".utf8)
        for pair in pairs {
            for part in [Array(pair.name.utf8), Array(pair.value.utf8)] {
                withUnsafeBytes(of: UInt32(truncatingIfNeeded: part.count).bigEndian) { out.append(contentsOf: $0) }
                out.append(contentsOf: part)
            }
        }
        return out
    }
}

/// A key manager that keeps its key: it wraps and unwraps short secrets (the gateway's 32-byte
/// intermediate keys) but never releases the key-encryption key itself. Implementations are
/// thread-safe and block the calling thread for the round trip.
public protocol RemoteKeyProvider: AnyObject, Sendable {
    var kind: KeyProviderKind { get }

    /// The active key when a policy names none (`KMIP_KEY_ID`, `AWS_KMS_KEY_ID`, `VAULT_TRANSIT_KEY`).
    var defaultKeyName: String { get }

    /// Wraps `secret` under the key `keyName` and returns the key id to record (with its version
    /// where the provider has versions) and the provider's ciphertext.
    func wrap(_ secret: [UInt8], keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8])

    /// Unwraps a ciphertext that `wrap` returned for `keyID` under the same context.
    func unwrap(_ ciphertext: [UInt8], keyID: String, context: KeyManagerContext) throws(KeyProviderError) -> [UInt8]

    /// Whether `keyID` (as recorded) is the current version of `keyName`, so `rotate` can skip it.
    func isCurrent(keyID: String, keyName: String) throws(KeyProviderError) -> Bool

    /// Re-wraps `ciphertext` under the newest version of its key without revealing the secret to the
    /// gateway where the provider can (Vault `rewrap`, KMS `ReEncrypt`); others unwrap and wrap.
    func rewrap(_ ciphertext: [UInt8], keyID: String, keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8])

    /// One cheap authenticated call that proves the provider is reachable and the key usable.
    func checkHealth(keyName: String) throws(KeyProviderError)
}

extension RemoteKeyProvider {
    public func rewrap(_ ciphertext: [UInt8], keyID: String, keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8]) {
        let secret = try unwrap(ciphertext, keyID: keyID, context: context)
        return try wrap(secret, keyName: keyName, context: context)
    }
}
