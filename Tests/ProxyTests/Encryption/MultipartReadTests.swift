import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// Locating parts, planning ranged reads and reading them (docs/FORMAT.md §9.2, §9.3), against stored bodies
/// played back as a backend would serve them.
@Suite struct MultipartReadTests {
    static let chunk = 4096
    let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring("mp-read"), layout: try! ChunkLayout(chunkSize: chunk))
    let id = ObjectIdentity(bucket: "b", key: "parts.bin")

    struct Stored {
        var metadata: EncryptionMetadata
        var body: [UInt8]
        var plaintext: [UInt8]
        var count: Int
    }

    private func store(sizes: [Int], numbers: [Int]? = nil, seed: UInt64 = 1) throws -> Stored {
        var rng = SplitMix64(seed: seed)
        let parts = sizes.map { rng.bytes($0) }
        let (meta, body) = try EncryptionFixtures.multipart(encryptor, id, parts: parts, numbers: numbers, rng: &rng, maxPiece: 9000)
        return Stored(metadata: meta, body: body, plaintext: parts.flatMap { $0 }, count: sizes.count)
    }

    /// Serves `bytes=a-b` of the stored body, as the backend would.
    private func read(_ stored: Stored, range: String?, hint: Int?? = nil, known: MultipartGeometry? = nil) throws -> (bytes: [UInt8], setup: MultipartReadSetup) {
        let body = stored.body
        let setup = try MultipartReadSetup.prepare(storedLength: body.count, chunkLayout: try stored.metadata.chunkLayout,
                                                   partCountHint: hint ?? stored.count, rangeHeader: range, geometry: known) { offset in
            Array(body[offset..<min(offset + 36, body.count)])
        }
        guard setup.plan.status != 416 else { return ([], setup) }
        let reader = try MultipartRangeReader(plan: setup.plan, geometry: setup.geometry, headers: setup.headers, encryptor: encryptor,
                                              metadata: stored.metadata, dataKey: try encryptor.dataKey(of: stored.metadata, identity: id))
        let fetched = Array(body[setup.plan.backendFirst...setup.plan.backendLast])
        var out: [UInt8] = []
        var offset = 0
        while offset < fetched.count {
            let n = min(fetched.count - offset, 777)
            try reader.update(Array(fetched[offset..<(offset + n)])) { out += $0 }
            offset += n
        }
        try reader.finish { out += $0 }
        return (out, setup)
    }

    /// The read of `range` handing over every other chunk it may, to be opened elsewhere (as a relay's stage does),
    /// in pieces of `piece` bytes: the bytes it produced, once the chunks handed over are opened, and how many were.
    private func readHandingOver(_ stored: Stored, range: String?, piece: Int) throws -> (bytes: [UInt8], handedOver: Int) {
        let body = stored.body
        let setup = try MultipartReadSetup.prepare(storedLength: body.count, chunkLayout: try stored.metadata.chunkLayout,
                                                   partCountHint: stored.count, rangeHeader: range) { offset in
            Array(body[offset..<min(offset + 36, body.count)])
        }
        let reader = try MultipartRangeReader(plan: setup.plan, geometry: setup.geometry, headers: setup.headers, encryptor: encryptor,
                                              metadata: stored.metadata, dataKey: try encryptor.dataKey(of: stored.metadata, identity: id))
        let fetched = Array(body[setup.plan.backendFirst...setup.plan.backendLast])
        let output = DeferredChunkTests.Output(capacity: fetched.count)
        var turn = 0
        let deferral = ChunkDeferral(wants: { turn += 1; return turn % 2 == 0 }, take: { output.take($0) })
        var offset = 0
        while offset < fetched.count {
            let n = min(fetched.count - offset, piece)
            try fetched[offset..<(offset + n)].withUnsafeBytes {
                try reader.update($0, space: output.space, emit: output.emit, deferring: deferral)
            }
            offset += n
        }
        try reader.finish(emit: output.emit)
        for chunk in output.handedOver { try chunk.open() }
        return (output.bytes, output.handedOver.count)
    }

    /// A multipart read hands over whole chunks inside the range from every part (never a part's final chunk, which
    /// its reader opens at the part's end, nor a range's cut first or last chunk): the same bytes as reading it all
    /// here, whether pieces hold several chunks or cut through chunks and part headers.
    @Test(arguments: [nil, "bytes=100-", "bytes=5000-60000", "bytes=20481-20490"])
    func partsHandOverWholeChunksInsideTheRange(range: String?) throws {
        let sizes = [5 * Self.chunk + 1, 5 * Self.chunk + 1, 5 * Self.chunk + 1, 3000]
        let stored = try store(sizes: sizes, seed: 5)
        let (expected, _) = try read(stored, range: range)
        for piece in [1000, 5000, 30_000] {
            let (bytes, handedOver) = try readHandingOver(stored, range: range, piece: piece)
            #expect(bytes == expected, "\(range ?? "whole"), pieces of \(piece)")
            #expect((handedOver >= 4) == (expected.count >= 8 * Self.chunk), "\(range ?? "whole"): \(handedOver) handed over")
        }
    }

    /// A modified byte in any chunk of a part fails the read, whether the reader opens that chunk or hands it over.
    @Test func aModifiedChunkOfAPartFailsWhicheverSideOpensIt() throws {
        let sizes = [5 * Self.chunk + 1, 5 * Self.chunk + 1, 3000]
        let stored = try store(sizes: sizes, seed: 6)
        let sealed = Self.chunk + 16
        // Part 2's segment starts after part 1's header and segment and its own header (36 bytes each).
        let part2 = 36 + (try stored.metadata.chunkLayout.ciphertextLength(plaintextLength: sizes[0])) + 36
        for index in 0..<5 {
            var damaged = stored
            damaged.body[part2 + index * sealed + 100] ^= 0x20
            var failure: EncryptionError?
            do {
                _ = try readHandingOver(damaged, range: nil, piece: 7000)
            } catch let error as EncryptionError {
                failure = error
            }
            #expect(failure?.code == .tamperDetected, "chunk \(index) of part 2")
        }
    }

    @Test(arguments: [
        [5 * chunk, 5 * chunk, 5 * chunk, 100],      // aligned uniform, short last part
        [5 * chunk + 1, 5 * chunk + 1, 5 * chunk + 1, 5 * chunk + 1], // not chunk multiples (5 MiB + 1 style)
        [3 * chunk, 3 * chunk, 7 * chunk + 5],        // last part larger than the others
        [2 * chunk + 3],                              // one part
        [chunk, chunk, chunk, chunk, chunk, chunk, chunk, chunk, chunk, 1],
    ])
    func uniformPartsTakeTwoHeaderReads(_ sizes: [Int]) throws {
        let stored = try store(sizes: sizes)
        let (whole, setup) = try read(stored, range: nil)
        #expect(whole == stored.plaintext)
        #expect(setup.geometry.plaintextLength == stored.plaintext.count)
        #expect(setup.geometry.count == sizes.count)
        #expect(setup.headerReads <= 2, "uniform parts are located with the first and the last header")
        #expect(sizes.count == 1 || setup.geometry.isUniform)
        // Without the ETag's part count the count is derived (a last part larger than the others is walked instead).
        let (again, noHint) = try read(stored, range: nil, hint: .some(nil))
        #expect(again == stored.plaintext && noHint.geometry.plaintextLength == stored.plaintext.count)
        #expect(sizes.last! > sizes[0] || noHint.geometry == setup.geometry)
    }

    @Test func rangesAcrossPartsReturnExactBytesWithFewReads() throws {
        let sizes = [3 * Self.chunk + 7, 3 * Self.chunk + 7, 3 * Self.chunk + 7, 3 * Self.chunk + 7, 1000]
        let stored = try store(sizes: sizes)
        let total = stored.plaintext.count
        let located = try read(stored, range: nil).setup.geometry
        var rng = SplitMix64(seed: 99)
        var cases = ["bytes=0-0", "bytes=\(total - 1)-", "bytes=-1", "bytes=-\(total + 10)", "bytes=\(sizes[0] - 1)-\(sizes[0])",
                     "bytes=\(sizes[0])-\(2 * sizes[0] - 1)", "bytes=5-\(total * 2)", "bytes=\(Self.chunk)-\(3 * sizes[0] + 10)"]
        for _ in 0..<60 {
            let a = Int.random(in: 0..<total, using: &rng)
            let b = Int.random(in: a..<total, using: &rng)
            cases.append("bytes=\(a)-\(b)")
        }
        for range in cases {
            let (bytes, setup) = try read(stored, range: range)
            guard case .satisfiable(let a, let b) = ByteRange.parse(range)!.resolve(size: total) else {
                Issue.record("unexpected 416 for \(range)")
                continue
            }
            #expect(bytes == Array(stored.plaintext[a...b]), "\(range)")
            #expect(setup.plan.status == 206 && setup.plan.contentRange == "bytes \(a)-\(b)/\(total)")
            // Never more than the covering chunks: at most one chunk before a and one after b.
            #expect(setup.plan.ciphertextLength <= (b - a + 1) + 2 * (Self.chunk + 16) + 36 * (setup.plan.lastIndex - setup.plan.firstIndex) + 16 * ((b - a) / Self.chunk + 2))
            // With the geometry known (cached), a range costs at most the first and last part's headers.
            let (cached, cachedSetup) = try read(stored, range: range, known: located)
            #expect(cached == bytes && cachedSetup.headerReads <= 2)
        }
        let (_, unsatisfiable) = try read(stored, range: "bytes=\(total)-")
        #expect(unsatisfiable.plan.status == 416 && unsatisfiable.plan.contentRange == "bytes */\(total)")
    }

    @Test func irregularPartsAreWalkedAndStillExact() throws {
        // Gaps in the part numbers, and sizes that differ in the middle.
        let gappy = try store(sizes: [2 * Self.chunk, 2 * Self.chunk, 2 * Self.chunk], numbers: [1, 2, 5])
        let (bytes, setup) = try read(gappy, range: nil)
        #expect(bytes == gappy.plaintext && !setup.geometry.isUniform && setup.headerReads == 4)
        let irregular = try store(sizes: [2 * Self.chunk, 3 * Self.chunk + 5, Self.chunk, 2 * Self.chunk, 10])
        let total = irregular.plaintext.count
        for range in [nil, "bytes=\(2 * Self.chunk + 10)-\(6 * Self.chunk)", "bytes=-20", "bytes=100-\(total - 1)"] {
            let (out, s) = try read(irregular, range: range)
            let expected: [UInt8]
            if let range, case .satisfiable(let a, let b) = ByteRange.parse(range)!.resolve(size: total) {
                expected = Array(irregular.plaintext[a...b])
            } else {
                expected = irregular.plaintext
            }
            #expect(out == expected, "\(range ?? "whole")")
            #expect(s.geometry.plaintextLength == total)
        }
    }

    @Test func compensatingSizesAreCaughtByTheHeaderChecks() throws {
        // Stored sizes that add up like uniform parts (aligned sizes 2+2+3+1 = 4·2 chunks): the last header is where a
        // uniform object would have it, yet parts 3 and 4 differ. Ranges into them must still be exact.
        let c = Self.chunk
        let stored = try store(sizes: [2 * c, 2 * c, 3 * c, c, 2 * c, 2 * c])
        #expect(PartListCheck.check(stored.partList(), layout: try ChunkLayout(chunkSize: c)) == .success([2 * c, 2 * c, 3 * c, c, 2 * c, 2 * c]))
        let total = stored.plaintext.count
        var rng = SplitMix64(seed: 5)
        for _ in 0..<80 {
            let a = Int.random(in: 0..<total, using: &rng)
            let b = Int.random(in: a..<total, using: &rng)
            let (out, _) = try read(stored, range: "bytes=\(a)-\(b)")
            #expect(out == Array(stored.plaintext[a...b]), "bytes=\(a)-\(b)")
        }
    }

    @Test func writersRefuseListsThatReadersCouldMisplace() throws {
        let layout = try ChunkLayout(chunkSize: 4096)
        func part(_ n: Int, _ p: Int) -> (partNumber: Int, storedSize: Int) { (n, 36 + layout.ciphertextLength(plaintextLength: p)) }
        // 2C + x and 2C − x − 16 take as many stored bytes as two parts of 2C, with 16 plaintext bytes fewer.
        let c = 4096, x = 100
        let ambiguous = [part(1, 2 * c), part(2, 2 * c + x), part(3, 2 * c - x - 16), part(4, 2 * c), part(5, 7)]
        #expect(PartListCheck.check(ambiguous, layout: layout) == .failure(.ambiguousSizes(partNumber: 4)))
        #expect(PartListCheck.check([part(1, 2 * c), part(2, 2 * c), part(3, 2 * c), part(4, 5)], layout: layout) == .success([2 * c, 2 * c, 2 * c, 5]))
        #expect(PartListCheck.check([part(1, 5 * c + 1), part(2, 5 * c + 1), part(3, 1)], layout: layout) == .success([5 * c + 1, 5 * c + 1, 1]))
        #expect(PartListCheck.check([part(1, 100), (2, 17)], layout: layout) == .failure(.notGatewayPart(partNumber: 2, storedSize: 17)))
        #expect(PartListCheck.check([(7, 36 + 4096 + 16 + 3)], layout: layout) == .failure(.notGatewayPart(partNumber: 7, storedSize: 4151)))
        #expect(PartListCheck.check([part(1, 0)], layout: layout) == .success([0]))
    }

    @Test func tamperedAndTruncatedObjectsFailBeforeOrWhileReading() throws {
        let c = Self.chunk
        let stored = try store(sizes: [2 * c, 2 * c, 2 * c, 50])
        // Truncated: the stored size no longer fits the parts.
        var cut = stored
        cut.body.removeLast(10)
        #expect(throws: EncryptionError.self) { _ = try read(cut, range: nil) }
        // Two parts swapped: the walk refuses decreasing part numbers, or the chunks fail.
        let partSize = 36 + 2 * (c + 16)
        var swapped = stored
        swapped.body = Array(stored.body[partSize..<(2 * partSize)]) + Array(stored.body[0..<partSize]) + Array(stored.body[(2 * partSize)...])
        #expect(throws: EncryptionError.self) { _ = try read(swapped, range: nil) }
        #expect(throws: EncryptionError.self) { _ = try read(swapped, range: "bytes=\(c)-\(3 * c)") }
        // A flipped byte in the middle part fails its chunk.
        var flipped = stored
        flipped.body[partSize + 36 + 100] ^= 1
        #expect(throws: EncryptionError.self) { _ = try read(flipped, range: nil) }
        #expect(throws: EncryptionError.self) { _ = try read(flipped, range: "bytes=\(2 * c + 10)-\(2 * c + 20)") }
        #expect(try read(flipped, range: "bytes=0-\(2 * c - 1)").bytes == Array(stored.plaintext[0..<(2 * c)]), "other parts still read")
        // Another object's part in the middle (another DEK).
        let other = try store(sizes: [2 * c, 2 * c, 2 * c, 50], seed: 2)
        var foreign = stored
        foreign.body.replaceSubrange(partSize..<(2 * partSize), with: other.body[partSize..<(2 * partSize)])
        #expect(throws: EncryptionError.self) { _ = try read(foreign, range: nil) }
    }
}

extension MultipartReadTests.Stored {
    /// The (part number, stored size) list a ListParts would give for this object.
    func partList() -> [(partNumber: Int, storedSize: Int)] {
        var out: [(partNumber: Int, storedSize: Int)] = []
        var offset = 0
        let layout = try! metadata.chunkLayout
        while offset < body.count {
            let header = try! PartHeader.parse(body[offset..<(offset + 36)])
            out.append((header.partNumber, header.storedLength(layout)))
            offset += header.storedLength(layout)
        }
        return out
    }
}
