import Shared

/// The entry point the request handlers use: creates the metadata and sealer for a new object,
/// the opener for a stored one, and re-wraps data keys for CopyObject. Holds only immutable
/// key material, so one instance serves every request concurrently.
public struct ObjectEncryptor: Sendable {
    public let keyRing: KeyRing
    /// Content cipher for new objects (stored objects name their own).
    public let cipher: AEADAlgorithm
    /// Chunk geometry for new objects (stored objects name their own).
    public let layout: ChunkLayout

    public init(keyRing: KeyRing, cipher: AEADAlgorithm = .aes256GCM, layout: ChunkLayout = .default) {
        self.keyRing = keyRing
        self.cipher = cipher
        self.layout = layout
    }

    /// A new single-part object: a fresh DEK and salt, the metadata to send with the backend PUT,
    /// and the sealer for its body. `plaintextMD5` (the ETag) is stored when known up front.
    /// `plaintextLength`, when given, is enforced by the sealer.
    public func beginObject(_ identity: ObjectIdentity, plaintextMD5: [UInt8]? = nil, plaintextLength: Int? = nil) throws(EncryptionError)
        -> (metadata: EncryptionMetadata, sealer: ChunkSealer) {
        let dataKey = DataKey.generate()
        let salt = SecureRandom.bytes(FormatV1.saltSize)
        let binding = WrapBinding(identity: identity, cipher: cipher, chunkSize: layout.chunkSize, layout: .single)
        let (keyID, wrapped) = try keyRing.wrap(dataKey, binding: binding)
        let metadata = EncryptionMetadata(cipher: cipher, chunkSize: layout.chunkSize, keyID: keyID, wrappedKey: wrapped,
                                          layout: .single(salt: salt), plaintextMD5: plaintextMD5)
        let sealer = try ChunkSealer(cipher: cipher, segmentKey: dataKey.segmentKey(salt: salt, partNumber: 0), layout: layout,
                                     expectedPlaintextLength: plaintextLength)
        return (metadata, sealer)
    }

    /// Unwraps the DEK of a stored object (checks its bucket/key binding).
    public func dataKey(of metadata: EncryptionMetadata, identity: ObjectIdentity) throws(EncryptionError) -> DataKey {
        try keyRing.unwrap(metadata.wrappedKey, keyID: metadata.keyID, binding: metadata.binding(for: identity))
    }

    /// An opener for a stored single-part object, starting at `firstChunkIndex` (0, or `RangeMapping.firstChunk`).
    public func opener(for metadata: EncryptionMetadata, identity: ObjectIdentity, firstChunkIndex: Int = 0) throws(EncryptionError) -> ChunkOpener {
        guard case .single(let salt) = metadata.layout else {
            throw EncryptionError(.invalidParameter, "multipart objects are opened part by part (partOpener)")
        }
        let dataKey = try dataKey(of: metadata, identity: identity)
        return try ChunkOpener(cipher: metadata.cipher, segmentKey: dataKey.segmentKey(salt: salt, partNumber: 0),
                               layout: metadata.chunkLayout, firstChunkIndex: firstChunkIndex)
    }

    /// CopyObject: the destination's metadata, whose DEK is re-wrapped with the active KEK under
    /// `destination`. The ciphertext is copied unchanged.
    public func rewrap(_ metadata: EncryptionMetadata, from source: ObjectIdentity, to destination: ObjectIdentity) throws(EncryptionError) -> EncryptionMetadata {
        let dataKey = try dataKey(of: metadata, identity: source)
        let (keyID, wrapped) = try keyRing.wrap(dataKey, binding: metadata.binding(for: destination))
        var copy = metadata
        copy.keyID = keyID
        copy.wrappedKey = wrapped
        return copy
    }

    // MARK: Multipart (format fixed now, handlers come later)

    /// CreateMultipartUpload: the metadata (no salt) to store with the upload.
    public func beginMultipartObject(_ identity: ObjectIdentity) throws(EncryptionError) -> EncryptionMetadata {
        let dataKey = DataKey.generate()
        let binding = WrapBinding(identity: identity, cipher: cipher, chunkSize: layout.chunkSize, layout: .multipart)
        let (keyID, wrapped) = try keyRing.wrap(dataKey, binding: binding)
        return EncryptionMetadata(cipher: cipher, chunkSize: layout.chunkSize, keyID: keyID, wrappedKey: wrapped, layout: .multipart)
    }

    /// UploadPart: a fresh salt for this attempt, the 36-byte part header to send first, and the sealer.
    public func beginPart(of metadata: EncryptionMetadata, identity: ObjectIdentity, partNumber: Int,
                          plaintextLength: Int) throws(EncryptionError) -> (header: [UInt8], sealer: ChunkSealer) {
        guard metadata.layout == .multipart else { throw EncryptionError(.invalidParameter, "not a multipart object") }
        let header = try PartHeader(partNumber: partNumber, plaintextLength: plaintextLength, salt: SecureRandom.bytes(FormatV1.saltSize))
        let dataKey = try dataKey(of: metadata, identity: identity)
        let sealer = try ChunkSealer(cipher: metadata.cipher, segmentKey: dataKey.segmentKey(salt: header.salt, partNumber: partNumber),
                                     layout: metadata.chunkLayout, partNumber: partNumber, expectedPlaintextLength: plaintextLength)
        return (header.bytes, sealer)
    }

    /// An opener for one part, given its parsed header.
    public func partOpener(for metadata: EncryptionMetadata, identity: ObjectIdentity, header: PartHeader,
                           firstChunkIndex: Int = 0) throws(EncryptionError) -> ChunkOpener {
        guard metadata.layout == .multipart else { throw EncryptionError(.invalidParameter, "not a multipart object") }
        let dataKey = try dataKey(of: metadata, identity: identity)
        return try ChunkOpener(cipher: metadata.cipher, segmentKey: dataKey.segmentKey(salt: header.salt, partNumber: header.partNumber),
                               layout: metadata.chunkLayout, partNumber: header.partNumber, firstChunkIndex: firstChunkIndex)
    }
}
