import Shared

/// The entry point the request handlers use: creates the metadata and sealer for a new object,
/// the opener for a stored one, re-wraps data keys for CopyObject and rotation, and attaches
/// records (ETag, checksum) after an upload. Holds only immutable key material (or a thread-safe
/// key provider), so one instance serves every request concurrently.
///
/// Writers write format version 2; readers read versions 1 and 2 (docs/FORMAT.md).
public struct ObjectEncryptor: Sendable {
    /// Wraps new data keys and unwraps stored ones.
    public let keys: any DataKeyWrapping
    /// Content cipher for new objects (stored objects name their own).
    public let cipher: AEADAlgorithm
    /// Chunk geometry for new objects (stored objects name their own).
    public let layout: ChunkLayout

    /// Metadata already verified, with its data key (nil: every read parses, unwraps and verifies).
    let verified: VerifiedMetadataCache?

    public init(keys: any DataKeyWrapping, cipher: AEADAlgorithm = .aes256GCM, layout: ChunkLayout = .default) {
        self.init(keys: keys, cipher: cipher, layout: layout, verified: nil)
    }

    /// `verified` remembers checked metadata; its `ttl` should not exceed the key cache's, so that a key
    /// revoked in a key manager stops working within the same bound.
    init(keys: any DataKeyWrapping, cipher: AEADAlgorithm = .aes256GCM, layout: ChunkLayout = .default,
         verified: VerifiedMetadataCache?) {
        self.keys = keys
        self.cipher = cipher
        self.layout = layout
        self.verified = verified
    }

    /// With the `password` provider.
    public init(keyRing: KeyRing, cipher: AEADAlgorithm = .aes256GCM, layout: ChunkLayout = .default) {
        self.init(keys: keyRing, cipher: cipher, layout: layout)
    }

    /// A new single-part object: a fresh DEK and salt, the metadata to send with the backend PUT,
    /// and the sealer for its body. The records (`plaintextMD5` is the ETag, `checksum`) are stored
    /// when known up front; `attachETag`/`attachChecksum` add them later. `plaintextLength`, when given,
    /// is enforced by the sealer.
    public func beginObject(_ identity: ObjectIdentity, plaintextMD5: [UInt8]? = nil, checksum: ChecksumRecord? = nil,
                            plaintextLength: Int? = nil) throws(EncryptionError) -> (metadata: EncryptionMetadata, sealer: ChunkSealer) {
        let pending = try beginPendingObject(identity, plaintextLength: plaintextLength)
        return (try pending.metadata(plaintextMD5: plaintextMD5, checksum: checksum), pending.sealer)
    }

    /// A new single-part object whose records are known only once its body was sealed (a body sealed as it is
    /// read): the sealer now, the metadata from `PendingObject.metadata(plaintextMD5:checksum:)` afterwards.
    public func beginPendingObject(_ identity: ObjectIdentity, plaintextLength: Int? = nil) throws(EncryptionError) -> PendingObject {
        let dataKey = DataKey.generate()
        let salt = SecureRandom.bytes(FormatV1.saltSize)
        let draft = EncryptionMetadata(cipher: cipher, chunkSize: layout.chunkSize, layout: .single(salt: salt),
                                       wrappedKey: try keys.wrap(dataKey, context: WrapContext(identity: identity)))
        let sealer = try ChunkSealer(cipher: cipher, segmentKey: dataKey.segmentKey(salt: salt, partNumber: 0), layout: layout,
                                     expectedPlaintextLength: plaintextLength)
        return PendingObject(draft: draft, sealer: sealer, identity: identity, dataKey: dataKey)
    }

    /// A single-part object begun before its records were known (`beginPendingObject`). It keeps the data key
    /// until the metadata is made, so the MAC over the records needs no second unwrap.
    public struct PendingObject {
        /// The metadata without records or MAC: its `metadataBudget` already counts them.
        public let draft: EncryptionMetadata
        public let sealer: ChunkSealer
        let identity: ObjectIdentity
        let dataKey: DataKey

