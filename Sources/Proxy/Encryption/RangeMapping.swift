/// Maps a resolved plaintext range of a single-part object to the covering ciphertext chunks
/// (docs/FORMAT.md §7): the backend range to fetch, the chunk index to start opening at, whether
/// the last fetched chunk must be the final one, and how to cut the decrypted output.
public struct RangeMapping: Sendable, Equatable {
    public let firstChunk: Int
    public let lastChunk: Int
    /// Inclusive backend byte range covering chunks `firstChunk...lastChunk`.
    public let ciphertextFirst: Int
    public let ciphertextLast: Int
    /// Plaintext bytes to drop from the first decrypted chunk.
    public let skip: Int
    /// Plaintext bytes to return.
    public let length: Int
    /// Whether `lastChunk` is the segment's final chunk (pass to `ChunkOpener.finish`).
    public let lastChunkIsFinal: Bool

    /// - Parameters: `first...last` must lie inside `0..<plaintextLength` (use `ByteRange.resolve`).
    public init(first: Int, last: Int, plaintextLength: Int, layout: ChunkLayout) throws(EncryptionError) {
        guard first >= 0, first <= last, last < plaintextLength else {
            throw EncryptionError(.invalidParameter, "range \(first)-\(last) is not inside an object of \(plaintextLength) bytes")
        }
        let c = layout.chunkSize
        let sealed = layout.sealedChunkSize
        firstChunk = first / c
        lastChunk = last / c
        ciphertextFirst = firstChunk * sealed
        ciphertextLast = min((lastChunk + 1) * sealed, layout.ciphertextLength(plaintextLength: plaintextLength)) - 1
        skip = first - firstChunk * c
        length = last - first + 1
        lastChunkIsFinal = lastChunk == layout.chunkCount(plaintextLength: plaintextLength) - 1
    }

    /// The `Range` header to send to the backend.
    public var backendRange: String { "bytes=\(ciphertextFirst)-\(ciphertextLast)" }

    public var ciphertextLength: Int { ciphertextLast - ciphertextFirst + 1 }
}
