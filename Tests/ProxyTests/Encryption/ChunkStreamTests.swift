import Testing
@testable import Proxy
@testable import Shared

@Suite struct ChunkStreamTests {
    static let small = try! ChunkLayout(chunkSize: 4096)

    private func sealer(_ cipher: AEADAlgorithm = .aes256GCM, key: [UInt8] = EncryptionFixtures.segmentKey(),
                        layout: ChunkLayout = small, part: Int = 0) throws -> ChunkSealer {
        try ChunkSealer(cipher: cipher, segmentKey: key, layout: layout, partNumber: part)
    }

    private func opener(_ cipher: AEADAlgorithm = .aes256GCM, key: [UInt8] = EncryptionFixtures.segmentKey(),
                        layout: ChunkLayout = small, part: Int = 0, first: Int = 0) throws -> ChunkOpener {
        try ChunkOpener(cipher: cipher, segmentKey: key, layout: layout, partNumber: part, firstChunkIndex: first)
    }

    private func sealWhole(_ plaintext: [UInt8], _ cipher: AEADAlgorithm = .aes256GCM, key: [UInt8] = EncryptionFixtures.segmentKey(),
                           layout: ChunkLayout = small, part: Int = 0) throws -> [UInt8] {
        var rng = SplitMix64(seed: 7)
        return try EncryptionFixtures.seal(plaintext, with: sealer(cipher, key: key, layout: layout, part: part), rng: &rng, maxPiece: 10_000)
    }

    /// Opens and returns (plaintext released, error).
    private func openCollecting(_ ciphertext: [UInt8], key: [UInt8] = EncryptionFixtures.segmentKey(), part: Int = 0,
                                cipher: AEADAlgorithm = .aes256GCM) -> ([UInt8], EncryptionError?) {
        var released: [UInt8] = []
        do {
            let o = try opener(cipher, key: key, part: part)
            try o.update(ciphertext) { released.append(contentsOf: $0) }
            try o.finish { released.append(contentsOf: $0) }
            return (released, nil)
        } catch let error as EncryptionError {
            return (released, error)
        } catch {
            Issue.record("unexpected error type \(error)")
            return (released, nil)
        }
    }

    @Test(arguments: AEADAlgorithm.allCases, [4096, 65536])
    func roundTripsAtChunkBoundaries(_ cipher: AEADAlgorithm, chunkSize: Int) throws {
        let layout = try ChunkLayout(chunkSize: chunkSize)
        var rng = SplitMix64(seed: UInt64(chunkSize) ^ UInt64(cipher.rawValue))
        for size in [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3 * chunkSize, 3 * chunkSize + 5] {
            let plaintext = rng.bytes(size)
            let key = SecureRandom.bytes(32)
            for maxPiece in [1 + size / 3, chunkSize + 16, 3 * chunkSize] {
                let ciphertext = try EncryptionFixtures.seal(plaintext, with: sealer(cipher, key: key, layout: layout), rng: &rng, maxPiece: maxPiece)
                #expect(ciphertext.count == layout.ciphertextLength(plaintextLength: size), "size \(size)")
                #expect(try layout.plaintextLength(ciphertextLength: ciphertext.count) == size)
                let opened = try EncryptionFixtures.open(ciphertext, with: opener(cipher, key: key, layout: layout), rng: &rng, maxPiece: maxPiece)
                #expect(opened == plaintext, "size \(size) pieces ≤ \(maxPiece)")
            }
        }
    }

    @Test func roundTripsTenMebibytesInRandomPieces() throws {
        let plaintext = SecureRandom.bytes(10 * 1024 * 1024 + 3)
        var rng = SplitMix64(seed: 42)
        let key = SecureRandom.bytes(32)
        let ciphertext = try EncryptionFixtures.seal(plaintext, with: sealer(key: key, layout: .default), rng: &rng, maxPiece: 300_000)
        #expect(ciphertext.count == ChunkLayout.default.ciphertextLength(plaintextLength: plaintext.count))
        let opened = try EncryptionFixtures.open(ciphertext, with: opener(key: key, layout: .default), rng: &rng, maxPiece: 300_000)
        #expect(opened == plaintext)
    }

