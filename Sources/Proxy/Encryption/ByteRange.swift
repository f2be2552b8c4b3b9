/// A single byte range of an HTTP `Range` header (RFC 9110 §14.1.2), before it meets an object size.
public enum ByteRange: Sendable, Equatable {
    /// `bytes=first-last`
    case closed(first: Int, last: Int)
    /// `bytes=first-`
    case from(first: Int)
    /// `bytes=-length`: the last `length` bytes.
    case suffix(length: Int)

    /// The range resolved against a representation of `size` bytes.
    public enum Resolution: Sendable, Equatable {
        /// Serve bytes `first...last` (inclusive) with 206.
        case satisfiable(first: Int, last: Int)
        /// Answer 416 with `Content-Range: bytes */size`.
        case unsatisfiable
    }

    /// Longest header accepted; anything longer is ignored (treated as absent).
    static let maxHeaderLength = 256

    /// Parses a `Range` header value. Returns nil when the header must be ignored and the whole
    /// object served: bad syntax, another unit, `last < first`, or several ranges (S3 serves
    /// only single ranges). Numbers too large for `Int` saturate, which RFC 9110 permits
    /// (a huge `last` is clamped at resolution).
    public static func parse(_ header: String) -> ByteRange? {
        let bytes = Array(header.utf8)
        guard bytes.count <= maxHeaderLength else { return nil }
        var i = 0
        func skipWhitespace() { while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 } }
        func number() -> Int? {
            let start = i
            var value = 0
            var saturated = false
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                let digit = Int(bytes[i] - 0x30)
                if !saturated {
                    let (m, o1) = value.multipliedReportingOverflow(by: 10)
                    let (s, o2) = m.addingReportingOverflow(digit)
                    if o1 || o2 { saturated = true; value = Int.max } else { value = s }
                }
                i += 1
            }
            return i > start ? value : nil
        }
        skipWhitespace()
        let unit = Array("bytes".utf8)
        guard bytes.count >= i + unit.count + 1 else { return nil }
        for (k, c) in unit.enumerated() where bytes[i + k] | 0x20 != c { return nil }   // the unit is case-insensitive
        i += unit.count
        guard bytes[i] == UInt8(ascii: "=") else { return nil }
        i += 1
        skipWhitespace()
        let range: ByteRange
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
            i += 1
            guard let length = number() else { return nil }
            range = .suffix(length: length)
        } else {
            guard let first = number(), i < bytes.count, bytes[i] == UInt8(ascii: "-") else { return nil }
            i += 1
            if let last = number() {
                guard last >= first else { return nil }
                range = .closed(first: first, last: last)
            } else {
                range = .from(first: first)
            }
        }
        skipWhitespace()
        guard i == bytes.count else { return nil }
        return range
    }

    /// Resolves against `size` bytes: clamps a `last` past the end, 416 when no byte is selected.
    public func resolve(size: Int) -> Resolution {
        precondition(size >= 0, "negative size")
        switch self {
        case .closed(let first, let last):
            guard first < size else { return .unsatisfiable }
            return .satisfiable(first: first, last: min(last, size - 1))
        case .from(let first):
            guard first < size else { return .unsatisfiable }
            return .satisfiable(first: first, last: size - 1)
        case .suffix(let length):
            guard length > 0, size > 0 else { return .unsatisfiable }
            return .satisfiable(first: size - min(length, size), last: size - 1)
        }
    }

    /// `Content-Range` value for a 206 answer.
    public static func contentRange(first: Int, last: Int, size: Int) -> String {
        "bytes \(first)-\(last)/\(size)"
    }

    /// `Content-Range` value for a 416 answer.
    public static func unsatisfiableContentRange(size: Int) -> String {
        "bytes */\(size)"
    }
}
