import Shared

/// Verifies and decrypts one segment (docs/FORMAT.md §5) as an I/O-free streaming state machine.
///
/// Feed ciphertext in pieces of any size with `update`, starting at the chunk boundary of
/// `firstChunkIndex` (0 for a whole object, the mapped first chunk for a range); then call
/// `finish`. Only verified plaintext is handed to `emit`, one chunk at a time (the buffer is
/// only valid during the callback). A chunk is opened as non-final once more bytes follow it,
/// so at most one sealed chunk is buffered. When the caller announced how much ciphertext comes
/// (`maxCiphertextLength`), a chunk that ends before that is known to be non-final from its first
/// byte: one split across two pieces is then decrypted piece by piece as they come (its tag checked
/// when its last byte arrives) instead of being copied together first. Errors distinguish tampering, truncation and
/// trailing data; after an error the opener must not be used again. Bytes after a *short* final
/// chunk cannot be told apart from a modified final chunk (`tamperDetected`); callers that know
/// the stored length check it first with `ChunkLayout.plaintextLength(ciphertextLength:)`.
public final class ChunkOpener {
    public let layout: ChunkLayout
    public let cipher: AEADAlgorithm
    public let partNumber: Int
    /// The content cipher's context: made for this opener, or a cached key's spare (given back when done).
    private let aead: OpenContextBox
    private let spare: SpareOpenContext?
    private let nonceAAD: ChunkNonceAAD
    /// `nonceAAD`, `pending` and `output`, one allocation.
    private let storage: UnsafeMutableRawBufferPointer
    private let pending: UnsafeMutableRawBufferPointer
    private var pendingCount = 0
    /// Decrypted plaintext of one chunk; zeroed by the cipher on failure.
    private let output: UnsafeMutableRawBufferPointer
    /// How much of `output` ever held plaintext (what the deinit wipes: a small object's read wipes a few
    /// bytes, not a whole chunk's buffer).
    private var outputUsed = 0
    private var nextIndex: UInt64
    private var finished = false
    private var failed = false
    /// Verified plaintext bytes emitted so far.
    public private(set) var plaintextLength = 0
    /// Ciphertext bytes accepted so far, and at most how many the caller said will come (nil: unbounded).
    private var received = 0
    private let maxCiphertextLength: Int?
    /// A chunk being opened piece by piece: where its (still unverified) plaintext goes, and how many of its
    /// sealed bytes have arrived. Its tag collects in `pending`, which a streamed chunk does not otherwise use.
    private var streamTarget: UnsafeMutableRawBufferPointer?
    private var streamed = 0
    /// Opens the chunks handed over (`update(_:space:emit:deferring:)`), made at the first.
    private var deferredOpener: DeferredOpener?
    /// The chunk in `streamTarget` is being copied there to be handed over, not decrypted.
    private var streamDeferred = false

    /// - Parameter maxCiphertextLength: when the caller knows how much ciphertext it will feed (a planned read),
    ///   the buffers are sized for that instead of a whole chunk each — a 4 KiB object's read allocates 8 KiB, not
    ///   128 KiB (issue 12) — and more input than that is refused (`trailingData`).
    public convenience init(cipher: AEADAlgorithm, segmentKey: [UInt8], layout: ChunkLayout, partNumber: Int = 0,
                            firstChunkIndex: Int = 0, maxCiphertextLength: Int? = nil) throws(EncryptionError) {
        try self.init(cipher: cipher, layout: layout, partNumber: partNumber, firstChunkIndex: firstChunkIndex,
                      maxCiphertextLength: maxCiphertextLength) { () throws(AEADError) in
            try AEADContext(algorithm: cipher, key: segmentKey, sealing: false)
        }
    }

    /// As above with the segment key as bytes the caller keeps (a cached key, wiped by its owner): no copy of it is
    /// made in a Swift array, which could not be wiped.
    public convenience init(cipher: AEADAlgorithm, segmentKeyBytes: UnsafeRawBufferPointer, layout: ChunkLayout, partNumber: Int = 0,
                            firstChunkIndex: Int = 0, maxCiphertextLength: Int? = nil) throws(EncryptionError) {
        try self.init(cipher: cipher, layout: layout, partNumber: partNumber, firstChunkIndex: firstChunkIndex,
                      maxCiphertextLength: maxCiphertextLength) { () throws(AEADError) in
            try AEADContext(algorithm: cipher, key: segmentKeyBytes, sealing: false)
        }
    }

