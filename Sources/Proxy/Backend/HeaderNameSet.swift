/// A fixed set of header names matched ASCII-case-insensitively, for the forwarding rules every request and
/// every answer go through (issue 12: comparing each header with all 15 dropped names cost ≈ 29k instructions
/// per pass-through GET). Names are kept lower-cased and grouped by byte length, so a header is compared only
/// with the few dropped names of its own length, byte by byte in place (no lower-cased copy, no hashing).
struct HeaderNameSet: Sendable {
    /// Index `n`: the lower-cased names of `n` bytes. Names longer than the last index are never members.
    private let byLength: [[[UInt8]]]

    /// `names` in any case; they must be ASCII (header names are tokens, RFC 9110 §5.1).
    init(_ names: some Sequence<String>) {
        var buckets: [[[UInt8]]] = []
        for name in names {
            let lower = name.utf8.map { Self.lower($0) }
            precondition(name.utf8.allSatisfy { $0 < 0x80 }, "header names are ASCII")
            if buckets.count <= lower.count { buckets += Array(repeating: [], count: lower.count + 1 - buckets.count) }
            if !buckets[lower.count].contains(lower) { buckets[lower.count].append(lower) }
        }
        byLength = buckets
    }

    /// Whether `name` is one of the set's names, ignoring ASCII case. Any other byte (non-ASCII included)
    /// must match exactly, so no name outside the set is ever taken for one in it.
    func contains(_ name: String) -> Bool {
        let count = name.utf8.count
        guard count < byLength.count, !byLength[count].isEmpty else { return false }
        if let found = name.utf8.withContiguousStorageIfAvailable({ contains(bytes: $0) }) { return found }
        return Array(name.utf8).withUnsafeBufferPointer { contains(bytes: $0) }
    }

    /// `bytes` as a name of the set (same rules as `contains(_:)`).
    func contains(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count < byLength.count else { return false }
        candidates: for candidate in byLength[bytes.count] {
            for i in 0..<bytes.count where Self.lower(bytes[i]) != candidate[i] { continue candidates }
            return true
        }
        return false
    }

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b | 0x20 : b }
}
