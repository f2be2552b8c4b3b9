/// Verifies and decrypts a whole multipart object (docs/FORMAT.md §9): walks
/// `partHeader || segment` records in order, opening each segment with its own key, and checks
/// that part numbers increase and that the object ends exactly after a complete part.
/// I/O-free like `ChunkOpener`; only verified plaintext reaches `emit`.
public final class MultipartOpener {
    private let encryptor: ObjectEncryptor
    private let metadata: EncryptionMetadata
    private let dataKey: DataKey
    private let layout: ChunkLayout
    private var headerBuffer: [UInt8] = []
    private var current: ChunkOpener?
    /// Sealed bytes of the current part still to come.
    private var remaining = 0
    private var lastPartNumber = 0
    /// Parts fully opened so far.
    public private(set) var partCount = 0

    public init(encryptor: ObjectEncryptor, metadata: EncryptionMetadata, identity: ObjectIdentity) throws(EncryptionError) {
        guard metadata.layout == .multipart else { throw EncryptionError(.invalidParameter, "not a multipart object") }
        self.encryptor = encryptor
        self.metadata = metadata
        self.layout = try metadata.chunkLayout
        // One unwrap (and MAC check) for the whole object, not one per part.
        self.dataKey = try encryptor.dataKey(of: metadata, identity: identity)
        headerBuffer.reserveCapacity(PartHeader.size)
    }

    public func update(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var rest = input[...]
        while !rest.isEmpty {
            if let opener = current {
                let take = min(remaining, rest.count)
                try opener.update(UnsafeRawBufferPointer(rebasing: rest.prefix(take)), emit: emit)
                remaining -= take
                rest = rest.dropFirst(take)
                if remaining == 0 {
                    try opener.finish(lastChunkIsFinal: true, emit: emit)
                    current = nil
                    partCount += 1
                }
            } else {
                let take = min(PartHeader.size - headerBuffer.count, rest.count)
                headerBuffer.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                if headerBuffer.count == PartHeader.size {
                    try startPart()
                }
            }
        }
    }

    public func update(_ input: [UInt8], emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try input.withUnsafeBytes { try update($0, emit: emit) }
    }

    /// Ends the input: the object must end right after a complete part, and have at least one.
    public func finish() throws {
        guard current == nil, headerBuffer.isEmpty, partCount > 0 else {
            throw EncryptionError(.truncated, "the multipart object ends inside part \(lastPartNumber == 0 ? 1 : lastPartNumber): it was truncated")
        }
    }

    private func startPart() throws {
        let header = try PartHeader.parse(headerBuffer)
        headerBuffer.removeAll(keepingCapacity: true)
        guard header.partNumber > lastPartNumber else {
            throw EncryptionError(.tamperDetected, "part \(header.partNumber) follows part \(lastPartNumber): parts were reordered or duplicated")
        }
        lastPartNumber = header.partNumber
        remaining = layout.ciphertextLength(plaintextLength: header.plaintextLength)
        current = try encryptor.partOpener(for: metadata, dataKey: dataKey, header: header)
    }
}

extension ChunkLayout {
    /// Plaintext size of a multipart object of `partCount` parts (the `-N` of its ETag) from its
    /// stored size, exact when every part but the last is a multiple of the chunk size
    /// (docs/FORMAT.md §9); nil when the size cannot be such an object.
    public func multipartPlaintextLength(ciphertextLength: Int, partCount: Int) -> Int? {
        guard partCount >= 1 else { return nil }
        let segments = ciphertextLength - partCount * PartHeader.size
        guard segments >= 0 else { return nil }
        // Each part's segment is sealed separately, so the tags count once per chunk of each part:
        // aligned parts contribute exactly C + 16 per C bytes, which the single-segment inverse handles.
        return try? plaintextLength(ciphertextLength: segments)
    }
}
