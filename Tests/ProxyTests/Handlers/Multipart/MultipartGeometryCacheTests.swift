import Testing
@testable import Proxy

@Suite struct MultipartGeometryCacheTests {
    static func uniform(_ count: Int, layout: ChunkLayout = .default) -> MultipartGeometry {
        let size = 5 << 20
        let stored = (PartHeader.size + layout.ciphertextLength(plaintextLength: size)) * count
        return MultipartGeometry(chunkLayout: layout, storedLength: stored, parts: .uniform(partSize: size, count: count, lastSize: size),
                                 knownHeaders: [:])
    }

    static func listed(_ count: Int) -> MultipartGeometry {
        let layout = ChunkLayout.default
        var extents: [PartExtent] = []
        var stored = 0
        for i in 1...count {
            let extent = PartExtent(index: i, partNumber: i, plaintextOffset: (i - 1) * 1000, plaintextLength: 1000, storedOffset: stored)
            stored += extent.storedLength(layout)
            extents.append(extent)
        }
        return MultipartGeometry(chunkLayout: layout, storedLength: stored, parts: .listed(extents), knownHeaders: [:])
    }

    static func key(_ name: String, _ geometry: MultipartGeometry, etag: String = "\"abc-3\"") -> MultipartGeometryCache.Key {
        MultipartGeometryCache.Key(bucket: "b", key: name, backendETag: etag, storedLength: geometry.storedLength)
    }

    @Test func keysIgnoreQuotingAndMissesOnAnotherObjectOrChunkSize() throws {
        let cache = MultipartGeometryCache()
        let geometry = Self.uniform(3)
        cache.store(Self.key("k", geometry, etag: "\"abc-3\""), .geometry(geometry))
        // Listings and HEAD quote ETags differently on some backends: the same object.
        #expect(cache.geometry(Self.key("k", geometry, etag: "abc-3"), layout: .default) == geometry)
        #expect(cache.geometry(Self.key("k", geometry, etag: "W/\"abc-3\""), layout: .default) == geometry)
        // Another ETag, size or key is another object; another chunk size another reading of it.
        #expect(cache.lookup(Self.key("k", geometry, etag: "\"abd-3\"")) == nil)
        #expect(cache.lookup(MultipartGeometryCache.Key(bucket: "b", key: "k", backendETag: "abc-3", storedLength: geometry.storedLength + 1)) == nil)
        #expect(cache.lookup(Self.key("other", geometry)) == nil)
        #expect(cache.geometry(Self.key("k", geometry), layout: try ChunkLayout(chunkSize: 1 << 20)) == nil)
        // A plain entry is not a geometry.
        cache.store(Self.key("plain", geometry), .plain)
        #expect(cache.lookup(Self.key("plain", geometry)) == .plain)
        #expect(cache.geometry(Self.key("plain", geometry), layout: .default) == nil)
        // Nor is an object the listings could not read (SSE-C); a read with its key replaces the entry.
        cache.store(Self.key("sse-c", geometry), .unreadable)
        #expect(cache.lookup(Self.key("sse-c", geometry)) == .unreadable)
        #expect(cache.geometry(Self.key("sse-c", geometry), layout: .default) == nil)
        cache.store(Self.key("sse-c", geometry), .geometry(geometry))
        #expect(cache.geometry(Self.key("sse-c", geometry), layout: .default) == geometry)
    }

    @Test func boundedByEntriesLeastRecentlyUsedFirst() {
        let cache = MultipartGeometryCache(maxEntries: 10, maxParts: 1000)
        let geometry = Self.uniform(2)
        for i in 0..<10 { cache.store(Self.key("k\(i)", geometry), .geometry(geometry)) }
        #expect(cache.count == 10)
        // k0 is used again, so k1 is now the least recently used.
        #expect(cache.lookup(Self.key("k0", geometry)) != nil)
        cache.store(Self.key("k10", geometry), .geometry(geometry))
        #expect(cache.count <= 10)
        #expect(cache.lookup(Self.key("k0", geometry)) != nil)
        #expect(cache.lookup(Self.key("k1", geometry)) == nil)
        #expect(cache.lookup(Self.key("k10", geometry)) != nil)
    }

    @Test func boundedByThePartsEntriesDescribe() {
        let cache = MultipartGeometryCache(maxEntries: 1000, maxParts: 250)
        let big = Self.listed(100)
        for i in 0..<5 { cache.store(Self.key("big\(i)", big, etag: "e-100"), .geometry(big)) }
        #expect(cache.weight <= 250)
        #expect(cache.lookup(Self.key("big4", big, etag: "e-100")) != nil, "the newest entry stays")
        // A geometry larger than the whole budget is not kept (and evicts nothing).
        let before = cache.count
        let huge = Self.listed(300)
        cache.store(Self.key("huge", huge, etag: "e-300"), .geometry(huge))
        #expect(cache.lookup(Self.key("huge", huge, etag: "e-300")) == nil)
        #expect(cache.count == before)
        // Replacing an entry does not count it twice.
        let small = Self.uniform(2)
        cache.store(Self.key("big4", big, etag: "e-100"), .geometry(small))
        cache.store(Self.key("big4", big, etag: "e-100"), .geometry(small))
        #expect(cache.weight <= 250)
    }

    @Test func readsAddTheHeadersTheyCheckedAndPayForThem() throws {
        let geometry = Self.uniform(3)
        let h2 = try PartHeader(partNumber: 2, plaintextLength: 5 << 20, salt: Array(repeating: 2, count: 16))
        let other = try PartHeader(partNumber: 2, plaintextLength: 5 << 20, salt: Array(repeating: 9, count: 16))
        let learned = geometry.knowing([2: h2, 7: h2])
        #expect(learned.knownHeaders == [2: h2], "indices outside the object are dropped")
        #expect(learned.knowing([2: other]).knownHeaders[2] == h2, "what is known stays")
        #expect(MultipartGeometryCache.Value.geometry(learned).weight == 2)
        let plan = MultipartReadPlan(geometry: learned, rangeHeader: "bytes=\((5 << 20) + 1)-\((5 << 20) + 100)")
        #expect(plan.headersToFetch.isEmpty, "a range inside part 2 needs no header read once part 2's header is known")
    }
}
