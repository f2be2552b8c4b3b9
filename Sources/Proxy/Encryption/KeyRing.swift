import Shared

/// A key-encryption key (KEK) with its public key id. Derived once at start-up.
public struct KeyEncryptionKey: Sendable {
    /// 8 bytes, written to metadata as 16 hex digits. Derived by HKDF, so it reveals nothing about the key.
    public let id: [UInt8]
    let key: [UInt8]

    public var idHex: String { Encoding.hex(id) }

    /// Runs scrypt on `password` (about 100 ms and 32 MiB): call once per password at start-up only.
    public static func derive(password: String) throws(EncryptionError) -> KeyEncryptionKey {
        let master: [UInt8]
        do {
            master = try KDF.scrypt(password: Array(password.utf8), salt: FormatV1.kdfSalt,
                                    n: FormatV1.scryptN, r: FormatV1.scryptR, p: FormatV1.scryptP, length: 32)
        } catch {
            throw EncryptionError(.internalFailure, "scrypt key derivation failed: \(error)")
        }
        return try derive(master: master)
    }

    /// The HKDF step of the derivation, from scrypt's output (exposed for tests and offline tools).
    public static func derive(master: [UInt8]) throws(EncryptionError) -> KeyEncryptionKey {
        do {
            let key = try KDF.hkdfSHA256(key: master, salt: [], info: FormatV1.kekInfo, length: 32)
            let id = try KDF.hkdfSHA256(key: master, salt: [], info: FormatV1.keyIDInfo, length: FormatV1.keyIDSize)
            return KeyEncryptionKey(id: id, key: key)
        } catch {
            throw EncryptionError(.internalFailure, "HKDF failed: \(error)")
        }
    }
}

/// A per-object data key (DEK): 32 random bytes, stored only wrapped.
public struct DataKey: Sendable, Equatable {
    public let bytes: [UInt8]
    /// One segment key derived ahead (`derivingSegmentKey(salt:partNumber:)`), returned by `segmentKey` without HKDF.
    private var derived: DerivedSegmentKey?