        /// The metadata to store: `draft` with the records (`plaintextMD5` is the ETag), under the MAC.
        public func metadata(plaintextMD5: [UInt8]?, checksum: ChecksumRecord?) throws(EncryptionError) -> EncryptionMetadata {
            var metadata = draft
            metadata.plaintextMD5 = try ObjectEncryptor.checkedMD5(plaintextMD5)
            metadata.checksum = checksum
            metadata.mac = try MetadataMAC.compute(metadata, identity: identity, dataKey: dataKey)
            return metadata
        }
    }

    /// Unwraps the DEK of a stored object, checking its bucket/key binding and, for version 2, the MAC over
    /// every metadata field: after this succeeds, `metadata`'s records are authentic.
    public func dataKey(of metadata: EncryptionMetadata, identity: ObjectIdentity) throws(EncryptionError) -> DataKey {
        switch metadata.version {
        case .v1:
            let reference = metadata.wrappedKey.reference
            guard let id = Encoding.fromHex(reference.keyID), let kek = keys.v1Key(id: id) else {
                throw EncryptionError(.unknownKeyID, "object was encrypted with key id \(reference.keyID), which is not configured; add its password as a previous key")
            }
            return try metadata.binding(for: identity).unwrap(metadata.wrappedKey.bytes, with: kek)
        case .v2:
            let dataKey = try keys.unwrap(metadata.wrappedKey, context: WrapContext(identity: identity))
            try MetadataMAC.verify(metadata, identity: identity, dataKey: dataKey)
            return dataKey
        }
    }

    /// The metadata of backend headers with that `fingerprint` and its data key, when they were verified by
    /// `dataKey(of:identity:remembering:)` within the cache's lifetime; nil otherwise (parse and verify them).
    func verifiedMetadata(_ fingerprint: MetadataFingerprint) -> (metadata: EncryptionMetadata, dataKey: DataKey)? {
        verified?.lookup(fingerprint)
    }

    /// `dataKey(of:identity:)`, remembered on success for the headers `fingerprint` names (which `metadata`
    /// must have been parsed from, for `identity`). A single-part object's key is remembered (and returned)
    /// with its body's segment key derived, so that its reads open the body without HKDF.
    func dataKey(of metadata: EncryptionMetadata, identity: ObjectIdentity,
                 remembering fingerprint: MetadataFingerprint) throws(EncryptionError) -> DataKey {
        var dataKey = try dataKey(of: metadata, identity: identity)
        guard let verified, verified.isEnabled else { return dataKey }
        if case .single(let salt) = metadata.layout {
            dataKey = try dataKey.derivingSegmentKey(salt: salt, partNumber: 0)
        }
        verified.insert(metadata, dataKey: dataKey, for: fingerprint)
        return dataKey
    }

    /// An opener for a stored single-part object, starting at `firstChunkIndex` (0, or `RangeMapping.firstChunk`).
    public func opener(for metadata: EncryptionMetadata, identity: ObjectIdentity, firstChunkIndex: Int = 0) throws(EncryptionError) -> ChunkOpener {
        guard case .single = metadata.layout else {
            throw EncryptionError(.invalidParameter, "multipart objects are opened part by part (partOpener)")
        }
        return try opener(for: metadata, dataKey: dataKey(of: metadata, identity: identity), firstChunkIndex: firstChunkIndex)
    }

