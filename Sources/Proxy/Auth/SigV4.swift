import Shared

/// The credential scope `yyyymmdd/region/service/aws4_request`.
struct SigV4Scope: Sendable, Hashable {
    var date: String
    var region: String
    var service: String

    var string: String { "\(date)/\(region)/\(service)/aws4_request" }

    /// The byte count of `string`.
    var byteCount: Int { date.utf8.count + region.utf8.count + service.utf8.count + 15 }

    /// Writes `string`'s bytes (`byteCount` of them).
    func write(to out: inout SigV4ByteWriter) {
        out.write(date)
        out.write(UInt8(ascii: "/"))
        out.write(region)
        out.write(UInt8(ascii: "/"))
        out.write(service)
        out.write("/aws4_request" as StaticString)
    }
}

/// Writes bytes into a buffer sized beforehand (SigV4's string to sign and Authorization value, whose lengths are
/// known from their parts). One copy per part and no capacity or uniqueness checks: appending the ~15 parts to a
/// `[UInt8]` cost ≈ 75 instructions each plus the array's malloc (issue 12). Writing past `capacity` traps.
struct SigV4ByteWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private(set) var count = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    private mutating func reserve(_ n: Int) -> UnsafeMutableRawPointer {
        precondition(n <= capacity - count, "SigV4ByteWriter: buffer too small")
        defer { count += n }
        return base + count
    }

    mutating func write(_ byte: UInt8) {
        reserve(1).storeBytes(of: byte, as: UInt8.self)
    }

    mutating func write(_ literal: StaticString) {
        let n = literal.utf8CodeUnitCount
        reserve(n).copyMemory(from: literal.utf8Start, byteCount: n)
    }

    mutating func write(_ string: String) {
        var string = string  // withUTF8 needs a var; a native string is not copied
        string.withUTF8 { bytes in
            guard let source = bytes.baseAddress else { return }
            reserve(bytes.count).copyMemory(from: source, byteCount: bytes.count)
        }
    }

    /// The 64 lower-case hex digits of `bytes`.
    mutating func writeHex(_ bytes: Bytes32) {
        let out = reserve(64)
        bytes.withUnsafeBytes { Encoding.writeHex($0, to: out) }
    }
}

