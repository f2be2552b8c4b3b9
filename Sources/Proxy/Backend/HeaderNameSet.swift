import Shared

/// A fixed set of header names matched ASCII-case-insensitively, for the forwarding rules every request and
/// every answer go through (issue 12: comparing each header with all 15 dropped names cost ≈ 29k instructions
/// per pass-through GET). Names are kept lower-cased and grouped by byte length, so a header is compared only
/// with the few dropped names of its own length, in place and eight bytes at a time (no lower-cased copy, no hashing).
struct HeaderNameSet: Sendable {
    /// The lower-cased names back to back, grouped by length (one allocation; no array per name).
    private let table: [UInt8]
    /// Index `n`: where the names of `n` bytes start in `table`, and how many there are. Names longer than the last
    /// index are never members.
    private let byLength: [(start: Int, count: Int)]

    /// `names` in any case; they must be ASCII (header names are tokens, RFC 9110 §5.1).
    init(_ names: some Sequence<String>) {
        var buckets: [[[UInt8]]] = []
        for name in names {
            let lower = name.utf8.map { ASCIICase.lowered($0) }
            precondition(name.utf8.allSatisfy { $0 < 0x80 }, "header names are ASCII")
            if buckets.count <= lower.count { buckets += Array(repeating: [], count: lower.count + 1 - buckets.count) }
            if !buckets[lower.count].contains(lower) { buckets[lower.count].append(lower) }
        }
        var table: [UInt8] = []
        var byLength: [(start: Int, count: Int)] = []
        for bucket in buckets {
            byLength.append((start: table.count, count: bucket.count))
            for name in bucket { table += name }
        }
        self.table = table
        self.byLength = byLength
    }

    /// Whether `name` is one of the set's names, ignoring ASCII case. Any other byte (non-ASCII included)
    /// must match exactly, so no name outside the set is ever taken for one in it.
    func contains(_ name: String) -> Bool {
        let count = name.utf8.count
        guard count < byLength.count, byLength[count].count > 0 else { return false }
        if let found = name.utf8.withContiguousStorageIfAvailable({ contains(bytes: $0) }) { return found }
        return Array(name.utf8).withUnsafeBufferPointer { contains(bytes: $0) }
    }

    /// `bytes` as a name of the set (same rules as `contains(_:)`).
    func contains(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = bytes.count
        guard n < byLength.count else { return false }
        let (start, count) = byLength[n]
        guard count > 0 else { return false }
        guard n > 0 else { return true }
        return table.withUnsafeBufferPointer { table in
            var candidate = table.baseAddress! + start
            for _ in 0..<count {
                // The set's names are lower-case already: folding them too changes nothing.
                if ASCIICase.equalFolded(bytes.baseAddress!, candidate, count: n) { return true }
                candidate += n
            }
            return false
        }
    }
}