    public init(bytes: [UInt8]) throws(EncryptionError) {
        guard bytes.count == FormatV1.dataKeySize else {
            throw EncryptionError(.invalidParameter, "a data key has \(FormatV1.dataKeySize) bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// Equal keys are equal bytes, whatever was derived ahead.
    public static func == (a: DataKey, b: DataKey) -> Bool { a.bytes == b.bytes }

    /// This key carrying the segment key of (`salt`, `partNumber`), derived now, so that later
    /// `segmentKey(salt:partNumber:)` calls for that segment skip HKDF (about 4 % of the CPU of a 4 KiB encrypted
    /// GET, issue 12). The verified-metadata cache keeps keys in this form: a hot object's reads derive nothing.
    func derivingSegmentKey(salt: [UInt8], partNumber: Int) throws(EncryptionError) -> DataKey {
        var copy = self
        copy.derived = DerivedSegmentKey(salt: salt, partNumber: partNumber,
                                         key: try segmentKey(salt: salt, partNumber: partNumber))
        return copy
    }

    /// A fresh key from OpenSSL's DRBG.
    public static func generate() -> DataKey {
        // Force-try: the size is right by construction.
        try! DataKey(bytes: SecureRandom.bytes(FormatV1.dataKeySize))
    }

    /// The segment whose key this data key carries, if any (what the verified-metadata cache holds; for tests).
    var derivedSegment: (salt: [UInt8], partNumber: Int)? { derived.map { ($0.salt, $0.partNumber) } }

    /// Calls `body` with the key of one segment, as `segmentKey(salt:partNumber:)` gives it: the carried key's own
    /// bytes when this key carries that segment's (a hot object's read: no copy of the key in a Swift array, which
    /// nothing could wipe), else a derived one.
    func withSegmentKey<R>(salt: [UInt8], partNumber: Int,
                           _ body: (UnsafeRawBufferPointer) throws(EncryptionError) -> R) throws(EncryptionError) -> R {
        if let derived, derived.partNumber == partNumber, derived.salt == salt { return try derived.withKey(body) }
        let key = try segmentKey(salt: salt, partNumber: partNumber)
        var result: Result<R, EncryptionError>?
        key.withUnsafeBytes { raw in
            do throws(EncryptionError) { result = .success(try body(raw)) } catch { result = .failure(error) }
        }
        return try result!.get()
    }

    /// The spare opening context of the segment this key carries, for an opener of exactly that segment (the key
    /// `withSegmentKey` then hands over is the carried one); nil for any other segment.
    func spareOpenContext(salt: [UInt8], partNumber: Int) -> SpareOpenContext? {
        guard let derived, derived.partNumber == partNumber, derived.salt == salt else { return nil }
        return derived.spare
    }

    /// The key of one segment (a single-part body, or one multipart part): HKDF(DEK, salt, "s3eg/v1 segment" || u32be(pn)).
    public func segmentKey(salt: [UInt8], partNumber: Int) throws(EncryptionError) -> [UInt8] {
        guard salt.count == FormatV1.saltSize else {
            throw EncryptionError(.invalidParameter, "a segment salt has \(FormatV1.saltSize) bytes, got \(salt.count)")
        }
        guard partNumber >= 0, partNumber <= FormatV1.maxPartNumber else {
            throw EncryptionError(.invalidParameter, "part number \(partNumber) outside 0…\(FormatV1.maxPartNumber)")
        }
        if let derived, derived.partNumber == partNumber, derived.salt == salt { return derived.key }
        var info = FormatV1.segmentInfoLabel
        info.appendBigEndian(UInt32(partNumber))
        do {
            return try KDF.hkdfSHA256(key: bytes, salt: salt, info: info, length: 32)
        } catch {
            throw EncryptionError(.internalFailure, "HKDF failed: \(error)")
        }
    }
}

/// A segment key a `DataKey` derived ahead, with the segment it belongs to. It lives as long as a cache entry,
/// so its bytes are held outside Swift's arrays and wiped when the last copy of the data key goes.
private final class DerivedSegmentKey: @unchecked Sendable {
    let salt: [UInt8]
    let partNumber: Int
    /// Written once in `init`, only read afterwards (hence `@unchecked Sendable`).
    private let storage: UnsafeMutableRawBufferPointer
    /// An opening context made from this key, kept between the reads of a cached object.
    let spare = SpareOpenContext()

    init(salt: [UInt8], partNumber: Int, key: [UInt8]) {
        self.salt = salt
        self.partNumber = partNumber
        storage = .allocate(byteCount: key.count, alignment: 16)
        storage.copyBytes(from: key)
    }

    /// A copy for one use (what `segmentKey` returns when it derives, too).
    var key: [UInt8] { Array(storage) }

    /// The key's bytes, for the duration of `body` (no copy).
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws(EncryptionError) -> R) throws(EncryptionError) -> R {
        try body(UnsafeRawBufferPointer(storage))
    }

    deinit {
        SecureMemory.cleanse(storage)
        storage.deallocate()
    }
}

/// Where an object lives; bound into the DEK wrap so a wrapped key only opens under its own name.
public struct ObjectIdentity: Sendable, Hashable {
    public let bucket: String
    public let key: String

    public init(bucket: String, key: String) {
        self.bucket = bucket
        self.key = key
    }
}

/// Everything the DEK wrap authenticates besides the key itself (docs/FORMAT.md §4).
public struct WrapBinding: Sendable, Equatable {
    public let identity: ObjectIdentity
    public let cipher: AEADAlgorithm
    public let chunkSize: Int
    public let layout: ObjectLayout.Kind

    public init(identity: ObjectIdentity, cipher: AEADAlgorithm, chunkSize: Int, layout: ObjectLayout.Kind) {
        self.identity = identity
        self.cipher = cipher
        self.chunkSize = chunkSize
        self.layout = layout
    }

    /// The exact AAD bytes for a given key id.
    func associatedData(keyID: [UInt8]) -> [UInt8] {
        var aad = FormatV1.wrapAADLabel
        aad.append(cipher.rawValue)
        aad.appendBigEndian(UInt32(truncatingIfNeeded: chunkSize))
        aad.append(layout.rawValue)
        aad.append(contentsOf: keyID)
        let bucket = Array(identity.bucket.utf8)
        let key = Array(identity.key.utf8)
        aad.appendBigEndian(UInt32(truncatingIfNeeded: bucket.count))
        aad.append(contentsOf: bucket)
        aad.appendBigEndian(UInt32(truncatingIfNeeded: key.count))
        aad.append(contentsOf: key)
        return aad
    }
}

/// The configured password KEKs: one active key for new writes, older keys for reading. This is the
/// `password` key provider of format version 2 (its key id is the 16-hex-digit id of §2) and the reader of
/// version 1 objects, whose wrap (`WrapBinding`) differs.
public struct KeyRing: Sendable, DataKeyWrapping {
    public let active: KeyEncryptionKey
    /// Every key, active first.
    public let keys: [KeyEncryptionKey]

    /// `previous` keys that equal the active one (same id) are dropped; two different keys with
    /// one id (a 2^-64 event or a broken configuration) are refused.
    public init(active: KeyEncryptionKey, previous: [KeyEncryptionKey] = []) throws(EncryptionError) {
        var keys = [active]
        for key in previous {
            if let existing = keys.first(where: { $0.id == key.id }) {
                guard existing.key == key.key else {
                    throw EncryptionError(.invalidParameter, "two configured keys share the key id \(key.idHex)")
                }
                continue
            }
            keys.append(key)
        }
        self.active = active
        self.keys = keys
    }

    /// Derives every KEK from its password (scrypt, once each). Call at start-up only.
    public static func derive(activePassword: String, previousPasswords: [String] = []) throws(EncryptionError) -> KeyRing {
        guard !activePassword.isEmpty else {
            throw EncryptionError(.invalidParameter, "ENCRYPTION_PASSWORD is empty; set a long random password")
        }
        let active = try KeyEncryptionKey.derive(password: activePassword)
        var previous: [KeyEncryptionKey] = []
        for password in previousPasswords where !password.isEmpty {
            previous.append(try KeyEncryptionKey.derive(password: password))
        }
        return try KeyRing(active: active, previous: previous)
    }

    public func key(id: [UInt8]) -> KeyEncryptionKey? {
        keys.first { $0.id == id }
    }

    // MARK: The `password` provider of format version 2

    /// The wrapping key (the KEK itself) and reference of `kek`.
    static func wrappingKey(_ kek: KeyEncryptionKey) -> WrappingKey {
        // Force-try: the provider name and a 16-hex-digit key id are valid by construction.
        try! WrappingKey(reference: KeyReference(provider: FormatV2.passwordProvider, keyID: kek.idHex), bytes: kek.key)
    }

    public func wrap(_ dataKey: DataKey, context: WrapContext) throws(EncryptionError) -> WrappedDataKey {
        try LocalKeyWrap.seal(dataKey, with: Self.wrappingKey(active), context: context)
    }

    public func unwrap(_ wrapped: WrappedDataKey, context: WrapContext) throws(EncryptionError) -> DataKey {
        let reference = wrapped.reference
        guard reference.provider == FormatV2.passwordProvider else {
            throw EncryptionError(.unknownKeyID, "object was encrypted with a key of provider \"\(reference.provider)\", which is not configured")
        }
        guard reference.wrappedIntermediateKey == nil, let id = Encoding.fromHex(reference.keyID), id.count == FormatV1.keyIDSize,
              Encoding.hex(id) == reference.keyID else {
            throw EncryptionError(.malformedMetadata, "gateway metadata is damaged: a password key id is 16 lowercase hex digits without an intermediate key")
        }
        guard let kek = key(id: id) else {
            throw EncryptionError(.unknownKeyID, "object was encrypted with key id \(reference.keyID), which is not configured; add its password as a previous key")
        }
        return try LocalKeyWrap.open(wrapped, with: Self.wrappingKey(kek), context: context)
    }

    public func v1Key(id: [UInt8]) -> KeyEncryptionKey? {
        key(id: id)
    }

    public func isActive(_ reference: KeyReference) -> Bool {
        reference.provider == FormatV2.passwordProvider && reference.keyID == active.idHex
    }

    // MARK: Version 1 wraps

    /// Wraps `dataKey` with the active KEK for `binding` as version 1 does; returns the key id and the 60 wrapped bytes.
    /// Writers use the version 2 wrap; this stays for test vectors and tests of the version 1 reader.
    func wrap(_ dataKey: DataKey, binding: WrapBinding) throws(EncryptionError) -> (keyID: [UInt8], wrapped: [UInt8]) {
        try wrap(dataKey, binding: binding, nonce: SecureRandom.bytes(FormatV1.wrapNonceSize))
    }

    /// Deterministic variant for test vectors; production always uses a random nonce.
    func wrap(_ dataKey: DataKey, binding: WrapBinding, nonce: [UInt8]) throws(EncryptionError) -> (keyID: [UInt8], wrapped: [UInt8]) {
        let aad = binding.associatedData(keyID: active.id)
        do {
            let sealed = try AEAD.seal(.aes256GCM, key: active.key, nonce: nonce, aad: aad, plaintext: dataKey.bytes)
            return (active.id, nonce + sealed)
        } catch {
            throw EncryptionError(.internalFailure, "wrapping the data key failed: \(error)")
        }
    }

    /// Unwraps a version 1 DEK. A wrong bucket/key, a changed metadata field or a corrupted wrap is `tamperDetected`.
    public func unwrap(_ wrapped: [UInt8], keyID: [UInt8], binding: WrapBinding) throws(EncryptionError) -> DataKey {
        guard let kek = key(id: keyID) else {
            throw EncryptionError(.unknownKeyID, "object was encrypted with key id \(Encoding.hex(keyID)), which is not configured; add its password as a previous key")
        }
        return try binding.unwrap(wrapped, with: kek)
    }
}

extension WrapBinding {
    /// Opens a version 1 wrap (§4 of version 1) with the password key `kek` named by the object's key id.
    func unwrap(_ wrapped: [UInt8], with kek: KeyEncryptionKey) throws(EncryptionError) -> DataKey {
        guard wrapped.count == FormatV1.wrappedKeySize else {
            throw EncryptionError(.malformedMetadata, "wrapped key has \(wrapped.count) bytes, expected \(FormatV1.wrappedKeySize)")
        }
        let nonce = Array(wrapped[0..<FormatV1.wrapNonceSize])
        let sealed = Array(wrapped[FormatV1.wrapNonceSize...])
        let aad = associatedData(keyID: kek.id)
        do {
            return try DataKey(bytes: AEAD.open(.aes256GCM, key: kek.key, nonce: nonce, aad: aad, sealed: sealed))
        } catch AEADError.authenticationFailed {
            throw EncryptionError(.tamperDetected, "the data key of \(identity.bucket)/\(identity.key) does not unwrap: its metadata was modified or it belongs to another object")
        } catch {
            throw EncryptionError(.internalFailure, "unwrapping the data key failed: \(error)")
        }
    }
}
