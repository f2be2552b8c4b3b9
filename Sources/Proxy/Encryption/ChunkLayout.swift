/// The chunk geometry of a segment and the size functions of docs/FORMAT.md §6.
public struct ChunkLayout: Sendable, Equatable {
    /// Plaintext bytes per chunk (`C`).
    public let chunkSize: Int

    public static let `default` = try! ChunkLayout(chunkSize: FormatV1.defaultChunkSize)
    public static let tagSize = FormatV1.tagSize

    public init(chunkSize: Int) throws(EncryptionError) {
        guard chunkSize >= FormatV1.minChunkSize, chunkSize <= FormatV1.maxChunkSize else {
            throw EncryptionError(.invalidParameter, "chunk size \(chunkSize) outside \(FormatV1.minChunkSize)…\(FormatV1.maxChunkSize)")
        }
        self.chunkSize = chunkSize
    }

    /// Bytes per full sealed chunk (`C + 16`).
    public var sealedChunkSize: Int { chunkSize + FormatV1.tagSize }

    /// `n(P) = max(1, ceil(P / C))`.
    public func chunkCount(plaintextLength: Int) -> Int {
        precondition(plaintextLength >= 0, "negative length")
        return max(1, (plaintextLength + chunkSize - 1) / chunkSize)
    }

    /// `L(P) = P + 16 · n(P)`.
    public func ciphertextLength(plaintextLength: Int) -> Int {
        plaintextLength + FormatV1.tagSize * chunkCount(plaintextLength: plaintextLength)
    }

    /// The inverse of `ciphertextLength`; lengths no writer produces are `malformedCiphertext`.
    public func plaintextLength(ciphertextLength: Int) throws(EncryptionError) -> Int {
        guard let length = Self.invert(ciphertextLength, chunkSize: chunkSize) else {
            throw EncryptionError(.malformedCiphertext, "ciphertext length \(ciphertextLength) is impossible for chunk size \(chunkSize): the stored object was truncated or is not gateway ciphertext")
        }
        return length
    }

    /// Plaintext size for a listing entry, assuming the default chunk size (FORMAT.md §6).
    /// Returns nil for a size no writer produces (the caller then shows the stored size).
    public static func listingPlaintextSize(ciphertextLength: Int) -> Int? {
        invert(ciphertextLength, chunkSize: FormatV1.defaultChunkSize)
    }

    private static func invert(_ length: Int, chunkSize: Int) -> Int? {
        guard length >= FormatV1.tagSize else { return nil }
        let sealed = chunkSize + FormatV1.tagSize
        let (q, r) = length.quotientAndRemainder(dividingBy: sealed)
        if r == 0 { return q * chunkSize }             // q ≥ 1 here since length ≥ 16
        if r == FormatV1.tagSize { return q == 0 ? 0 : nil }
        if r > FormatV1.tagSize { return q * chunkSize + r - FormatV1.tagSize }
        return nil
    }
}
