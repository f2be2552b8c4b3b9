import Shared

/// A SigV4 canonical request, built part by part into one byte buffer:
///
///     <method> \n <canonical URI> \n <canonical query> \n <canonical headers> \n <signed headers> \n <payload hash>
///
/// The verifier and the signer both build it this way, so a request costs one buffer instead of a string per
/// part, per header and per query parameter. Building stays strict: a bad escape in the path or a signed header
/// the request does not carry fails the request.
struct SigV4CanonicalRequest {
    private(set) var bytes: [UInt8] = []

    init(method: String) {
        bytes.reserveCapacity(512)
        bytes.appendUTF8(method)
        bytes.append(Self.newline)
    }

    /// The canonical request as text (error log details and tests).
    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The SHA-256 of the canonical request, which the string to sign carries (inline: no allocation).
    var hash: Bytes32 { bytes.withUnsafeBytes { Bytes32.sha256($0) } }

    /// Appends the canonical URI of a raw request path and a newline; false on a bad `%` escape.
    mutating func appendURI(rawPath: String) -> Bool {
        guard Self.appendURI(rawPath: rawPath, to: &bytes) else { return false }
        bytes.append(Self.newline)
        return true
    }

    /// Appends a part that is already canonical (the signer's URI and query, which it encoded itself) and a newline.
    mutating func appendCanonical(_ text: String) {
        bytes.appendUTF8(text)
        bytes.append(Self.newline)
    }

