import Shared

/// Encrypts one segment (docs/FORMAT.md §5) as an I/O-free streaming state machine.
///
/// Feed plaintext in pieces of any size with `update`, then call `finish` once. Sealed chunks
/// are handed to `emit` as soon as it is certain they are not the final chunk, so at most one
/// chunk of plaintext is buffered. The emitted buffer is only valid during the callback.
/// Sealing reuses one cipher context and two buffers allocated at creation, no larger than the expected
/// plaintext needs (a 4 KiB object's sealer does not allocate, and wipe, a whole 64 KiB chunk).
public final class ChunkSealer {
    public let layout: ChunkLayout
    public let cipher: AEADAlgorithm
    public let partNumber: Int
    private let aead: AEADContext
    private let nonceAAD: ChunkNonceAAD
    /// Plaintext waiting to become a chunk (at most one chunk).
    private let pending: UnsafeMutableRawBufferPointer
    private var pendingCount = 0
    /// How much of `pending` ever held plaintext: what the deinit wipes.
    private var pendingUsed = 0
    /// One sealed chunk.
    private let output: UnsafeMutableRawBufferPointer
    private var nextIndex: UInt64 = 0
    private var finished = false
    private var failed = false
    /// Plaintext bytes accepted so far.
    public private(set) var plaintextLength = 0
    /// Sealed bytes emitted so far.
    public private(set) var ciphertextLength = 0
    /// When set, the plaintext must have exactly this length (the request's declared length, or
    /// the part header's): more fails in `update`, less fails in `finish`, before anything final is emitted.
    public let expectedPlaintextLength: Int?

    /// - Parameter segmentKey: `DataKey.segmentKey(salt:partNumber:)` of this segment.
    public init(cipher: AEADAlgorithm, segmentKey: [UInt8], layout: ChunkLayout, partNumber: Int = 0,
                expectedPlaintextLength: Int? = nil) throws(EncryptionError) {
        guard (expectedPlaintextLength ?? 0) >= 0 else { throw EncryptionError(.invalidParameter, "negative expected length") }
        self.expectedPlaintextLength = expectedPlaintextLength
        guard partNumber >= 0, partNumber <= FormatV1.maxPartNumber else {
            throw EncryptionError(.invalidParameter, "part number \(partNumber) outside 0…\(FormatV1.maxPartNumber)")
        }
        do {
            aead = try AEADContext(algorithm: cipher, key: segmentKey, sealing: true)
        } catch {
            throw EncryptionError(.internalFailure, "cannot create the content cipher: \(error)")
        }
        self.cipher = cipher
        self.layout = layout
        self.partNumber = partNumber
        nonceAAD = ChunkNonceAAD(cipher: cipher, chunkSize: layout.chunkSize, partNumber: partNumber)
        // No chunk holds more plaintext than the whole segment (`update` refuses more than expected).
        let pendingSize = max(min(layout.chunkSize, expectedPlaintextLength ?? layout.chunkSize), 1)
        pending = .allocate(byteCount: pendingSize, alignment: 64)
        output = .allocate(byteCount: min(layout.sealedChunkSize, pendingSize + FormatV1.tagSize), alignment: 64)
    }

    deinit {
        SecureMemory.cleanse(UnsafeMutableRawBufferPointer(rebasing: pending[0..<pendingUsed]))
        pending.deallocate()
        output.deallocate()
    }

    /// Accepts the next plaintext piece; emits every chunk that is now known not to be final.
    public func update(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !finished && !failed else { throw Self.misuse }
        guard input.count > 0 else { return }
        if let expected = expectedPlaintextLength, plaintextLength + input.count > expected {
            failed = true
            throw EncryptionError(.lengthMismatch, "the body is longer than its declared \(expected) bytes")
        }
        plaintextLength += input.count
        let chunkSize = layout.chunkSize
        var rest = input[...]
        if pendingCount > 0 {
            let take = min(chunkSize - pendingCount, rest.count)
            copy(UnsafeRawBufferPointer(rebasing: rest.prefix(take)), toPendingAt: pendingCount)
            pendingCount += take
            rest = rest.dropFirst(take)
            // A full pending chunk is sealed only once more data proves it is not the last.
            guard !rest.isEmpty else { return }
            try sealChunk(UnsafeRawBufferPointer(rebasing: pending[0..<chunkSize]), final: false, emit: emit)
            pendingCount = 0
        }
        // Whole chunks straight from the caller's buffer, no copy; keep at least one byte back.
        while rest.count > chunkSize {
            try sealChunk(UnsafeRawBufferPointer(rebasing: rest.prefix(chunkSize)), final: false, emit: emit)
            rest = rest.dropFirst(chunkSize)
        }
        copy(UnsafeRawBufferPointer(rebasing: rest), toPendingAt: 0)
        pendingCount = rest.count
    }

    /// Thrown (rather than trapping) when a caller keeps using a sealer after `finish` or an error.
    static let misuse = EncryptionError(.invalidParameter, "ChunkSealer used after finish or after a failure")

    public func update(_ input: [UInt8], emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try input.withUnsafeBytes { try update($0, emit: emit) }
    }

    /// Seals what is buffered as the final chunk (an empty final chunk for an empty segment).
    public func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !finished && !failed else { throw Self.misuse }
        if let expected = expectedPlaintextLength, plaintextLength != expected {
            failed = true
            throw EncryptionError(.lengthMismatch, "the body ended after \(plaintextLength) of its declared \(expected) bytes")
        }
        finished = true
        try sealChunk(UnsafeRawBufferPointer(rebasing: pending[0..<pendingCount]), final: true, emit: emit)
        SecureMemory.cleanse(UnsafeMutableRawBufferPointer(rebasing: pending[0..<pendingCount]))
        pendingCount = 0
    }

    private func copy(_ source: UnsafeRawBufferPointer, toPendingAt offset: Int) {
        guard let base = source.baseAddress, source.count > 0 else { return }
        (pending.baseAddress! + offset).copyMemory(from: base, byteCount: source.count)
        pendingUsed = max(pendingUsed, offset + source.count)
    }

    private func sealChunk(_ plaintext: UnsafeRawBufferPointer, final: Bool,
                           emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        nonceAAD.set(index: nextIndex, final: final)
        let written: Int
        do {
            written = try aead.seal(nonce: UnsafeRawBufferPointer(nonceAAD.nonce), aad: UnsafeRawBufferPointer(nonceAAD.aad),
                                    plaintext: plaintext, into: output)
        } catch {
            failed = true
            throw EncryptionError(.internalFailure, "sealing chunk \(nextIndex) failed: \(error)")
        }
        nextIndex += 1
        ciphertextLength += written
        do {
            try emit(UnsafeRawBufferPointer(rebasing: output[0..<written]))
        } catch {
            failed = true   // the consumer failed mid-stream: this stream cannot continue
            throw error
        }
    }
}
