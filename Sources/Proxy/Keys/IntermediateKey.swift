import Shared

/// The gateway's envelope around a key manager's ciphertext of an intermediate key, as stored in
/// the object metadata's wrapped-intermediate-key field (docs/keys.md):
///
/// ```
/// wrappedIntermediateKey = u8(1) || u8(scope) || providerCiphertext
/// scope 1 = bucket: wrapped under the context {s3eg:bucket: <bucket>}, shared by the objects of one bucket
/// scope 2 = object: wrapped under {s3eg:bucket: <bucket>, s3eg:key: <object key>}, used by one object
/// ```
///
/// The scope says which context to send back to the key manager when unwrapping.
public struct IntermediateKeyEnvelope: Sendable, Equatable {
    public enum Scope: UInt8, Sendable {
        case bucket = 1
        case object = 2
    }

    public static let version: UInt8 = 1
    /// An intermediate key is an AES-256 key.
    public static let keySize = 32
    /// Largest provider ciphertext accepted (AWS KMS blobs are ~180 bytes).
    public static let maxCiphertextSize = 1022

    public var scope: Scope
    public var ciphertext: [UInt8]

    public init(scope: Scope, ciphertext: [UInt8]) {
        self.scope = scope
        self.ciphertext = ciphertext
    }

    public var bytes: [UInt8] { [Self.version, scope.rawValue] + ciphertext }

    public init(parsing bytes: [UInt8]) throws(EncryptionError) {
        guard bytes.count >= 3, bytes.count <= Self.maxCiphertextSize + 2 else {
            throw EncryptionError(.malformedMetadata, "wrapped intermediate key has \(bytes.count) bytes, expected 3…\(Self.maxCiphertextSize + 2)")
        }
        guard bytes[0] == Self.version else {
            throw EncryptionError(.unsupportedVersion, "wrapped intermediate key envelope version \(bytes[0]) is not supported (this gateway reads version 1)")
        }
        guard let scope = Scope(rawValue: bytes[1]) else {
            throw EncryptionError(.malformedMetadata, "wrapped intermediate key has unknown scope \(bytes[1])")
        }
        self.scope = scope
        self.ciphertext = Array(bytes[2...])
    }

    /// The context the key manager authenticates for this envelope and object.
    public func context(for identity: ObjectIdentity) -> KeyManagerContext {
        switch scope {
        case .bucket: return .bucket(identity.bucket)
        case .object: return .object(bucket: identity.bucket, key: identity.key)
        }
    }
}