/// Pure SigV4 building blocks shared by the verifier (client requests) and the signer (backend requests).
enum SigV4 {
    static let algorithm = "AWS4-HMAC-SHA256"
    static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of the empty string, the payload hash of body-less requests.
    static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The S3 canonical URI of a raw request path: decoded once and re-encoded once, `/` kept,
    /// no normalisation of `.`/`..` or repeated slashes (S3 keys may contain them). Nil on a bad escape.
    static func canonicalURI(rawPath: String) -> String? {
        var bytes = [UInt8]()
        guard SigV4CanonicalRequest.appendURI(rawPath: rawPath, to: &bytes) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The string to sign of a canonical request whose SHA-256 is `canonicalRequestHash`, as an array (query
    /// authentication, error details, tests): the same bytes `withStringToSign` writes.
    static func stringToSign(amzDate: String, scope: SigV4Scope, canonicalRequestHash: Bytes32) -> [UInt8] {
        withStringToSign(amzDate: amzDate, scope: scope, canonicalRequestHash: canonicalRequestHash) { Array($0) }
    }

    /// Calls `body` with the string to sign of a canonical request whose SHA-256 is `canonicalRequestHash`,
    /// `AWS4-HMAC-SHA256 \n <amz-date> \n <scope> \n <hex hash>`, written into one temporary buffer (on the stack:
    /// with the parser's bounds it is under 250 bytes). Verifying and re-signing each build one per request; as a
    /// `[UInt8]` of appended parts it was a malloc and ≈ 1.5 k instructions (issue 12).
    @inline(__always)  // the caller's closure inlined too: no copies of the values it captures
    static func withStringToSign<R>(amzDate: String, scope: SigV4Scope, canonicalRequestHash: Bytes32,
                                    _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let count = algorithm.utf8.count + amzDate.utf8.count + scope.byteCount + 64 + 3
        return withUnsafeTemporaryAllocation(byteCount: count, alignment: 1) { buffer in
            var out = SigV4ByteWriter(buffer)
            out.write("AWS4-HMAC-SHA256\n" as StaticString)
            out.write(amzDate)
            out.write(UInt8(ascii: "\n"))
            scope.write(to: &out)
            out.write(UInt8(ascii: "\n"))
            out.writeHex(canonicalRequestHash)
            return body(UnsafeRawBufferPointer(rebasing: buffer[..<out.count]))
        }
    }

    /// Whether `amzDate` (`yyyyMMdd'T'…`) starts with the scope's date (`yyyymmdd`), compared as bytes: the generic
    /// `prefix(8).elementsEqual` over two UTF-8 views cost ≈ 1 k instructions per request.
    static func datePrefixMatches(amzDate: String, scopeDate: String) -> Bool {
        var amzDate = amzDate, scopeDate = scopeDate
        return amzDate.withUTF8 { a in
            scopeDate.withUTF8 { d in a.prefix(8).elementsEqual(d) }
        }
    }

    /// The HMAC chain `AWS4<secret>` → date → region → service → `aws4_request`.
    static func signingKey(secret: String, scope: SigV4Scope) -> [UInt8] {
        var key = HMAC.sha256(key: Array("AWS4\(secret)".utf8), string: scope.date)
        key = HMAC.sha256(key: key, string: scope.region)
        key = HMAC.sha256(key: key, string: scope.service)
        return HMAC.sha256(key: key, string: "aws4_request")
    }

    /// The hex signature of a string to sign (chunk and trailer signatures, POST policies).
    static func signature(signingKey: [UInt8], stringToSign: String) -> String {
        Encoding.hex(HMAC.sha256(key: signingKey, string: stringToSign))
    }

    /// Whether `signature` (64 lower-case hex digits, as the parsers accept) is the HMAC of `stringToSign`.
    /// The comparison is constant-time over the 32 raw bytes: hex decoding is a bijection on that grammar.
    static func signatureMatches(_ signature: String, signingKey: [UInt8], stringToSign: [UInt8]) -> Bool {
        signatureMatches(signature, expected: Bytes32(HMAC.sha256(key: signingKey, data: stringToSign)))
    }

    /// Whether `signature` (64 lower-case hex digits) spells the 32 bytes `expected`, compared in constant time.
    static func signatureMatches(_ signature: String, expected: Bytes32) -> Bool {
        guard let provided = rawSignature(signature) else { return false }
        return provided == expected  // Bytes32's == is constant-time
    }

    /// The 32 bytes of a 64-digit lower-case hex signature; nil for anything else.
    static func rawSignature(_ hex: String) -> Bytes32? {
        var hex = hex
        return hex.withUTF8 { rawSignature($0) }
    }

    /// The 32 bytes of a 64-digit lower-case hex signature; nil for anything else (upper-case digits included:
    /// SigV4 signatures are lower-case, and accepting both would make two spellings of one signature).
    static func rawSignature(_ digits: UnsafeBufferPointer<UInt8>) -> Bytes32? {
        guard digits.count == 64 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
            default: return nil
            }
        }
        var out = Bytes32()
        let ok = out.withUnsafeMutableBytes { out -> Bool in
            for i in 0..<32 {
                guard let high = value(digits[2 &* i]), let low = value(digits[2 &* i &+ 1]) else { return false }
                out[i] = high << 4 | low
            }
            return true
        }
        return ok ? out : nil
    }
}