    /// As above for a cached segment key's bytes and its `spare` context (`DataKey.spareOpenContext`): the spare is
    /// used when free, and this opener's context is offered back to it when the opener goes. `spare` must belong to
    /// the key `segmentKeyBytes` holds.
    convenience init(cipher: AEADAlgorithm, segmentKeyBytes: UnsafeRawBufferPointer, spare: SpareOpenContext?, layout: ChunkLayout,
                     firstChunkIndex: Int = 0, maxCiphertextLength: Int? = nil) throws(EncryptionError) {
        try self.init(cipher: cipher, layout: layout, partNumber: 0, firstChunkIndex: firstChunkIndex,
                      maxCiphertextLength: maxCiphertextLength, spare: spare) { () throws(AEADError) in
            try AEADContext(algorithm: cipher, key: segmentKeyBytes, sealing: false)
        }
    }

    /// Every initialiser: `makeCipher` creates the content cipher from the key they were given (unless `spare` has one).
    private init(cipher: AEADAlgorithm, layout: ChunkLayout, partNumber: Int, firstChunkIndex: Int, maxCiphertextLength: Int?,
                 spare: SpareOpenContext? = nil, makeCipher: () throws(AEADError) -> AEADContext) throws(EncryptionError) {
        guard partNumber >= 0, partNumber <= FormatV1.maxPartNumber else {
            throw EncryptionError(.invalidParameter, "part number \(partNumber) outside 0…\(FormatV1.maxPartNumber)")
        }
        guard firstChunkIndex >= 0 else { throw EncryptionError(.invalidParameter, "negative chunk index") }
        guard (maxCiphertextLength ?? 0) >= 0 else { throw EncryptionError(.invalidParameter, "negative ciphertext length") }
        if let reused = spare?.take(cipher) {
            aead = reused
        } else {
            do {
                aead = OpenContextBox(try makeCipher())
            } catch {
                throw EncryptionError(.internalFailure, "cannot create the content cipher: \(error)")
            }
        }
        self.spare = spare
        self.cipher = cipher
        self.layout = layout
        self.partNumber = partNumber
        nextIndex = UInt64(firstChunkIndex)
        self.maxCiphertextLength = maxCiphertextLength
        // No chunk is longer than the whole input.
        let sealedCapacity = min(layout.sealedChunkSize, maxCiphertextLength ?? layout.sealedChunkSize)
        let pendingSize = max(sealedCapacity, 1)
        let outputSize = max(min(layout.chunkSize, sealedCapacity - FormatV1.tagSize), 1)
        // Both buffers in one allocation: cache-line aligned for whole chunks (the cipher's wide loads), malloc's
        // own 16 bytes for a small read, where posix_memalign only costs (issue 12).
        // The chunk nonce and AAD go first, in the same allocation (one posix_memalign less per read).
        let alignment = pendingSize + outputSize > 32 << 10 ? 64 : 16
        func aligned(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        let pendingOffset = aligned(ChunkNonceAAD.size)
        let outputOffset = pendingOffset + aligned(pendingSize)
        storage = .allocate(byteCount: outputOffset + outputSize, alignment: alignment)
        nonceAAD = ChunkNonceAAD(in: storage, cipher: cipher, chunkSize: layout.chunkSize, partNumber: partNumber)
        pending = UnsafeMutableRawBufferPointer(rebasing: storage[pendingOffset..<(pendingOffset + pendingSize)])
        output = UnsafeMutableRawBufferPointer(rebasing: storage[outputOffset..<(outputOffset + outputSize)])
    }

    deinit {
        SecureMemory.cleanse(UnsafeMutableRawBufferPointer(rebasing: output[0..<outputUsed]))
        storage.deallocate()
        // Every message starts with a fresh IV and AAD (`AEADContext.openStart`/`open`), whatever the last one left;
        // still, a context that saw a failure is not passed on.
        if !failed { spare?.giveBack(aead) }
    }

    /// Accepts the next ciphertext piece; emits the plaintext of every chunk that is now complete and not last.
    public func update(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try update(input, space: Self.noSpace, emit: emit)
    }

    /// What `update(_:emit:)` offers: nothing, so every chunk is opened in the opener's own buffer.
    static func noSpace(_ count: Int) -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: nil, count: 0) }

    /// `update(_:emit:)` that decrypts each chunk straight into a buffer of the caller's: right before opening a
    /// chunk of `n` plaintext bytes it asks `space(n)`, decrypts into the start of what it gets (when that holds
    /// `n` bytes; a shorter space is not used, that chunk goes to the opener's own buffer) and emits the verified
    /// bytes there. A relay passes the free part of its send buffer and saves copying the plaintext out of the
    /// opener. A chunk that fails leaves zeros, never unverified plaintext, in the space.
    public func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                       emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try update(input, space: space, emit: emit, deferring: nil)
    }

    /// `update(_:space:emit:)` that may hand whole chunks to `deferring` instead of opening them: a chunk known not
    /// to be the last that `deferring.wants()` (asked at its first byte) has its ciphertext copied to the start of
    /// `space(chunkSize)` (when that holds a whole chunk), piece by piece when it is split across inputs, and goes to
    /// `deferring.take` as a `DeferredChunk` once whole, counted as emitted. Its bytes are verified only when the
    /// taker opens it. A chunk begun for handing over and finished by a call without `deferring` is opened here.
    public func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                       emit: (UnsafeRawBufferPointer) throws -> Void, deferring: ChunkDeferral?) throws {
        guard !finished && !failed else { throw Self.misuse }
        guard input.count > 0 else { return }
        received += input.count
        if let maxCiphertextLength, received > maxCiphertextLength {
            failed = true
            throw EncryptionError(.trailingData, "more than the \(maxCiphertextLength) ciphertext bytes announced")
        }
        let sealedSize = layout.sealedChunkSize
        var rest = input[...]
        if streamTarget != nil {
            rest = try continueStream(rest, emit: emit, deferring: deferring)
            guard !rest.isEmpty else { return }
        }
        if pendingCount > 0 {
            let take = min(sealedSize - pendingCount, rest.count)
            (pending.baseAddress! + pendingCount).copyMemory(from: UnsafeRawBufferPointer(rebasing: rest.prefix(take)).baseAddress!, byteCount: take)
            pendingCount += take
            rest = rest.dropFirst(take)
            guard !rest.isEmpty else { return }
            try openChunk(UnsafeRawBufferPointer(rebasing: pending[0..<sealedSize]), final: false, space: space, emit: emit)
            pendingCount = 0
        }
        while rest.count > sealedSize || (rest.count == sealedSize && knownNonFinal(endingAt: received)) {
            let sealed = UnsafeRawBufferPointer(rebasing: rest.prefix(sealedSize))
            if let deferring, deferring.wants(), try handOver(sealed, space: space, to: deferring) {
                // Handed over whole: the taker opens it.
            } else {
                try openChunk(sealed, final: false, space: space, emit: emit)
            }
            rest = rest.dropFirst(sealedSize)
        }
        guard !rest.isEmpty else { return }
        // The next chunk starts here and ends in a later piece.
        if knownNonFinal(endingAt: received - rest.count + sealedSize) {
            if let deferring, deferring.wants(), try startStream(rest, space: space, emit: emit, deferring: deferring) {
                return
            }
            try startStream(rest, space: space, emit: emit)
            return
        }
        pending.baseAddress!.copyMemory(from: UnsafeRawBufferPointer(rebasing: rest).baseAddress!, byteCount: rest.count)
        pendingCount = rest.count
    }

    /// Copies the non-final chunk `sealed` into the caller's space as a `DeferredChunk` and hands it to `deferral`;
    /// false (nothing done) when the space cannot hold the chunk's plaintext.
    private func handOver(_ sealed: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                          to deferral: ChunkDeferral) throws -> Bool {
        let chunkSize = layout.chunkSize
        guard let target = try deferralTarget(space) else { return false }
        target.baseAddress!.copyMemory(from: sealed.baseAddress!, byteCount: chunkSize)
        try handOver(target, tag: sealed.baseAddress! + chunkSize, to: deferral)
        return true
    }

    /// Where a chunk handed over goes (the start of `space(chunkSize)`, a chunk long), with the context that will
    /// open it made; nil when the space is too short.
    private func deferralTarget(_ space: (Int) throws -> UnsafeMutableRawBufferPointer) throws -> UnsafeMutableRawBufferPointer? {
        let chunkSize = layout.chunkSize
        do {
            let target = try space(chunkSize)
            guard target.count >= chunkSize else { return nil }
            if deferredOpener == nil {
                deferredOpener = try DeferredOpener(duplicating: aead.context, chunkSize: chunkSize, partNumber: partNumber)
            }
            return UnsafeMutableRawBufferPointer(rebasing: target[0..<chunkSize])
        } catch {
            failed = true
            throw error
        }
    }

    /// Hands the next chunk, its ciphertext copied to `target`, to `deferral` (counted as emitted).
    private func handOver(_ target: UnsafeMutableRawBufferPointer, tag: UnsafeRawPointer, to deferral: ChunkDeferral) throws {
        let chunk = DeferredChunk(opener: deferredOpener!, index: nextIndex,
                                  tag: (tag.loadUnaligned(as: UInt64.self), (tag + 8).loadUnaligned(as: UInt64.self)),
                                  target: target)
        nextIndex += 1
        plaintextLength += target.count
        do {
            try deferral.take(chunk)
        } catch {
            failed = true   // the consumer failed mid-stream: this stream cannot continue
            throw error
        }
    }

    /// `startStream` for a chunk to hand over: its pieces are copied into the caller's space as they come, and the
    /// whole chunk goes to `deferral` (or, when the caller stopped handing over before its last piece, is opened
    /// there). False (nothing done) when the space cannot hold the chunk.
    private func startStream(_ head: Slice<UnsafeRawBufferPointer>, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                             emit: (UnsafeRawBufferPointer) throws -> Void, deferring: ChunkDeferral) throws -> Bool {
        guard let target = try deferralTarget(space) else { return false }
        streamTarget = target
        streamed = 0
        streamDeferred = true
        let rest = try continueStream(head, emit: emit, deferring: deferring)
        assert(rest.isEmpty && streamTarget != nil, "a streamed chunk starts with less than a sealed chunk")
        return true
    }

    /// Whether a chunk ending at this offset of the input is followed by more of it (so it is not the segment's
    /// final chunk): only known when the caller announced the input's length.
    private func knownNonFinal(endingAt end: Int) -> Bool {
        guard let maxCiphertextLength else { return false }
        return end < maxCiphertextLength
    }

    /// Starts opening a full non-final chunk of which `head` (shorter than a sealed chunk) is the beginning:
    /// decrypts it into the caller's space when that holds a chunk, else into the opener's own buffer.
    private func startStream(_ head: Slice<UnsafeRawBufferPointer>, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                             emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let chunkSize = layout.chunkSize
        var target = output
        do {
            let offered = try space(chunkSize)
            if offered.count >= chunkSize { target = offered }
        } catch {
            failed = true  // the consumer failed mid-stream: this stream cannot continue
            throw error
        }
        if target.baseAddress == output.baseAddress { outputUsed = max(outputUsed, chunkSize) }
        nonceAAD.set(index: nextIndex, final: false)
        do {
            try aead.context.openStart(nonce: UnsafeRawBufferPointer(nonceAAD.nonce), aad: UnsafeRawBufferPointer(nonceAAD.aad))
        } catch {
            failed = true
            throw EncryptionError(.internalFailure, "opening chunk \(nextIndex) failed: \(error)")
        }
        streamTarget = UnsafeMutableRawBufferPointer(rebasing: target[0..<chunkSize])
        streamed = 0
        let rest = try continueStream(head, emit: emit, deferring: nil)
        assert(rest.isEmpty && streamTarget != nil, "a streamed chunk starts with less than a sealed chunk")
    }

    /// Feeds the next bytes of the chunk being streamed: its ciphertext is decrypted where it lies, its tag
    /// collected; once the tag is whole it is checked and, only then, the plaintext emitted. Returns the input
    /// after the chunk.
    private func continueStream(_ input: Slice<UnsafeRawBufferPointer>, emit: (UnsafeRawBufferPointer) throws -> Void,
                                deferring: ChunkDeferral?) throws -> Slice<UnsafeRawBufferPointer> {
        guard let target = streamTarget else { return input }
        let chunkSize = target.count
        let take = min(chunkSize + FormatV1.tagSize - streamed, input.count)
        let bytes = UnsafeRawBufferPointer(rebasing: input.prefix(take))
        let ciphertext = max(0, min(chunkSize - streamed, take))
        if streamDeferred {
            if ciphertext > 0 { (target.baseAddress! + streamed).copyMemory(from: bytes.baseAddress!, byteCount: ciphertext) }
        } else {
            do {
                try aead.context.openUpdate(UnsafeRawBufferPointer(rebasing: bytes[0..<ciphertext]), into: target.baseAddress! + streamed)
            } catch {
                abandonStream()
                throw EncryptionError(.internalFailure, "opening chunk \(nextIndex) failed: \(error)")
            }
        }
        if take > ciphertext {
            let tagOffset = streamed + ciphertext - chunkSize
            (pending.baseAddress! + tagOffset).copyMemory(from: bytes.baseAddress! + ciphertext, byteCount: take - ciphertext)
        }
        streamed += take
        let rest = input.dropFirst(take)
        guard streamed == chunkSize + FormatV1.tagSize else { return rest }
        streamTarget = nil
        if streamDeferred {
            streamDeferred = false
            if let deferring {
                try handOver(target, tag: UnsafeRawPointer(pending.baseAddress!), to: deferring)
                return rest
            }
            // The caller stopped handing chunks over before this one was whole: it is opened here, where it lies.
            nonceAAD.set(index: nextIndex, final: false)
            do {
                try aead.context.openStart(nonce: UnsafeRawBufferPointer(nonceAAD.nonce), aad: UnsafeRawBufferPointer(nonceAAD.aad))
                try aead.context.openUpdate(UnsafeRawBufferPointer(target), into: target.baseAddress!)
            } catch {
                failed = true
                SecureMemory.cleanse(target)
                throw EncryptionError(.internalFailure, "opening chunk \(nextIndex) failed: \(error)")
            }
        }
        do {
            try aead.context.openFinish(tag: UnsafeRawBufferPointer(rebasing: pending[0..<FormatV1.tagSize]), wiping: target)
        } catch AEADError.authenticationFailed {
            failed = true
            // Its ciphertext is gone (decrypted where it lay), so the final flag cannot be tried the other way as
            // `diagnose` does; the caller announced more input after this chunk, so it is not expected to be final.
            throw EncryptionError(.tamperDetected, "chunk \(nextIndex) failed authentication: the stored object was modified, reordered or spliced")
        } catch {
            failed = true
            SecureMemory.cleanse(UnsafeMutableRawBufferPointer(rebasing: target[0..<chunkSize]))
            throw EncryptionError(.internalFailure, "opening chunk \(nextIndex) failed: \(error)")
        }
        nextIndex += 1
        plaintextLength += chunkSize
        do {
            try emit(UnsafeRawBufferPointer(target))
        } catch {
            failed = true   // the consumer failed mid-stream: this stream cannot continue
            throw error
        }
        return rest
    }

    /// Drops the chunk being streamed: its unverified plaintext is wiped (the opener is failed).
    private func abandonStream() {
        failed = true
        streamDeferred = false
        if let target = streamTarget, streamed > 0 { SecureMemory.cleanse(UnsafeMutableRawBufferPointer(rebasing: target[0..<min(streamed, target.count)])) }
        streamTarget = nil
    }

    /// Thrown (rather than trapping) when a caller keeps using an opener after `finish` or an
    /// error, so a handler bug fails one request instead of the process.
    static let misuse = EncryptionError(.invalidParameter, "ChunkOpener used after finish or after a failure")

    public func update(_ input: [UInt8], emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try input.withUnsafeBytes { try update($0, emit: emit) }
    }

    /// Ends the input. With `lastChunkIsFinal` (a whole object, or a range that reaches the end),
    /// the buffered chunk must be the segment's final chunk; otherwise it must be a full non-final chunk.
    public func finish(lastChunkIsFinal: Bool = true, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !finished && !failed else { throw Self.misuse }
        finished = true
        let sealedSize = layout.sealedChunkSize
        if streamTarget != nil {
            abandonStream()
            throw EncryptionError(.truncated, "the ciphertext ends inside chunk \(nextIndex): it was truncated")
        }
        if lastChunkIsFinal {
            guard pendingCount >= FormatV1.tagSize else {
                throw EncryptionError(.truncated, "the object ends \(pendingCount == 0 ? "without its final chunk" : "inside a chunk") at chunk \(nextIndex): it was truncated")
            }
            // Only an empty object has an empty (tag-only) final chunk.
            guard pendingCount > FormatV1.tagSize || nextIndex == 0 else {
                throw EncryptionError(.malformedCiphertext, "an empty final chunk at index \(nextIndex) is not produced by any writer")
            }
            try openChunk(UnsafeRawBufferPointer(rebasing: pending[0..<pendingCount]), final: true, emit: emit)
        } else {
            guard pendingCount == sealedSize else {
                throw EncryptionError(.truncated, "the ciphertext range ends inside chunk \(nextIndex): it was truncated")
            }
            try openChunk(UnsafeRawBufferPointer(rebasing: pending[0..<pendingCount]), final: false, emit: emit)
        }
        pendingCount = 0
    }

    private func openChunk(_ sealed: UnsafeRawBufferPointer, final: Bool,
                           space: (Int) throws -> UnsafeMutableRawBufferPointer = ChunkOpener.noSpace,
                           emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let expected = sealed.count - FormatV1.tagSize
        var target = output
        if expected > 0 {
            let offered: UnsafeMutableRawBufferPointer
            do {
                offered = try space(expected)
            } catch {
                failed = true  // the consumer failed mid-stream: this stream cannot continue
                throw error
            }
            if offered.count >= expected { target = offered }
        }
        let count: Int
        do {
            count = try attempt(sealed, final: final, into: target)
        } catch AEADError.authenticationFailed {
            failed = true
            // The cipher zeroed the target; the retry below runs in the opener's own buffer.
            throw diagnose(sealed, expectedFinal: final)
        } catch {
            failed = true
            if target.baseAddress != output.baseAddress, expected > 0 { SecureMemory.cleanse(UnsafeMutableRawBufferPointer(rebasing: target[0..<min(expected, target.count)])) }
            throw EncryptionError(.internalFailure, "opening chunk \(nextIndex) failed: \(error)")
        }
        nextIndex += 1
        if target.baseAddress == output.baseAddress { outputUsed = max(outputUsed, count) }
        plaintextLength += count
        do {
            try emit(UnsafeRawBufferPointer(rebasing: target[0..<count]))
        } catch {
            failed = true   // the consumer failed mid-stream: this stream cannot continue
            throw error
        }
    }

    private func attempt(_ sealed: UnsafeRawBufferPointer, final: Bool, into target: UnsafeMutableRawBufferPointer) throws(AEADError) -> Int {
        nonceAAD.set(index: nextIndex, final: final)
        return try aead.context.open(nonce: UnsafeRawBufferPointer(nonceAAD.nonce), aad: UnsafeRawBufferPointer(nonceAAD.aad),
                             sealed: sealed, into: target)
    }

    /// A chunk failed: check whether it verifies with the opposite final flag, which tells
    /// truncation (a non-final chunk at the end) and trailing data (a final chunk followed by
    /// more) apart from modification. Costs a second decryption on the failure path only;
    /// the plaintext of the retry is discarded either way.
    private func diagnose(_ sealed: UnsafeRawBufferPointer, expectedFinal: Bool) -> EncryptionError {
        let index = nextIndex
        let flipped = (try? attempt(sealed, final: !expectedFinal, into: output)) != nil
        outputUsed = max(outputUsed, min(output.count, sealed.count - FormatV1.tagSize))
        SecureMemory.cleanse(UnsafeMutableRawBufferPointer(rebasing: output[0..<outputUsed]))
        if flipped && expectedFinal {
            return EncryptionError(.truncated, "chunk \(index) is not the final chunk but the data ends after it: the object was truncated")
        }
        if flipped && !expectedFinal {
            return EncryptionError(.trailingData, "chunk \(index) is the final chunk but more data follows it")
        }
        return EncryptionError(.tamperDetected, "chunk \(index) failed authentication: the stored object was modified, reordered or spliced")
    }
}

/// Cuts the decrypted chunks of a range read down to the requested bytes (`skip` bytes into the
/// first chunk, then `length` bytes).
public struct PlaintextWindow: Sendable {
    public private(set) var skip: Int
    public private(set) var remaining: Int

    public init(skip: Int, length: Int) {
        self.skip = skip
        self.remaining = length
    }

    public init(_ mapping: RangeMapping) {
        self.init(skip: mapping.skip, length: mapping.length)
    }

    /// The part of `chunk` inside the window (possibly empty).
    public mutating func slice(_ chunk: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let drop = min(skip, chunk.count)
        skip -= drop
        let take = min(remaining, chunk.count - drop)
        remaining -= take
        return UnsafeRawBufferPointer(rebasing: chunk[drop..<(drop + take)])
    }

    public var isComplete: Bool { remaining == 0 }

    /// Whether the next `count` plaintext bytes lie wholly inside the window (a chunk handed over whole).
    public func coversWhole(_ count: Int) -> Bool { skip == 0 && remaining >= count }

    /// Passes `count` bytes that `coversWhole(count)` without looking at them.
    public mutating func passWhole(_ count: Int) {
        precondition(coversWhole(count), "passWhole beyond the window")
        remaining -= count
    }
}
