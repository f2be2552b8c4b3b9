import Testing
@testable import Proxy

@Suite struct ByteRangeTests {
    @Test func parsesTheThreeForms() {
        #expect(ByteRange.parse("bytes=0-499") == .closed(first: 0, last: 499))
        #expect(ByteRange.parse("bytes=500-") == .from(first: 500))
        #expect(ByteRange.parse("bytes=-500") == .suffix(length: 500))
        #expect(ByteRange.parse("Bytes=7-7") == .closed(first: 7, last: 7))
        #expect(ByteRange.parse(" bytes= 1-2 ") == .closed(first: 1, last: 2))
        #expect(ByteRange.parse("bytes=0-99999999999999999999999") == .closed(first: 0, last: Int.max))
        #expect(ByteRange.parse("bytes=-0") == .suffix(length: 0))
    }

    @Test func ignoresWhatItCannotServe() {
        for header in ["", "bytes", "bytes=", "bytes=-", "bytes=5-4", "bytes=a-b", "bytes=1-2,4-5", "items=0-1",
                       "bytes=1 -2", "bytes=--1", "bytes=+1-2", "bytes=0x10-", "bytes=1-2-3", "bytes:1-2",
                       "bytes=" + String(repeating: "1", count: 300) + "-"] {
            #expect(ByteRange.parse(header) == nil, "\(header)")
        }
    }

    @Test func resolvesPerRFC9110() {
        #expect(ByteRange.closed(first: 0, last: 499).resolve(size: 10_000) == .satisfiable(first: 0, last: 499))
        #expect(ByteRange.closed(first: 9_000, last: 20_000).resolve(size: 10_000) == .satisfiable(first: 9_000, last: 9_999))
        #expect(ByteRange.closed(first: 10_000, last: 20_000).resolve(size: 10_000) == .unsatisfiable)
        #expect(ByteRange.from(first: 9_999).resolve(size: 10_000) == .satisfiable(first: 9_999, last: 9_999))
        #expect(ByteRange.from(first: 10_000).resolve(size: 10_000) == .unsatisfiable)
        #expect(ByteRange.suffix(length: 500).resolve(size: 10_000) == .satisfiable(first: 9_500, last: 9_999))
        #expect(ByteRange.suffix(length: 50_000).resolve(size: 10_000) == .satisfiable(first: 0, last: 9_999))
        #expect(ByteRange.suffix(length: 0).resolve(size: 10_000) == .unsatisfiable)
        #expect(ByteRange.suffix(length: 1).resolve(size: 0) == .unsatisfiable)
        #expect(ByteRange.from(first: 0).resolve(size: 0) == .unsatisfiable)
        #expect(ByteRange.contentRange(first: 0, last: 9, size: 10) == "bytes 0-9/10")
        #expect(ByteRange.unsatisfiableContentRange(size: 10) == "bytes */10")
    }

    /// Seeded mutation fuzzing of the parser: no crash, and every accepted header round-trips
    /// through a canonical rendering.
    @Test func fuzzedHeadersNeverCrash() {
        var rng = SplitMix64(seed: 77)
        let seeds = ["bytes=0-499", "bytes=500-", "bytes=-500", "bytes=1-1"]
        let alphabet = Array("0123456789-=, \tbytesBYTES;x".utf8)
        for _ in 0..<20_000 {
            var bytes = Array(seeds.randomElement(using: &rng)!.utf8)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0...bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0 where i < bytes.count: bytes.remove(at: i)
                case 1 where i < bytes.count: bytes[i] = alphabet.randomElement(using: &rng)!
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: i)
                }
            }
            let header = String(decoding: bytes, as: UTF8.self)
            guard let range = ByteRange.parse(header) else { continue }
            let canonical: String
            switch range {
            case .closed(let a, let b): canonical = "bytes=\(a)-\(b)"; #expect(a <= b)
            case .from(let a): canonical = "bytes=\(a)-"
            case .suffix(let n): canonical = "bytes=-\(n)"
            }
            #expect(ByteRange.parse(canonical) == range, "\(header)")
        }
    }
}

