import Shared

/// Names the key that wrapped an object's data key (docs/FORMAT.md §4): the key provider, the provider's
/// key id (including its version, if the provider has versions) and, for providers that keep their key in a
/// key manager, the intermediate key the manager wrapped. Stored in the object's metadata and in upload ids.
public struct KeyReference: Sendable, Hashable, CustomStringConvertible {
    /// `[a-z0-9-]{1,32}`: `password`, `raw`, `kmip`, `aws-kms`, `vault-transit`, ...
    public let provider: String
    /// Printable ASCII (0x21–0x7E) except `,`, 1…256 bytes.
    public let keyID: String
    /// The provider's wrapped intermediate key, 1…1024 bytes; nil when the provider's key wraps data keys directly.
    public let wrappedIntermediateKey: [UInt8]?

    public init(provider: String, keyID: String, wrappedIntermediateKey: [UInt8]? = nil) throws(EncryptionError) {
        guard Self.isValidProvider(provider) else {
            throw EncryptionError(.invalidParameter, "key provider name \"\(provider.prefix(40))\" is not 1…\(FormatV2.maxProviderLength) of [a-z0-9-]")
        }
        guard Self.isValidKeyID(keyID) else {
            throw EncryptionError(.invalidParameter, "key id \"\(keyID.prefix(40))\" is not 1…\(FormatV2.maxKeyIDLength) printable ASCII characters without ','")
        }
        if let ik = wrappedIntermediateKey {
            guard (1...FormatV2.maxWrappedLength).contains(ik.count) else {
                throw EncryptionError(.invalidParameter, "a wrapped intermediate key has 1…\(FormatV2.maxWrappedLength) bytes, got \(ik.count)")
            }
        }
        self.provider = provider
        self.keyID = keyID
        self.wrappedIntermediateKey = wrappedIntermediateKey
    }

    public var description: String { "\(provider):\(keyID)\(wrappedIntermediateKey == nil ? "" : " (intermediate key)")" }

    static func isValidProvider(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return (1...FormatV2.maxProviderLength).contains(bytes.count)
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
    }

    static func isValidKeyID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return (1...FormatV2.maxKeyIDLength).contains(bytes.count) && bytes.allSatisfy { $0 >= 0x21 && $0 <= 0x7e && $0 != 0x2c }
    }
}

/// A data key as stored: the reference to the key that wrapped it and the wrapped bytes.
public struct WrappedDataKey: Sendable, Equatable {
    public let reference: KeyReference
    /// 1…1024 bytes; 60 (`nonce || encrypted DEK || tag`) for every provider that uses `LocalKeyWrap`.
    public let bytes: [UInt8]

    public init(reference: KeyReference, bytes: [UInt8]) throws(EncryptionError) {
        guard (1...FormatV2.maxWrappedLength).contains(bytes.count) else {
            throw EncryptionError(.invalidParameter, "a wrapped data key has 1…\(FormatV2.maxWrappedLength) bytes, got \(bytes.count)")
        }
        self.reference = reference
        self.bytes = bytes
    }
}

/// What every data-key wrap authenticates besides the key: the object's bucket and key (docs/FORMAT.md §4).
public struct WrapContext: Sendable, Equatable {
    public let identity: ObjectIdentity

    public init(identity: ObjectIdentity) {
        self.identity = identity
    }

    /// The exact AAD of a version 2 wrap under `reference`:
    /// `"s3eg/v2 dek" 0x00 || str(provider) || str(keyID) || str(ik or empty) || str(bucket) || str(key)`.
    public func associatedData(reference: KeyReference) -> [UInt8] {
        var aad = FormatV2.wrapAADLabel
        aad.appendField(reference.provider)
        aad.appendField(reference.keyID)
        aad.appendField(reference.wrappedIntermediateKey ?? [])
        aad.appendField(identity.bucket)
        aad.appendField(identity.key)
        return aad
    }
}

