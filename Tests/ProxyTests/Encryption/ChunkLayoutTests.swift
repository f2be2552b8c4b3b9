import Testing
@testable import Proxy

@Suite struct ChunkLayoutTests {
    @Test(arguments: [4096, 65536, 1 << 20])
    func sizeFunctionIsInvertibleAndRejectsImpossibleSizes(_ chunkSize: Int) throws {
        let layout = try ChunkLayout(chunkSize: chunkSize)
        // Exhaustively over the first chunks: valid lengths are exactly the image of the forward map.
        // (Debug builds are slow: the exhaustive part covers the first chunks only.)
        let limit = min(3 * chunkSize + 1, 200_000)
        var image: [Int: Int] = [:]
        for p in 0...limit { image[layout.ciphertextLength(plaintextLength: p)] = p }
        #expect(image.count == limit + 1, "the forward map is injective")
        for l in 0...layout.ciphertextLength(plaintextLength: limit) {
            let inverse = try? layout.plaintextLength(ciphertextLength: l)
            #expect(inverse == image[l], "L = \(l)")
        }
        // Randomized large sizes.
        var rng = SplitMix64(seed: UInt64(chunkSize))
        for _ in 0..<1000 {
            let p = Int.random(in: 0...(5 << 40), using: &rng)
            let l = layout.ciphertextLength(plaintextLength: p)
            #expect(l == p + 16 * max(1, (p + chunkSize - 1) / chunkSize))
            #expect(try layout.plaintextLength(ciphertextLength: l) == p)
        }
    }

    @Test func listingConversionWithTheDefaultChunkSize() {
        // The examples of docs/FORMAT.md §6.
        #expect(ChunkLayout.listingPlaintextSize(ciphertextLength: 1_048_832) == 1_048_576)
        #expect(ChunkLayout.listingPlaintextSize(ciphertextLength: 16) == 0)
        #expect(ChunkLayout.listingPlaintextSize(ciphertextLength: 65570) == 65538)
        #expect(ChunkLayout.listingPlaintextSize(ciphertextLength: 15) == nil)
        #expect(ChunkLayout.listingPlaintextSize(ciphertextLength: 65552 + 16) == nil)
        #expect(ChunkLayout.listingPlaintextSize(ciphertextLength: 65552 + 5) == nil)
    }

    @Test func chunkSizeLimits() {
        #expect(throws: EncryptionError.self) { try ChunkLayout(chunkSize: 4095) }
        #expect(throws: EncryptionError.self) { try ChunkLayout(chunkSize: (16 << 20) + 1) }
        #expect(ChunkLayout.default.chunkSize == 65536)
    }
}
