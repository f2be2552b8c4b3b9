/// Percent-encoding as SigV4 and S3 define it: RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) stay, every other byte becomes `%XX` with upper-case hex.
enum URIEncoding {
    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    static func isUnreserved(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Encodes `bytes`; `/` is kept when `keepSlash` (object keys in paths).
    static func encode<Bytes: Sequence>(bytes: Bytes, keepSlash: Bool) -> String where Bytes.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount)
        append(bytes: bytes, keepSlash: keepSlash, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `encode`, appended to a byte buffer (a path built in one buffer, not from a String per part).
    static func append<Bytes: Sequence>(bytes: Bytes, keepSlash: Bool, to out: inout [UInt8]) where Bytes.Element == UInt8 {
        for b in bytes {
            if isUnreserved(b) || (keepSlash && b == UInt8(ascii: "/")) {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0x0f)])
            }
        }
    }

    static func encode(_ string: String, keepSlash: Bool = false) -> String {
        encode(bytes: string.utf8, keepSlash: keepSlash)
    }

    /// Decodes `%XX` sequences once. `+` stays a literal plus (S3 paths and SigV4 queries
    /// never use form encoding). Nil on a malformed escape.
    static func decodeBytes(_ string: Substring) -> [UInt8]? {
        let bytes = Array(string.utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else {
                    return nil
                }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(b)
                i += 1
            }
        }
        return out
    }

    /// Decodes once into a string; nil on a malformed escape or invalid UTF-8.
    static func decode(_ string: Substring) -> String? {
        // Most bucket names and keys carry no escape: they decode to themselves (a String is valid UTF-8).
        if !string.utf8.contains(UInt8(ascii: "%")) { return String(string) }
        guard let bytes = decodeBytes(string) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    static func decode(_ string: String) -> String? { decode(string[...]) }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// One query parameter as received: decoded name and value, and whether an `=` was present
/// (`?uploads` vs `?uploads=`), which matters when re-sending the query but not for signing.
struct QueryParameter: Sendable, Equatable {
    var name: String
    var value: String
    var hasValue: Bool
}

enum QueryString {
    /// Splits a raw query into decoded parameters in order. Empty segments (`a=1&&b`) are skipped.
    /// Nil on a malformed escape or invalid UTF-8.
    static func parse(_ raw: String?) -> [QueryParameter]? {
        guard let raw, !raw.isEmpty else { return [] }
        var out = [QueryParameter]()
        for segment in raw.split(separator: "&", omittingEmptySubsequences: true) {
            if let eq = segment.firstIndex(of: "=") {
                guard let name = URIEncoding.decode(segment[..<eq]),
                      let value = URIEncoding.decode(segment[segment.index(after: eq)...]) else { return nil }
                out.append(QueryParameter(name: name, value: value, hasValue: true))
            } else {
                guard let name = URIEncoding.decode(segment) else { return nil }
                out.append(QueryParameter(name: name, value: "", hasValue: false))
            }
        }
        return out
    }

    /// The SigV4 canonical query string: names and values encoded, sorted by name then value,
    /// `name=` for empty values.
    static func canonical(_ parameters: [QueryParameter]) -> String {
        parameters
            .map { (URIEncoding.encode($0.name), URIEncoding.encode($0.value)) }
            .sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// The same order and encoding as `canonical`, but keeping `?uploads` without `=` so the
    /// backend sees the sub-resource exactly as a normal SDK would send it.
    static func forURL(_ parameters: [QueryParameter]) -> String {
        parameters
            .map { (URIEncoding.encode($0.name), URIEncoding.encode($0.value), $0.hasValue || !$0.value.isEmpty) }
            .sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
            .map { $0.2 ? "\($0.0)=\($0.1)" : $0.0 }
            .joined(separator: "&")
    }
}
