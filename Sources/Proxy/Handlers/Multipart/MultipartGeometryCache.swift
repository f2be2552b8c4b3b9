import Synchronization

/// Part geometries of stored multipart objects (docs/FORMAT.md §9.2), learned from their part headers by
/// GET, HEAD, UploadPartCopy or a listing, and shared by all of them per process: a listing that sized an
/// object saves the next GET its header reads, and a GET the next listing's.
///
/// Only a saving, never a source of truth: any replica can recompute a geometry, and a read that uses one
/// still checks every part header it relies on against the stream (a wrong geometry fails the read, it
/// never yields other bytes). Keyed by bucket, key, the backend's ETag and stored size, so a replaced
/// object is a miss (the version id is not part of the key: the same multipart ETag and size mean the
/// same stored parts). Bounded twice: by entries, and by the parts and part headers the entries describe
/// (a geometry of irregular parts lists every part, up to 10 000, and reads add the headers they checked);
/// least recently used entries go first.
final class MultipartGeometryCache: Sendable {
    struct Key: Hashable, Sendable {
        var bucket: String
        var key: String
        /// The backend's ETag without quotes (listings and HEAD quote differently on some backends).
        var backendETag: String
        var storedLength: Int

        init(bucket: String, key: String, backendETag: String, storedLength: Int) {
            self.bucket = bucket
            self.key = key
            self.backendETag = Self.bare(backendETag)
            self.storedLength = storedLength
        }

        static func bare(_ etag: String) -> String {
            var tag = Substring(etag.trimmingCharacters(in: .whitespaces))
            if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
            if tag.count >= 2, tag.hasPrefix("\""), tag.hasSuffix("\"") { tag = tag.dropFirst().dropLast() }
            return String(tag)
        }
    }

    enum Value: Sendable, Equatable {
        case geometry(MultipartGeometry)
        /// A multipart object without a part header at offset 0: not the gateway's, its stored size is its size.
        case plain
        /// A multipart object whose part headers the backend refused to a listing's read (`400`: an object stored
        /// under SSE-C, which only a request carrying its key reads). Listings give it the aligned-parts size
        /// without asking again; a GET or HEAD with the key learns its geometry, which replaces this entry.
        case unreadable

        /// What the entry costs against `maxParts`: the extents it lists and the headers it knows.
        var weight: Int {
            switch self {
            case .plain, .unreadable: return 1
            case .geometry(let geometry): return (geometry.isUniform ? 1 : geometry.count) + geometry.knownHeaders.count
            }
        }
    }

    private struct Entry {
        var value: Value
        var lastUsed: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var weight = 0
        var clock: UInt64 = 0
    }

    let maxEntries: Int
    let maxParts: Int
    private let state = Mutex(State())

    /// - Parameters:
    ///   - maxEntries: objects remembered at most.
    ///   - maxParts: parts described at most, summed over entries (a uniform geometry counts 1).
    init(maxEntries: Int = 10_000, maxParts: Int = 200_000) {
        self.maxEntries = max(1, maxEntries)
        self.maxParts = max(1, maxParts)
    }

    func lookup(_ key: Key) -> Value? {
        state.withLock { state in
            guard var entry = state.entries[key] else { return nil }
            state.clock += 1
            entry.lastUsed = state.clock
            state.entries[key] = entry
            return entry.value
        }
    }

    /// The geometry for `key` when one is known and fits `layout` (a plain entry or another chunk size is a miss).
    func geometry(_ key: Key, layout: ChunkLayout) -> MultipartGeometry? {
        guard case .geometry(let geometry)? = lookup(key), geometry.chunkLayout == layout,
              geometry.storedLength == key.storedLength else { return nil }
        return geometry
    }

    func store(_ key: Key, _ value: Value) {
        guard value.weight <= maxParts else { return }
        state.withLock { state in
            state.clock += 1
            if let old = state.entries.updateValue(Entry(value: value, lastUsed: state.clock), forKey: key) {
                state.weight -= old.value.weight
            }
            state.weight += value.weight
            guard state.entries.count > maxEntries || state.weight > maxParts else { return }
            // Evict the least recently used tenth at once (and more while still over), so the sort is amortised.
            let byAge = state.entries.sorted { $0.value.lastUsed < $1.value.lastUsed }
            var evict = max(1, state.entries.count / 10)
            for (old, entry) in byAge where old != key {
                if evict <= 0 && state.entries.count <= maxEntries && state.weight <= maxParts { break }
                state.entries.removeValue(forKey: old)
                state.weight -= entry.value.weight
                evict -= 1
            }
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
    var weight: Int { state.withLock { $0.weight } }
}
