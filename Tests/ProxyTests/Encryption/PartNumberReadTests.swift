import Testing
@testable import Proxy

@Suite struct PartNumberReadTests {
    static let layout = ChunkLayout.default

    /// Parts of the given plaintext sizes, walked (`.listed`), as a non-uniform object's geometry is.
    static func listed(_ sizes: [Int]) -> MultipartGeometry {
        var extents: [PartExtent] = []
        var plain = 0, stored = 0
        for (i, size) in sizes.enumerated() {
            let extent = PartExtent(index: i + 1, partNumber: i + 1, plaintextOffset: plain, plaintextLength: size, storedOffset: stored)
            plain += size
            stored += extent.storedLength(layout)
            extents.append(extent)
        }
        return MultipartGeometry(chunkLayout: layout, storedLength: stored, parts: .listed(extents), knownHeaders: [:])
    }

    static func uniform(partSize: Int, count: Int, lastSize: Int) -> MultipartGeometry {
        let stored = (PartHeader.size + layout.ciphertextLength(plaintextLength: partSize)) * (count - 1)
            + PartHeader.size + layout.ciphertextLength(plaintextLength: lastSize)
        return MultipartGeometry(chunkLayout: layout, storedLength: stored,
                                 parts: .uniform(partSize: partSize, count: count, lastSize: lastSize), knownHeaders: [:])
    }

    @Test(arguments: [
        (1, 10, PartNumberRead.range(first: 0, last: 9, partsCount: nil)),
        (1, 1, .range(first: 0, last: 0, partsCount: nil)),
        (1, 0, .empty(partsCount: nil)),
        (2, 10, .notSatisfiable),
        (10_000, 10, .notSatisfiable),
    ])
    func singlePartObjectsHaveOnePartTheWholeObject(partNumber: Int, length: Int, expected: PartNumberRead) {
        #expect(PartNumberRead.single(partNumber: partNumber, plaintextLength: length) == expected)
    }

    @Test func uniformPartsMapOntoTheirGridAndTheLastPartEndsTheObject() {
        let mib = 1 << 20
        let geometry = Self.uniform(partSize: 5 * mib + 1, count: 3, lastSize: 300_001)
        #expect(PartNumberRead.multipart(partNumber: 1, geometry: geometry) == .range(first: 0, last: 5 * mib, partsCount: 3))
        #expect(PartNumberRead.multipart(partNumber: 2, geometry: geometry)
            == .range(first: 5 * mib + 1, last: 10 * mib + 1, partsCount: 3))
        #expect(PartNumberRead.multipart(partNumber: 3, geometry: geometry)
            == .range(first: 10 * mib + 2, last: 10 * mib + 2 + 300_000, partsCount: 3))
        #expect(PartNumberRead.multipart(partNumber: 3, geometry: geometry).rangeHeader == "bytes=\(10 * mib + 2)-\(10 * mib + 300_002)")
        #expect(PartNumberRead.multipart(partNumber: 4, geometry: geometry) == .notSatisfiable)
        #expect(PartNumberRead.multipart(partNumber: 0, geometry: geometry) == .notSatisfiable)
    }

    @Test func listedPartsCountByPositionAndAnEmptyPartHasNoRange() {
        let geometry = Self.listed([700, 1_000_000, 0])
        #expect(PartNumberRead.multipart(partNumber: 1, geometry: geometry) == .range(first: 0, last: 699, partsCount: 3))
        #expect(PartNumberRead.multipart(partNumber: 2, geometry: geometry) == .range(first: 700, last: 1_000_699, partsCount: 3))
        let empty = PartNumberRead.multipart(partNumber: 3, geometry: geometry)
        #expect(empty == .empty(partsCount: 3))
        #expect(empty.rangeHeader == nil && empty.partsCount == 3)
        #expect(PartNumberRead.multipart(partNumber: 4, geometry: geometry).partsCount == nil)
    }
}