    /// Appends the canonical query string of `parameters` (names and values encoded, sorted by name then
    /// value, `name=` for empty values), leaving out parameters named `omitting`, and a newline.
    mutating func appendQuery(_ parameters: [QueryParameter], omitting: String? = nil) {
        var encoded: [(name: [UInt8], value: [UInt8])] = []
        encoded.reserveCapacity(parameters.count)
        for parameter in parameters where parameter.name != omitting {
            var name = [UInt8](), value = [UInt8]()
            for b in parameter.name.utf8 { Self.appendEncoded(b, keepSlash: false, to: &name) }
            for b in parameter.value.utf8 { Self.appendEncoded(b, keepSlash: false, to: &value) }
            encoded.append((name, value))
        }
        encoded.sort { $0.name == $1.name ? $0.value.lexicographicallyPrecedes($1.value) : $0.name.lexicographicallyPrecedes($1.name) }
        for (i, parameter) in encoded.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: "&")) }
            bytes.append(contentsOf: parameter.name)
            bytes.append(UInt8(ascii: "="))
            bytes.append(contentsOf: parameter.value)
        }
        bytes.append(Self.newline)
    }

    /// Appends the canonical headers block (`name:value\n` per signed header, values from `headers`) and the
    /// signed-headers line (`a;b;c\n`). Several values of one header are joined with `,` in arrival order; each
    /// value is trimmed and its inner runs of spaces and tabs collapse to one space. `signed` holds lower-case
    /// names. Returns the first signed header the request does not carry, nil when all are there.
    mutating func appendHeaders(signed: [String], from headers: HTTPFields) -> String? {
        for name in signed {
            bytes.appendUTF8(name)
            bytes.append(UInt8(ascii: ":"))
            var found = false
            let length = name.utf8.count
            // By index: `for field in` copied (retained) both strings of every field for every signed name.
            let entries = headers.entries
            for j in entries.indices where entries[j].name.utf8.count == length && entries[j].name.caseInsensitiveEquals(name) {
                if found { bytes.append(UInt8(ascii: ",")) }
                found = true
                appendHeaderValue(entries[j].value)
            }
            guard found else { return name }
            bytes.append(Self.newline)
        }
        bytes.append(Self.newline)
        appendSignedHeadersLine(signed)
        return nil
    }

    /// The signer's `appendHeaders`: `fields` already have lower-case names and are sorted by name, several
    /// values of one name in sending order, so each name's values are adjacent and no lookups are needed.
    /// Same output as `appendHeaders(signed:from:)` for those fields. Returns the signed header names, each once.
    mutating func appendHeaders(sorted fields: [(name: String, value: String, position: Int)]) -> [String] {
        var names: [String] = []
        names.reserveCapacity(fields.count)
        // By index, not `enumerated()` (a copy of every field, retained and released).
        for i in fields.indices {
            if i > 0, fields[i - 1].name == fields[i].name {
                bytes.append(UInt8(ascii: ","))
            } else {
                if i > 0 { bytes.append(Self.newline) }
                bytes.appendUTF8(fields[i].name)
                bytes.append(UInt8(ascii: ":"))
                names.append(fields[i].name)
            }
            appendHeaderValue(fields[i].value)
        }
        if !fields.isEmpty { bytes.append(Self.newline) }
        bytes.append(Self.newline)
        appendSignedHeadersLine(names)
        return names
    }

    /// The signed-headers line, `a;b;c\n`, shared by both `appendHeaders` forms.
    private mutating func appendSignedHeadersLine(_ names: [String]) {
        for i in names.indices {
            if i > 0 { bytes.append(UInt8(ascii: ";")) }
            bytes.appendUTF8(names[i])
        }
        bytes.append(Self.newline)
    }

    /// Appends the payload hash, the last part.
    mutating func appendPayloadHash(_ payloadHash: String) {
        bytes.appendUTF8(payloadHash)
    }

    /// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces/tabs collapsed to one space.
    private mutating func appendHeaderValue(_ value: String) {
        // Most values (dates, hashes, hosts) have no space or tab: copied in one go.
        let copied = value.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            guard !Self.containsSpaceOrTab(utf8) else { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if copied == true { return }
        var wrote = false
        var pendingSpace = false
        for b in value.utf8 {
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") {
                pendingSpace = wrote
                continue
            }
            if pendingSpace {
                bytes.append(UInt8(ascii: " "))
                pendingSpace = false
            }
            bytes.append(b)
            wrote = true
        }
    }

    /// Whether `bytes` hold a space or a tab: eight bytes at a time (the classic "has a zero byte" test on the word
    /// xor each pattern, exact as a yes/no), since the values signed on both sides of every request are mostly
    /// 64-digit hashes and dates.
    static func containsSpaceOrTab(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        while i + 8 <= bytes.count {
            let word = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            let space = word ^ (ones &* 0x20), tab = word ^ (ones &* 0x09)
            if ((space &- ones) & ~space | (tab &- ones) & ~tab) & highs != 0 { return true }
            i += 8
            // The rest as the last eight bytes (some already checked, which changes nothing).
            if i < bytes.count, i + 8 > bytes.count { i = bytes.count - 8 }
        }
        while i < bytes.count {
            if base[i] == UInt8(ascii: " ") || base[i] == UInt8(ascii: "\t") { return true }
            i += 1
        }
        return false
    }

    private static let newline = UInt8(ascii: "\n")

    /// Appends the S3 canonical URI of a raw path: each `%XX` decoded once, every byte then encoded once
    /// (`/` kept), no normalisation of `.`, `..` or repeated slashes (S3 keys may contain them); `/` for an
    /// empty path. False on a bad escape.
    static func appendURI(rawPath: String, to out: inout [UInt8]) -> Bool {
        if rawPath.isEmpty {
            out.append(UInt8(ascii: "/"))
            return true
        }
        var utf8 = rawPath.utf8.makeIterator()
        while let b = utf8.next() {
            guard b == UInt8(ascii: "%") else {
                appendEncoded(b, keepSlash: true, to: &out)
                continue
            }
            guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else { return false }
            appendEncoded(high << 4 | low, keepSlash: true, to: &out)
        }
        return true
    }

    /// RFC 3986 unreserved bytes stay, every other byte becomes `%XX` (upper-case hex); `/` stays when `keepSlash`.
    private static func appendEncoded(_ b: UInt8, keepSlash: Bool, to out: inout [UInt8]) {
        if URIEncoding.isUnreserved(b) || (keepSlash && b == UInt8(ascii: "/")) {
            out.append(b)
        } else {
            out.append(UInt8(ascii: "%"))
            out.append(upperHexDigit(b >> 4))
            out.append(upperHexDigit(b & 0x0f))
        }
    }

    private static func upperHexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v &+ UInt8(ascii: "0") : v &+ (UInt8(ascii: "A") &- 10) }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }
}