/// Wraps and unwraps data keys for the object format. Key providers implement it; `ObjectEncryptor` holds one.
///
/// Implementations must authenticate `context.associatedData(reference:)` in every wrap, so that a wrapped key
/// opens only under its own object's name and key reference (use `LocalKeyWrap` for the standard scheme), must
/// throw `unknownKeyID` for a reference they cannot resolve and `tamperDetected` when a wrap does not verify.
public protocol DataKeyWrapping: Sendable {
    /// Wraps a new object's data key with the active key.
    func wrap(_ dataKey: DataKey, context: WrapContext) throws(EncryptionError) -> WrappedDataKey
    /// Unwraps a stored data key.
    func unwrap(_ wrapped: WrappedDataKey, context: WrapContext) throws(EncryptionError) -> DataKey
    /// The password key of a version 1 object (8-byte key id, §2), nil when it is not configured.
    func v1Key(id: [UInt8]) -> KeyEncryptionKey?
    /// Whether `reference` names the key new objects are wrapped with (an intermediate key may differ):
    /// `rotate` leaves such objects alone.
    func isActive(_ reference: KeyReference) -> Bool
}

/// A 32-byte key that wraps data keys with `LocalKeyWrap`, and the reference stored with them.
public struct WrappingKey: Sendable {
    public let reference: KeyReference
    let bytes: [UInt8]

    public init(reference: KeyReference, bytes: [UInt8]) throws(EncryptionError) {
        guard bytes.count == 32 else { throw EncryptionError(.invalidParameter, "a wrapping key has 32 bytes, got \(bytes.count)") }
        self.reference = reference
        self.bytes = bytes
    }
}

/// The standard data-key wrap of docs/FORMAT.md §4: AES-256-GCM under a 32-byte wrapping key, a random
/// 12-byte nonce, the version 2 wrap AAD; stored as `nonce || encrypted DEK || tag` (60 bytes).
public enum LocalKeyWrap {
    public static let wrappedSize = FormatV1.wrappedKeySize

    public static func seal(_ dataKey: DataKey, with key: WrappingKey, context: WrapContext) throws(EncryptionError) -> WrappedDataKey {
        try seal(dataKey, with: key, context: context, nonce: SecureRandom.bytes(FormatV1.wrapNonceSize))
    }

    /// Deterministic variant for test vectors; production always uses a random nonce.
    static func seal(_ dataKey: DataKey, with key: WrappingKey, context: WrapContext, nonce: [UInt8]) throws(EncryptionError) -> WrappedDataKey {
        let sealed: [UInt8]
        do {
            sealed = try AEAD.seal(.aes256GCM, key: key.bytes, nonce: nonce, aad: context.associatedData(reference: key.reference),
                                   plaintext: dataKey.bytes)
        } catch {
            throw EncryptionError(.internalFailure, "wrapping the data key failed: \(error)")
        }
        return try WrappedDataKey(reference: key.reference, bytes: nonce + sealed)
    }

    /// `key` must be the wrapping key `wrapped.reference` names.
    public static func open(_ wrapped: WrappedDataKey, with key: WrappingKey, context: WrapContext) throws(EncryptionError) -> DataKey {
        guard wrapped.bytes.count == wrappedSize else {
            throw EncryptionError(.malformedMetadata, "gateway metadata is damaged: the wrapped key has \(wrapped.bytes.count) bytes, expected \(wrappedSize)")
        }
        let nonce = Array(wrapped.bytes[0..<FormatV1.wrapNonceSize])
        let sealed = Array(wrapped.bytes[FormatV1.wrapNonceSize...])
        do {
            return try DataKey(bytes: AEAD.open(.aes256GCM, key: key.bytes, nonce: nonce,
                                                aad: context.associatedData(reference: wrapped.reference), sealed: sealed))
        } catch AEADError.authenticationFailed {
            throw EncryptionError(.tamperDetected, "the data key of \(context.identity.bucket)/\(context.identity.key) does not unwrap: its metadata was modified or it belongs to another object")
        } catch {
            throw EncryptionError(.internalFailure, "unwrapping the data key failed: \(error)")
        }
    }
}