/// Timestamps in the two formats SigV4 requests carry, converted to Unix seconds without Foundation
/// date formatters (strict, allocation-light, thread-safe).
enum SigV4Time {
    /// Parses `yyyyMMdd'T'HHmmss'Z'`.
    static func parseAmzDate(_ s: String) -> Int64? {
        var s = s
        return s.withUTF8 { b in
            guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z") else { return nil }
            guard let year = number(b[0..<4]), let month = number(b[4..<6]), let day = number(b[6..<8]),
                  let hour = number(b[9..<11]), let minute = number(b[11..<13]), let second = number(b[13..<15])
            else { return nil }
            return epoch(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        }
    }

    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Parses the IMF-fixdate of RFC 9110 (`Sun, 06 Nov 1994 08:49:37 GMT`), the only `Date` form SDKs send.
    static func parseHTTPDate(_ s: String) -> Int64? {
        var s = s
        return s.withUTF8 { b in
            guard b.count == 29, b[3] == UInt8(ascii: ","), b[4] == UInt8(ascii: " "), b[7] == UInt8(ascii: " "),
                  b[11] == UInt8(ascii: " "), b[16] == UInt8(ascii: " "), b[19] == UInt8(ascii: ":"),
                  b[22] == UInt8(ascii: ":"), b[25] == UInt8(ascii: " "), b[26..<29].elementsEqual("GMT".utf8)
            else { return nil }
            guard let monthIndex = monthNames.firstIndex(where: { $0.utf8.elementsEqual(b[8..<11]) }),
                  let day = number(b[5..<7]), let year = number(b[12..<16]),
                  let hour = number(b[17..<19]), let minute = number(b[20..<22]), let second = number(b[23..<25])
            else { return nil }
            return epoch(year: year, month: monthIndex + 1, day: day, hour: hour, minute: minute, second: second)
        }
    }

    /// Formats Unix seconds as `yyyyMMdd'T'HHmmss'Z'`.
    static func formatAmzDate(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rest = seconds - days * 86400
        let (y, m, d) = civil(fromDays: days)
        // Written in a stack buffer (at most a 20-character year + 12), then one String: a byte array first was an
        // extra allocation per signature.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { out in
            var count = 0
            func put(_ b: UInt8) {
                out[count] = b
                count += 1
            }
            func digits(_ v: Int64, _ width: Int) {
                var divisor: Int64 = 1
                for _ in 1..<width { divisor *= 10 }
                while divisor > 0 {
                    put(UInt8(ascii: "0") &+ UInt8(v / divisor % 10))
                    divisor /= 10
                }
            }
            if (0...9999).contains(y) {
                digits(y, 4)
            } else {
                for b in String(y).utf8 { put(b) }  // outside four-digit years (never a real request)
            }
            digits(m, 2)
            digits(d, 2)
            put(UInt8(ascii: "T"))
            digits(rest / 3600, 2)
            digits(rest / 60 % 60, 2)
            digits(rest % 60, 2)
            put(UInt8(ascii: "Z"))
            return String(decoding: UnsafeBufferPointer(rebasing: out[..<count]), as: UTF8.self)
        }
    }

    private static func number(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> Int? {
        var v = 0
        for c in digits {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + Int(c - UInt8(ascii: "0"))
        }
        return v
    }

    private static func epoch(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Int64? {
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour < 24, minute < 60, second < 60 else { return nil }
        return days(year: Int64(year), month: Int64(month), day: Int64(day)) * 86400
            + Int64(hour * 3600 + minute * 60 + second)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    private static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    private static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

extension Array where Element == UInt8 {
    /// Appends the UTF-8 bytes of `string` in one copy: SigV4 assembles its canonical request, string to sign and
    /// Authorization value from a few dozen strings per request, and the generic `append(contentsOf: s.utf8)`
    /// walks them a byte at a time.
    @inline(__always)
    mutating func appendUTF8(_ string: String) {
        let copied: Void? = string.utf8.withContiguousStorageIfAvailable { append(contentsOf: $0) }
        if copied == nil { append(contentsOf: string.utf8) }
    }
}
