import Shared
import Synchronization

/// The credential scope `yyyymmdd/region/service/aws4_request`.
struct SigV4Scope: Sendable, Hashable {
    var date: String
    var region: String
    var service: String

    var string: String { "\(date)/\(region)/\(service)/aws4_request" }
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
        guard let bytes = URIEncoding.decodeBytes(rawPath[...]) else { return nil }
        if bytes.isEmpty { return "/" }
        return URIEncoding.encode(bytes: bytes, keepSlash: true)
    }

    /// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces/tabs collapsed to one space.
    static func canonicalHeaderValue(_ value: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for b in value.utf8 {
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace { out.append(UInt8(ascii: " ")); pendingSpace = false }
            out.append(b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical headers block (each `name:value\n`) for `signedHeaders`, taking values from `headers`.
    /// Several values of one header are joined with `,` in arrival order. Fails naming the first signed
    /// header that the request does not carry.
    static func canonicalHeaders(signedHeaders: [String], headers: HTTPFields) -> Result<String, MissingHeader> {
        var out = ""
        for name in signedHeaders {
            let values = headers.values(name)
            guard !values.isEmpty else { return .failure(MissingHeader(name: name)) }
            out += name
            out += ":"
            out += values.map(canonicalHeaderValue).joined(separator: ",")
            out += "\n"
        }
        return .success(out)
    }

    struct MissingHeader: Error, Equatable { var name: String }

    static func canonicalRequest(method: String, canonicalURI: String, canonicalQuery: String,
                                 canonicalHeaders: String, signedHeaders: [String], payloadHash: String) -> String {
        [method, canonicalURI, canonicalQuery, canonicalHeaders, signedHeaders.joined(separator: ";"), payloadHash]
            .joined(separator: "\n")
    }

    static func stringToSign(amzDate: String, scope: SigV4Scope, canonicalRequest: String) -> String {
        [algorithm, amzDate, scope.string, Encoding.hex(Digest.sha256(canonicalRequest))].joined(separator: "\n")
    }

    /// The HMAC chain `AWS4<secret>` → date → region → service → `aws4_request`.
    static func signingKey(secret: String, scope: SigV4Scope) -> [UInt8] {
        var key = HMAC.sha256(key: Array("AWS4\(secret)".utf8), string: scope.date)
        key = HMAC.sha256(key: key, string: scope.region)
        key = HMAC.sha256(key: key, string: scope.service)
        return HMAC.sha256(key: key, string: "aws4_request")
    }

    static func signature(signingKey: [UInt8], stringToSign: String) -> String {
        Encoding.hex(HMAC.sha256(key: signingKey, string: stringToSign))
    }
}

/// Caches signing keys per (secret, scope): the key changes once a day per region, while
/// deriving it costs four HMACs per request. Bounded; cleared wholesale when full.
final class SigningKeyCache: Sendable {
    private struct Entry: Hashable {
        var secretHash: [UInt8]
        var scope: SigV4Scope
    }

    private let entries = Mutex<[Entry: [UInt8]]>([:])
    private let capacity: Int

    init(capacity: Int = 64) { self.capacity = capacity }

    func key(secret: String, scope: SigV4Scope) -> [UInt8] {
        // Keyed by a hash of the secret so the cache never stores the secret itself twice.
        let entry = Entry(secretHash: Digest.sha256(secret), scope: scope)
        if let cached = entries.withLock({ $0[entry] }) { return cached }
        let key = SigV4.signingKey(secret: secret, scope: scope)
        entries.withLock {
            if $0.count >= capacity { $0.removeAll() }
            $0[entry] = key
        }
        return key
    }
}

/// Timestamps in the two formats SigV4 requests carry, converted to Unix seconds without Foundation
/// date formatters (strict, allocation-light, thread-safe).
enum SigV4Time {
    /// Parses `yyyyMMdd'T'HHmmss'Z'`.
    static func parseAmzDate(_ s: String) -> Int64? {
        let b = Array(s.utf8)
        guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z") else { return nil }
        guard let year = number(b[0..<4]), let month = number(b[4..<6]), let day = number(b[6..<8]),
              let hour = number(b[9..<11]), let minute = number(b[11..<13]), let second = number(b[13..<15])
        else { return nil }
        return epoch(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Parses the IMF-fixdate of RFC 9110 (`Sun, 06 Nov 1994 08:49:37 GMT`), the only `Date` form SDKs send.
    static func parseHTTPDate(_ s: String) -> Int64? {
        let b = Array(s.utf8)
        guard b.count == 29, b[3] == UInt8(ascii: ","), b[4] == UInt8(ascii: " "), b[7] == UInt8(ascii: " "),
              b[11] == UInt8(ascii: " "), b[16] == UInt8(ascii: " "), b[19] == UInt8(ascii: ":"),
              b[22] == UInt8(ascii: ":"), b[25] == UInt8(ascii: " "),
              String(decoding: b[26..<29], as: UTF8.self) == "GMT"
        else { return nil }
        let monthName = String(decoding: b[8..<11], as: UTF8.self)
        guard let monthIndex = monthNames.firstIndex(of: monthName),
              let day = number(b[5..<7]), let year = number(b[12..<16]),
              let hour = number(b[17..<19]), let minute = number(b[20..<22]), let second = number(b[23..<25])
        else { return nil }
        return epoch(year: year, month: monthIndex + 1, day: day, hour: hour, minute: minute, second: second)
    }

    /// Formats Unix seconds as `yyyyMMdd'T'HHmmss'Z'`.
    static func formatAmzDate(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rest = seconds - days * 86400
        let (y, m, d) = civil(fromDays: days)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(y, 4) + pad(m, 2) + pad(d, 2) + "T" + pad(rest / 3600, 2) + pad(rest / 60 % 60, 2) + pad(rest % 60, 2) + "Z"
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
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