    /// `update(_:space:emit:)` decrypts each chunk into the space the caller offers (when it is large enough) and
    /// emits it from there; the plaintext is the same as from the opener's own buffer, in pieces of any size.
    @Test func chunksDecryptIntoTheCallersSpace() throws {
        let plaintext = randomBytes(seed: 11, 5 * 4096 + 77)
        let ciphertext = try sealWhole(plaintext)
        let space = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * 4096, alignment: 16)
        defer { space.deallocate() }
        var rng = SplitMix64(seed: 12)
        for (offered, maxPiece) in [(4096, 1), (4096, 5000), (3 * 4096, 20_000), (4095, 9000)] {
            let o = try opener()
            var opened: [UInt8] = [], inSpace = 0, asked: [Int] = []
            var offset = 0
            while offset < ciphertext.count {
                let n = min(ciphertext.count - offset, Int.random(in: 1...maxPiece, using: &rng))
                try Array(ciphertext[offset..<(offset + n)]).withUnsafeBytes { piece in
                    try o.update(piece, space: { count in
                        asked.append(count)
                        return UnsafeMutableRawBufferPointer(rebasing: space[0..<offered])
                    }, emit: { chunk in
                        if chunk.baseAddress == UnsafeRawPointer(space.baseAddress) { inSpace += 1 }
                        opened += chunk
                    })
                }
                offset += n
            }
            try o.finish { opened += $0 }
            #expect(opened == plaintext, "space \(offered), pieces ≤ \(maxPiece)")
            // Every chunk but the final one (opened by finish) asks for a whole chunk's room, and uses it when offered.
            #expect(asked == [Int](repeating: 4096, count: 5))
            #expect(inSpace == (offered >= 4096 ? 5 : 0))
        }
    }

    /// A chunk that fails in the caller's space leaves zeros there, not the unverified plaintext.
    @Test func aChunkThatFailsInTheCallersSpaceLeavesNoPlaintext() throws {
        let plaintext = [UInt8](repeating: 0x41, count: 3 * 4096)
        var ciphertext = try sealWhole(plaintext)
        ciphertext[4112 + 100] ^= 1
        let space = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { space.deallocate() }
        space.initializeMemory(as: UInt8.self, repeating: 0x99)
        let o = try opener()
        var released: [UInt8] = []
        #expect(throws: EncryptionError.self) {
            try ciphertext.withUnsafeBytes { try o.update($0, space: { _ in space }, emit: { released += $0 }) }
        }
        #expect(released == Array(plaintext.prefix(4096)))
        #expect(space.allSatisfy { $0 == 0 })
    }

    /// A planned opener (its input's length announced) knows a chunk that ends before that length is not final, so
    /// one split across two pieces is decrypted as its pieces come, straight into the caller's space (it asks for
    /// the room at the chunk's first byte, not once the chunk is whole), and emitted once its tag verifies —
    /// at the piece that completes it, without waiting for the next byte. Cuts anywhere in a chunk or its tag.
    @Test func aPlannedOpenerOpensSplitChunksAsTheyArrive() throws {
        let plaintext = randomBytes(seed: 21, 5 * 4096 + 77)
        let ciphertext = try sealWhole(plaintext)
        let sealed = 4096 + 16
        let space = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { space.deallocate() }
        for offered in [4096, 4095] {
            for cut: Int in [1, 15, 16, 17, 2047, 4095, 4096, 4097, 4111, sealed, -3, -5000, -9000] {
                let o = try ChunkOpener(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.small,
                                        maxCiphertextLength: ciphertext.count)
                var opened: [UInt8] = [], inSpace = 0, asked = 0
                // Chunk 1 cut `cut` bytes in (negative: pieces of that many bytes throughout).
                let pieces: [Int] = cut > 0 ? [0, sealed + cut, ciphertext.count] : Array(stride(from: 0, to: ciphertext.count, by: -cut)) + [ciphertext.count]
                for (from, to) in zip(pieces, pieces.dropFirst()) {
                    let chunksBefore = opened.count / 4096
                    try Array(ciphertext[from..<to]).withUnsafeBytes { piece in
                        try o.update(piece, space: { count in
                            asked += 1
                            return UnsafeMutableRawBufferPointer(rebasing: space[0..<offered])
                        }, emit: { chunk in
                            if chunk.baseAddress == UnsafeRawPointer(space.baseAddress) { inSpace += 1 }
                            opened += chunk
                        })
                    }
                    // Every non-final chunk that ends inside this piece was emitted, and room was asked for every
                    // chunk that starts in it.
                    let complete = min(5, to / sealed)
                    #expect(opened.count == complete * 4096, "cut \(cut): after byte \(to)")
                    #expect(asked == min(5, (to + sealed - 1) / sealed), "cut \(cut): after byte \(to), \(chunksBefore) before")
                }
                try o.finish { opened += $0 }
                #expect(opened == plaintext, "cut \(cut), space \(offered)")
                #expect(inSpace == (offered >= 4096 ? 5 : 0), "cut \(cut)")
            }
        }
    }

    /// A modified byte anywhere in a chunk split across pieces (its first piece, its second, the tag on either
    /// side of the cut) fails the read; the chunk is never emitted and no plaintext of it is left in the caller's
    /// space. The same for a read that ends half-way through a split chunk.
    @Test func aSplitChunkThatFailsOrIsCutShortLeavesNoPlaintext() throws {
        let plaintext = [UInt8](repeating: 0x41, count: 4096) + [UInt8](repeating: 0x42, count: 4096) + [UInt8](repeating: 0x43, count: 100)
        let ciphertext = try sealWhole(plaintext)
        let sealed = 4096 + 16
        let space = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { space.deallocate() }
        let cases: [(cut: Int, flip: Int?)] = [(2000, 100), (2000, 3000), (4100, 4098), (4100, 4105), (4096, 4111), (2000, nil), (4111, nil)]
        for (cut, flip) in cases {
            var damaged = ciphertext
            if let flip { damaged[sealed + flip] ^= 0x08 }
            let o = try ChunkOpener(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.small,
                                    maxCiphertextLength: ciphertext.count)
            var released: [UInt8] = []
            var failure: EncryptionError?
            do {
                for (from, to) in [(0, sealed + cut), (sealed + cut, flip == nil ? sealed + cut : damaged.count)] where to > from {
                    try Array(damaged[from..<to]).withUnsafeBytes { try o.update($0, space: { _ in space }, emit: { released += $0 }) }
                }
                try o.finish { released += $0 }
            } catch let error as EncryptionError {
                failure = error
            }
            #expect(failure?.code == (flip == nil ? .truncated : .tamperDetected), "cut \(cut), flip \(String(describing: flip))")
            #expect(released == Array(plaintext.prefix(4096)), "cut \(cut)")
            #expect(!space.contains(0x42), "cut \(cut), flip \(String(describing: flip)): unverified plaintext left")
        }
    }

    @Test func sealingIsNotDeterministicAcrossSegmentKeys() throws {
        let plaintext = [UInt8](repeating: 0x41, count: 5000)
        let a = try sealWhole(plaintext, key: EncryptionFixtures.segmentKey(1, salt: 1))
        let b = try sealWhole(plaintext, key: EncryptionFixtures.segmentKey(1, salt: 2))
        #expect(a != b)
        // Same key, same input: the format is deterministic given the key (the randomness is in the salt).
        #expect(a == (try sealWhole(plaintext, key: EncryptionFixtures.segmentKey(1, salt: 1))))
    }

    @Test func everyFlippedByteIsDetectedAndItsChunkNeverReleased() throws {
        let plaintext = randomBytes(seed: 3, 3 * 4096 + 100)
        let ciphertext = try sealWhole(plaintext)
        var rng = SplitMix64(seed: 99)
        var positions: [Int] = [0, ciphertext.count - 1, 4096, 4096 + 15, 4112, 2 * 4112 - 1]
        for _ in 0..<40 { positions.append(Int.random(in: 0..<ciphertext.count, using: &rng)) }
        for position in positions {
            var damaged = ciphertext
            damaged[position] ^= UInt8.random(in: 1...255, using: &rng)
            let (released, error) = openCollecting(damaged)
            #expect(error?.code == .tamperDetected, "flip at \(position)")
            let damagedChunk = position / 4112
            #expect(released == Array(plaintext.prefix(damagedChunk * 4096)), "only chunks before the damaged one are released")
        }
    }

    @Test func truncationAtEveryChunkBoundaryIsDetected() throws {
        let plaintext = randomBytes(seed: 4, 4 * 4096)   // exact multiple: the final chunk is full
        let ciphertext = try sealWhole(plaintext)
        for chunks in 0..<4 {
            let (_, error) = openCollecting(Array(ciphertext.prefix(chunks * 4112)))
            #expect(error?.code == .truncated, "cut after \(chunks) chunks")
        }
        // Cut inside the last chunk: the short remainder does not authenticate as a final chunk.
        let (_, midError) = openCollecting(Array(ciphertext.dropLast(100)))
        #expect(midError != nil)
    }

    @Test func reorderedAndDroppedChunksAreDetected() throws {
        let plaintext = randomBytes(seed: 5, 3 * 4096 + 10)
        let c = try sealWhole(plaintext)
        func chunk(_ i: Int) -> [UInt8] { Array(c[(i * 4112)..<min((i + 1) * 4112, c.count)]) }
        func join(_ indices: [Int]) -> [UInt8] { indices.flatMap(chunk) }
        #expect(openCollecting(join([1, 0, 2, 3])).1?.code == .tamperDetected)
        #expect(openCollecting(join([0, 2, 3])).1?.code == .tamperDetected)
        #expect(openCollecting(join([0, 0, 1, 2, 3])).1?.code == .tamperDetected)
        #expect(openCollecting(join([0, 1, 2, 3])).1 == nil)
    }

    @Test func chunksSplicedFromAnotherObjectOrPartAreDetected() throws {
        let plaintext = randomBytes(seed: 6, 2 * 4096 + 10)
        let mine = try sealWhole(plaintext, key: EncryptionFixtures.segmentKey(1))
        let other = try sealWhole(plaintext, key: EncryptionFixtures.segmentKey(9))
        let spliced = Array(mine[0..<4112]) + Array(other[4112..<8224]) + Array(mine[8224...])
        let (released, error) = openCollecting(spliced)
        #expect(error?.code == .tamperDetected)
        #expect(released == Array(plaintext.prefix(4096)))
        // Same key, other part number: the AAD differs.
        let part1 = try sealWhole(plaintext, part: 1)
        #expect(openCollecting(part1, part: 2).1?.code == .tamperDetected)
        #expect(openCollecting(part1, part: 1).1 == nil)
        // Other cipher id under the same key bytes.
        #expect(openCollecting(mine, cipher: .chacha20Poly1305).1?.code == .tamperDetected)
    }

    @Test func dataAfterTheFinalChunkIsRejected() throws {
        let plaintext = randomBytes(seed: 8, 4096 + 10)
        let c = try sealWhole(plaintext)
        // After a short final chunk the extra bytes make the chunk look modified (its end is only
        // known from the length); it is rejected either way.
        #expect(openCollecting(c + [0]).1?.code == .tamperDetected)
        #expect(openCollecting(c + c).1?.code == .tamperDetected)
        // After a full final chunk the opener can tell exactly what happened.
        let aligned = try sealWhole(randomBytes(seed: 12, 2 * 4096))
        #expect(openCollecting(aligned + [0]).1?.code == .trailingData)
        #expect(openCollecting(aligned + aligned).1?.code == .trailingData)
        // An empty object followed by anything.
        let empty = try sealWhole([])
        #expect(empty.count == 16)
        #expect(openCollecting(empty).1 == nil)
        #expect(openCollecting(empty + empty).1?.code == .tamperDetected)
        // An empty final chunk after full chunks is never written and never accepted.
        let full = try sealWhole(randomBytes(seed: 9, 4096))
        #expect(openCollecting(full + empty).1 != nil)
    }

    @Test func rangeOpenerChecksTheFinalFlagOfItsLastChunk() throws {
        let plaintext = randomBytes(seed: 10, 3 * 4096 + 7)
        let c = try sealWhole(plaintext)
        var rng = SplitMix64(seed: 11)
        // Chunks 1...2 (not the final chunk).
        let middle = Array(c[4112..<(3 * 4112)])
        let opened = try EncryptionFixtures.open(middle, with: opener(first: 1), rng: &rng, maxPiece: 5000, lastChunkIsFinal: false)
        #expect(opened == Array(plaintext[4096..<(3 * 4096)]))
        // Claiming chunk 2 is final fails as truncation; starting at the wrong index fails as tampering.
        do {
            _ = try EncryptionFixtures.open(middle, with: opener(first: 1), rng: &rng, maxPiece: 5000, lastChunkIsFinal: true)
            Issue.record("a non-final chunk was accepted as final")
        } catch let error as EncryptionError {
            #expect(error.code == .truncated)
        }
        #expect(throws: EncryptionError.self) {
            _ = try EncryptionFixtures.open(middle, with: opener(first: 2), rng: &rng, maxPiece: 5000, lastChunkIsFinal: false)
        }
        // The tail (chunk 3) opens as final.
        let tail = Array(c[(3 * 4112)...])
        #expect(try EncryptionFixtures.open(tail, with: opener(first: 3), rng: &rng, maxPiece: 5, lastChunkIsFinal: true) == Array(plaintext[(3 * 4096)...]))
    }

    private func randomBytes(seed: UInt64, _ count: Int) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(count)
    }

    @Test func declaredLengthIsEnforced() throws {
        let exact = try ChunkSealer(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.small, expectedPlaintextLength: 5000)
        var out: [UInt8] = []
        try exact.update(randomBytes(seed: 1, 5000)) { out += $0 }
        try exact.finish { out += $0 }
        #expect(out.count == Self.small.ciphertextLength(plaintextLength: 5000))

        let long = try ChunkSealer(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.small, expectedPlaintextLength: 5000)
        try long.update(randomBytes(seed: 1, 4000)) { _ in }
        do {
            try long.update(randomBytes(seed: 2, 1001)) { _ in }
            Issue.record("over-long body accepted")
        } catch let error as EncryptionError { #expect(error.code == .lengthMismatch) }

        let short = try ChunkSealer(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.small, expectedPlaintextLength: 5000)
        try short.update(randomBytes(seed: 1, 4999)) { _ in }
        var finalEmitted = false
        do {
            try short.finish { _ in finalEmitted = true }
            Issue.record("short body accepted")
        } catch let error as EncryptionError { #expect(error.code == .lengthMismatch) }
        #expect(!finalEmitted, "no final chunk for a short body")
    }

    /// A sealer told a length below a chunk holds buffers of that size, not a chunk's: fed in pieces of any
    /// size, it seals byte for byte what an unbounded sealer seals, and one byte more than it was told is
    /// refused before it reaches the (smaller) buffer.
    @Test(arguments: [(4096, 0), (4096, 1), (4096, 100), (4096, 4095), (4096, 4096), (4096, 5000), (65536, 100), (65536, 40000)])
    func aSealerForLessThanAChunkSealsTheSame(chunkSize: Int, length: Int) throws {
        let layout = try ChunkLayout(chunkSize: chunkSize)
        let plaintext = randomBytes(seed: UInt64(length), length)
        func seal(expected: Int?, pieces seed: UInt64) throws -> [UInt8] {
            let sealer = try ChunkSealer(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: layout,
                                         expectedPlaintextLength: expected)
            var rng = SplitMix64(seed: seed)
            var out: [UInt8] = []
            var at = 0
            while at < plaintext.count {
                let n = min(Int(rng.next() % 1500) + 1, plaintext.count - at)
                try sealer.update(Array(plaintext[at..<(at + n)])) { out += $0 }
                at += n
            }
            try sealer.finish { out += $0 }
            return out
        }
        let reference = try seal(expected: nil, pieces: 1)
        #expect(reference.count == layout.ciphertextLength(plaintextLength: length))
        for seed: UInt64 in [2, 3] { #expect(try seal(expected: length, pieces: seed) == reference) }

        let bounded = try ChunkSealer(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: layout,
                                      expectedPlaintextLength: length)
        try bounded.update(plaintext) { _ in }
        do {
            try bounded.update([0]) { _ in }
            Issue.record("a byte past the expected length was accepted")
        } catch let error as EncryptionError { #expect(error.code == .lengthMismatch) }
    }

    /// An opener given its key as raw bytes (a cached segment key) opens what the sealer sealed, for buffers of every
    /// shape (small ones in one malloc'd block, a whole chunk's cache-line aligned, odd announced lengths), and
    /// refuses the same ciphertext under another key.
    @Test(arguments: [(4096, 0), (4096, 1), (4096, 17), (4096, 4096), (4096, 9000), (65536, 100), (65536, 40000),
                      (65536, 65536), (65536, 70000)])
    func rawKeyOpenersOpenEveryBufferShape(chunkSize: Int, size: Int) throws {
        let layout = try ChunkLayout(chunkSize: chunkSize)
        let plaintext = randomBytes(seed: UInt64(size), size)
        let ciphertext = try sealWhole(plaintext, layout: layout)
        let key = EncryptionFixtures.segmentKey()
        var rng = SplitMix64(seed: 5)
        for announced in [nil, ciphertext.count] as [Int?] {
            let opener = try key.withUnsafeBytes { raw in
                try ChunkOpener(cipher: .aes256GCM, segmentKeyBytes: raw, layout: layout, maxCiphertextLength: announced)
            }
            #expect(try EncryptionFixtures.open(ciphertext, with: opener, rng: &rng, maxPiece: 5000) == plaintext)
        }
        var wrong = key
        wrong[0] ^= 1
        let refused = try wrong.withUnsafeBytes { raw in
            try ChunkOpener(cipher: .aes256GCM, segmentKeyBytes: raw, layout: layout, maxCiphertextLength: ciphertext.count)
        }
        #expect(throws: EncryptionError.self) { try EncryptionFixtures.open(ciphertext, with: refused, rng: &rng, maxPiece: 5000) }
        #expect(throws: EncryptionError.self) {
            try [UInt8](repeating: 1, count: 16).withUnsafeBytes { raw in
                try ChunkOpener(cipher: .aes256GCM, segmentKeyBytes: raw, layout: layout)
            }
        }
    }

    /// An opener told how much ciphertext comes (a planned read) sizes its buffers for it; it still opens every
    /// shape of input, from any first chunk, and refuses input beyond what was announced.
    @Test(arguments: [0, 1, 100, 4095, 4096, 4097, 3 * 4096 + 5])
    func anAnnouncedLengthOpensTheSameAndBoundsTheInput(size: Int) throws {
        let plaintext = randomBytes(seed: UInt64(size), size)
        let ciphertext = try sealWhole(plaintext)
        var rng = SplitMix64(seed: 9)
        for maxPiece in [1 + size / 3, 4096 + 16, ciphertext.count] {
            let exact = try ChunkOpener(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.small,
                                        maxCiphertextLength: ciphertext.count)
            #expect(try EncryptionFixtures.open(ciphertext, with: exact, rng: &rng, maxPiece: maxPiece) == plaintext, "size \(size)")
        }
        // A range that starts at the second chunk, announced exactly.
        if size > 4096 {
            let tail = Array(ciphertext[(4096 + 16)...])
            let range = try ChunkOpener(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.small,
                                        firstChunkIndex: 1, maxCiphertextLength: tail.count)
            #expect(try EncryptionFixtures.open(tail, with: range, rng: &rng, maxPiece: 1000) == Array(plaintext[4096...]))
        }
        // One byte more than announced is refused before it is opened; announcing one byte less refuses the input too.
        for (announced, input) in [(ciphertext.count, ciphertext + [0]), (ciphertext.count - 1, ciphertext)] {
            let bounded = try ChunkOpener(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.small,
                                          maxCiphertextLength: announced)
            var released = 0
            do {
                try bounded.update(input) { released += $0.count }
                try bounded.finish { released += $0.count }
                Issue.record("input beyond the announced \(announced) bytes accepted")
            } catch let error as EncryptionError {
                #expect(error.code == .trailingData)
            }
            // The piece that goes beyond is refused whole, before any of it is opened.
            #expect(released == 0)
            #expect(throws: EncryptionError.self) { try bounded.finish { _ in } }
        }
    }

    @Test func plaintextWindowCutsExactly() {
        var window = PlaintextWindow(skip: 5, length: 7)
        let a: [UInt8] = Array(0..<4), b: [UInt8] = Array(4..<10), c: [UInt8] = Array(10..<20)
        var out: [UInt8] = []
        for chunk in [a, b, c] { chunk.withUnsafeBytes { out += Array(window.slice($0)) } }
        #expect(out == Array(5..<12))
        #expect(window.isComplete)
    }
}

@Suite struct ChunkOpenerFuzzTests {
    /// Seeded mutation fuzzing of the opener: random flips, cuts, insertions and deletions. It never
    /// crashes, anything it accepts is the original plaintext, and whatever it released before an
    /// error is a chunk-aligned prefix of the original plaintext.
    @Test func mutatedCiphertextNeverYieldsWrongPlaintext() throws {
        let layout = try ChunkLayout(chunkSize: 4096)
        let key = EncryptionFixtures.segmentKey(5)
        var rng = SplitMix64(seed: 31337)
        let plaintext = rng.bytes(3 * 4096 + 123)
        let sealer = try ChunkSealer(cipher: .aes256GCM, segmentKey: key, layout: layout)
        let ciphertext = try EncryptionFixtures.seal(plaintext, with: sealer, rng: &rng, maxPiece: 5000)
        for round in 0..<300 {
            var mutated = ciphertext
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<max(mutated.count, 1), using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0 where !mutated.isEmpty: mutated[i] ^= UInt8.random(in: 1...255, using: &rng)
                case 1: mutated = Array(mutated.prefix(i))
                case 2: mutated.insert(contentsOf: rng.bytes(Int.random(in: 1...40, using: &rng)), at: min(i, mutated.count))
                default: if !mutated.isEmpty { mutated.removeSubrange(i..<min(mutated.count, i + Int.random(in: 1...40, using: &rng))) }
                }
            }
            let opener = try ChunkOpener(cipher: .aes256GCM, segmentKey: key, layout: layout)
            var released: [UInt8] = []
            do {
                var offset = 0
                while offset < mutated.count {
                    let n = min(mutated.count - offset, Int.random(in: 1...6000, using: &rng))
                    try opener.update(Array(mutated[offset..<(offset + n)])) { released += $0 }
                    offset += n
                }
                try opener.finish { released += $0 }
                #expect(mutated == ciphertext, "round \(round): a modified stream was accepted")
                #expect(released == plaintext)
            } catch let error as EncryptionError {
                #expect(mutated != ciphertext)
                #expect(released.count % 4096 == 0 && released == Array(plaintext.prefix(released.count)), "round \(round)")
                // Further use is refused, not a crash.
                #expect(throws: EncryptionError.self) { try opener.finish { _ in } }
                _ = error
            }
        }
    }
}