@Suite struct RangeMappingTests {
    /// Reference semantics computed on offsets, independently of `resolve`.
    private func reference(_ range: ByteRange, size: Int) -> ClosedRange<Int>? {
        let selected: Range<Int>
        switch range {
        case .closed(let a, let b): selected = min(a, size)..<min(b == Int.max ? b : b + 1, size)
        case .from(let a): selected = min(a, size)..<size
        case .suffix(let n): selected = max(0, size - n)..<size
        }
        return selected.isEmpty ? nil : selected.lowerBound...(selected.upperBound - 1)
    }

    @Test(arguments: [4096, 65536])
    func decryptedRangesMatchThePlaintext(_ chunkSize: Int) throws {
        let layout = try ChunkLayout(chunkSize: chunkSize)
        var rng = SplitMix64(seed: UInt64(chunkSize) &* 31)
        let key = EncryptionFixtures.segmentKey(3)
        for size in [0, 1, 100, chunkSize - 1, chunkSize, chunkSize + 1, 3 * chunkSize, 3 * chunkSize + 17] {
            let plaintext = rng.bytes(size)
            let sealer = try ChunkSealer(cipher: .aes256GCM, segmentKey: key, layout: layout)
            let ciphertext = try EncryptionFixtures.seal(plaintext, with: sealer, rng: &rng, maxPiece: 3 * chunkSize)
            for _ in 0..<60 {
                let bound = size + chunkSize + 2
                let range: ByteRange
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    let a = Int.random(in: 0...bound, using: &rng)
                    range = .closed(first: a, last: a + Int.random(in: 0...bound, using: &rng))
                case 1: range = .from(first: Int.random(in: 0...bound, using: &rng))
                default: range = .suffix(length: Int.random(in: 0...bound, using: &rng))
                }
                let expected = reference(range, size: size)
                guard case .satisfiable(let first, let last) = range.resolve(size: size) else {
                    #expect(expected == nil, "\(range) of \(size) is satisfiable")
                    continue
                }
                #expect(expected == first...last, "\(range) of \(size)")
                let mapping = try RangeMapping(first: first, last: last, plaintextLength: size, layout: layout)
                // Never more than the covering chunks.
                #expect(mapping.ciphertextLength <= (mapping.lastChunk - mapping.firstChunk + 1) * layout.sealedChunkSize)
                #expect(mapping.ciphertextLast < ciphertext.count)
                let fetched = Array(ciphertext[mapping.ciphertextFirst...mapping.ciphertextLast])
                let opener = try ChunkOpener(cipher: .aes256GCM, segmentKey: key, layout: layout, firstChunkIndex: mapping.firstChunk)
                var window = PlaintextWindow(mapping)
                var out: [UInt8] = []
                var offset = 0
                while offset < fetched.count {
                    let piece = min(fetched.count - offset, Int.random(in: 1...(2 * chunkSize), using: &rng))
                    try opener.update(Array(fetched[offset..<(offset + piece)])) { out += Array(window.slice($0)) }
                    offset += piece
                }
                try opener.finish(lastChunkIsFinal: mapping.lastChunkIsFinal) { out += Array(window.slice($0)) }
                #expect(window.isComplete)
                #expect(out == Array(plaintext[first...last]), "\(range) of \(size)")
                #expect(mapping.backendRange == "bytes=\(mapping.ciphertextFirst)-\(mapping.ciphertextLast)")
            }
        }
    }

    @Test func rejectsRangesOutsideTheObject() throws {
        #expect(throws: EncryptionError.self) { try RangeMapping(first: 0, last: 0, plaintextLength: 0, layout: .default) }
        #expect(throws: EncryptionError.self) { try RangeMapping(first: 5, last: 4, plaintextLength: 10, layout: .default) }
        let last = try RangeMapping(first: 65536, last: 65536, plaintextLength: 65537, layout: .default)
        #expect(last.firstChunk == 1 && last.lastChunkIsFinal && last.ciphertextFirst == 65552 && last.ciphertextLast == 65552 + 16)
    }
}
