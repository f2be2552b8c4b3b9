import Shared

/// Which bucket and key a request addresses, decided from the path and the Host header.
///
/// Path style: `/bucket/key…`. Virtual-host style: `bucket.<base domain>` with the key as the whole path.
/// Keys are percent-decoded exactly once and otherwise kept verbatim (`//`, spaces, `+`, unicode).
struct S3RequestAddress: Sendable, Equatable {
    enum Style: Sendable, Equatable { case path, virtualHost }

    /// nil for service-level requests (`GET /` = ListBuckets).
    var bucket: String?
    /// nil for bucket- and service-level requests; never empty.
    var key: String?
    var style: Style

    static let maxKeyBytes = 1024

    /// Resolves the address of a request.
    /// - Parameters:
    ///   - rawPath: the path as received, still percent-encoded.
    ///   - host: the Host header (may carry a port); nil when absent.
    ///   - baseDomains: `GATEWAY_DOMAINS`, e.g. `["s3.example.com"]`.
    static func resolve(rawPath: String, host: String?, baseDomains: [String]) throws(S3Error) -> S3RequestAddress {
        // Split on the `/` bytes, as S3 does (and cheaply: Character indexing showed per request), so a
        // combining mark after a `/` does not hide the slash.
        let utf8 = rawPath.utf8
        guard utf8.first == UInt8(ascii: "/") else { throw S3Error.invalidURI() }
        let rest = rawPath[utf8.index(after: utf8.startIndex)...]
        if let bucket = virtualHostBucket(host: host, baseDomains: baseDomains) {
            try validateBucketName(bucket)
            return S3RequestAddress(bucket: bucket, key: try decodeKey(rest), style: .virtualHost)
        }
        if rest.isEmpty { return S3RequestAddress(bucket: nil, key: nil, style: .path) }
        let bucketPart: Substring
        let keyPart: Substring
        if let slash = rest.utf8.firstIndex(of: UInt8(ascii: "/")) {
            bucketPart = rest[..<slash]
            keyPart = rest[rest.utf8.index(after: slash)...]
        } else {
            bucketPart = rest
            keyPart = ""
        }
        guard let bucket = URIEncoding.decode(bucketPart) else { throw S3Error.invalidURI() }
        try validateBucketName(bucket)
        return S3RequestAddress(bucket: bucket, key: try decodeKey(keyPart), style: .path)
    }

    /// The bucket named by a virtual-host-style Host header, or nil for path style.
    static func virtualHostBucket(host: String?, baseDomains: [String]) -> String? {
        guard let host, !host.isEmpty, !baseDomains.isEmpty else { return nil }
        if let decided = printableASCIIVirtualHostBucket(host: host, baseDomains: baseDomains) { return decided }
        return stringVirtualHostBucket(host: host, baseDomains: baseDomains)
    }

    /// `virtualHostBucket` on Strings, for any Host header (non-ASCII, control bytes): the definition the
    /// byte-wise path must agree with (tested on both).
    static func stringVirtualHostBucket(host: String, baseDomains: [String]) -> String? {
        var name = Substring(host)
        if name.hasPrefix("[") { return nil }  // IPv6 literal: always path style
        if let colon = name.lastIndex(of: ":") { name = name[..<colon] }
        if name.hasSuffix(".") { name = name.dropLast() }
        let lower = name.lowercased()
        for domain in baseDomains {
            var d = domain.lowercased()
            if d.hasSuffix(".") { d.removeLast() }
            guard !d.isEmpty else { continue }
            if lower.count > d.count + 1, lower.hasSuffix("." + d) {
                return String(lower.dropLast(d.count + 1))
            }
        }
        return nil
    }