    /// As above with the data key already unwrapped by `dataKey(of:identity:)` for this `metadata` (which also
    /// verified it): a request that needed the key before it opens the body (conditions, HEAD) unwraps once, so
    /// without a key cache a GET costs one key-manager call, not two. `maxCiphertextLength`: see `ChunkOpener`.
    public func opener(for metadata: EncryptionMetadata, dataKey: DataKey, firstChunkIndex: Int = 0,
                       maxCiphertextLength: Int? = nil) throws(EncryptionError) -> ChunkOpener {
        guard case .single(let salt) = metadata.layout else {
            throw EncryptionError(.invalidParameter, "multipart objects are opened part by part (partOpener)")
        }
        // A cached key's reads share its spare context, one at a time.
        let spare = dataKey.spareOpenContext(salt: salt, partNumber: 0)
        return try dataKey.withSegmentKey(salt: salt, partNumber: 0) { key throws(EncryptionError) in
            try ChunkOpener(cipher: metadata.cipher, segmentKeyBytes: key, spare: spare, layout: metadata.chunkLayout,
                            firstChunkIndex: firstChunkIndex, maxCiphertextLength: maxCiphertextLength)
        }
    }

    /// CopyObject and rotation: the metadata of the same body under `destination`, its DEK re-wrapped with the
    /// active key and the MAC computed for `destination`. Records are kept (a version 1 ETag becomes
    /// authenticated: the gateway vouches for what it read). The output is always version 2, so a version 1
    /// object is upgraded; the ciphertext is copied unchanged.
    public func rewrap(_ metadata: EncryptionMetadata, from source: ObjectIdentity, to destination: ObjectIdentity) throws(EncryptionError) -> EncryptionMetadata {
        let dataKey = try dataKey(of: metadata, identity: source)
        var copy = metadata
        copy.version = .v2
        copy.wrappedKey = try keys.wrap(dataKey, context: WrapContext(identity: destination))
        copy.mac = try MetadataMAC.compute(copy, identity: destination, dataKey: dataKey)
        return copy
    }

    /// The metadata with an authenticated ETag record (the plaintext MD5), for a metadata-replacing self-copy
    /// after a streamed upload. Version 1 metadata is upgraded to version 2 (its DEK re-wrapped).
    public func attachETag(_ metadata: EncryptionMetadata, plaintextMD5: [UInt8], identity: ObjectIdentity) throws(EncryptionError) -> EncryptionMetadata {
        let md5 = try Self.checkedMD5(plaintextMD5)
        return try attaching(to: metadata, identity: identity) { $0.plaintextMD5 = md5 }
    }

    /// The metadata with an authenticated flexible-checksum record (see `attachETag`).
    public func attachChecksum(_ metadata: EncryptionMetadata, _ checksum: ChecksumRecord, identity: ObjectIdentity) throws(EncryptionError) -> EncryptionMetadata {
        try attaching(to: metadata, identity: identity) { $0.checksum = checksum }
    }

    /// Both records at once (either may be nil), with one unwrap of the data key instead of one per record.
    public func attachRecords(_ metadata: EncryptionMetadata, plaintextMD5: [UInt8]?, checksum: ChecksumRecord?,
                              identity: ObjectIdentity) throws(EncryptionError) -> EncryptionMetadata {
        let md5 = try Self.checkedMD5(plaintextMD5)
        guard md5 != nil || checksum != nil else { return metadata }
        return try attaching(to: metadata, identity: identity) { updated in
            if let md5 { updated.plaintextMD5 = md5 }
            if let checksum { updated.checksum = checksum }
        }
    }

    private func attaching(to metadata: EncryptionMetadata, identity: ObjectIdentity,
                           _ change: (inout EncryptionMetadata) -> Void) throws(EncryptionError) -> EncryptionMetadata {
        let dataKey = try dataKey(of: metadata, identity: identity)
        var updated = metadata
        if updated.version == .v1 {
            updated.version = .v2
            updated.wrappedKey = try keys.wrap(dataKey, context: WrapContext(identity: identity))
        }
        change(&updated)
        updated.mac = try MetadataMAC.compute(updated, identity: identity, dataKey: dataKey)
        return updated
    }

    fileprivate static func checkedMD5(_ md5: [UInt8]?) throws(EncryptionError) -> [UInt8]? {
        guard let md5 else { return nil }
        guard md5.count == 16 else { throw EncryptionError(.invalidParameter, "an MD5 has 16 bytes, got \(md5.count)") }
        return md5
    }
}