    /// `virtualHostBucket` over the bytes when the Host header and every base domain are printable ASCII (every
    /// real request): the same answer without lower-cased copies of the host and each domain per request.
    /// Returns nil to let the general path decide anything else; `.some(nil)` means path style.
    private static func printableASCIIVirtualHostBucket(host: String, baseDomains: [String]) -> String?? {
        func printable(_ s: String) -> Bool { s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } }
        guard printable(host), baseDomains.allSatisfy(printable) else { return nil }
        var hostCopy = host
        return hostCopy.withUTF8 { bytes -> String?? in
            if bytes[0] == UInt8(ascii: "[") { return .some(nil) }  // IPv6 literal: always path style
            var end = bytes.count
            if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) { end = colon }
            if end > 0, bytes[end - 1] == UInt8(ascii: ".") { end -= 1 }
            for domain in baseDomains {
                var domainCopy = domain
                // Where the bucket ends when the name is `<bucket>.<domain>` (any case, the domain's trailing dot ignored).
                let bucketEnd = domainCopy.withUTF8 { d -> Int? in
                    var length = d.count
                    if length > 0, d[length - 1] == UInt8(ascii: ".") { length -= 1 }
                    guard length > 0, end > length + 1, bytes[end - length - 1] == UInt8(ascii: ".") else { return nil }
                    for i in 0..<length where lower(bytes[end - length + i]) != lower(d[i]) { return nil }
                    return end - length - 1
                }
                if let bucketEnd {
                    return .some(String(decoding: bytes[0..<bucketEnd].map(lower), as: UTF8.self))
                }
            }
            return .some(nil)
        }
    }

    private static func lower(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b | 0x20 : b }

    private static func decodeKey(_ raw: Substring) throws(S3Error) -> String? {
        // `/bucket/` (restic) addresses the bucket itself.
        if raw.isEmpty { return nil }
        guard let key = URIEncoding.decode(raw) else { throw S3Error.invalidURI() }
        guard key.utf8.count <= maxKeyBytes else { throw S3Error.keyTooLong() }
        return key
    }

    /// S3 bucket naming rules: 3–63 characters of `a-z 0-9 . -`, starting and ending with a
    /// letter or digit, no `..`, `.-` or `-.`, not an IPv4 address, none of the reserved prefixes/suffixes.
    static func validateBucketName(_ name: String) throws(S3Error) {
        guard isValidBucketName(name) else { throw S3Error.invalidBucketName(name) }
    }

    static func isValidBucketName(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { isValidBucketName(bytes: $0) }
    }

    private static func isValidBucketName(bytes b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard b.count >= 3, b.count <= 63 else { return false }
        func alnum(_ c: UInt8) -> Bool {
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
        }
        guard alnum(b[0]), alnum(b[b.count - 1]) else { return false }
        for (i, c) in b.enumerated() {
            guard alnum(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") else { return false }
            if i > 0 {
                let p = b[i - 1]
                if p == UInt8(ascii: "."), c == UInt8(ascii: ".") || c == UInt8(ascii: "-") { return false }
                if p == UInt8(ascii: "-"), c == UInt8(ascii: ".") { return false }
            }
        }
        // An IPv4 address: four dot-separated runs of digits (the loop above refused empty runs: no leading,
        // trailing or doubled dot).
        if b.count(where: { $0 == UInt8(ascii: ".") }) == 3,
           b.allSatisfy({ $0 == UInt8(ascii: ".") || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) }) {
            return false
        }
        for prefix in reservedPrefixes where b.starts(with: prefix) { return false }
        for suffix in reservedSuffixes where b.count >= suffix.count && b[(b.count - suffix.count)...].elementsEqual(suffix) { return false }
        return true
    }

    private static let reservedPrefixes = ["xn--", "sthree-", "amzn-s3-demo-"].map { Array($0.utf8) }
    private static let reservedSuffixes = ["-s3alias", "--ol-s3", "--x-s3", ".mrap"].map { Array($0.utf8) }
}

/// Where a request goes: the gateway's own anonymous endpoints, or S3.
enum GatewayRoute: Sendable, Equatable {
    enum Endpoint: String, Sendable, Equatable, CaseIterable {
        case health = "/health"
        case ready = "/ready"
        case metrics = "/metrics"

        /// Every endpoint: what a listener without a probe listener beside it serves (built once, not per request).
        static let all = Set(allCases)
    }

    case gateway(Endpoint)
    case s3

    /// Anonymous `GET`/`HEAD` of `/health`, `/ready`, `/metrics` is the gateway's when the listener serves that
    /// endpoint (`served`); any signed request (Authorization header, or SigV4/SigV2 query credentials) to the same
    /// path is S3, and so is a path the listener does not serve.
    static func decide(method: String, rawPath: String, rawQuery: String?, headers: HTTPFields,
                       served: Set<Endpoint> = Endpoint.all) -> GatewayRoute {
        guard method == "GET" || method == "HEAD" else { return .s3 }
        guard let endpoint = Endpoint(rawValue: rawPath), served.contains(endpoint) else { return .s3 }
        if headers.contains("Authorization") { return .s3 }
        if let rawQuery {
            for segment in rawQuery.split(separator: "&") {
                let name = segment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                let lower = name.lowercased()
                if lower.hasPrefix("x-amz-") || lower == "signature" || lower == "awsaccesskeyid" { return .s3 }
            }
        }
        return .gateway(endpoint)
    }
}
