/// The backend's base URL, split into what request URLs and the signed `host` header need.
struct BackendEndpoint: Sendable, Equatable {
    /// `http` or `https`.
    var scheme: String
    /// `host[:port]` as sent in the Host header; default ports omitted.
    var hostHeader: String
    /// `scheme://hostHeader`, no trailing slash.
    var baseURL: String

    struct Invalid: Error, Equatable, CustomStringConvertible {
        var value: String
        var reason: String
        var description: String { "invalid backend endpoint '\(value)': \(reason)" }
    }

    /// Parses `http(s)://host[:port]` (an optional trailing `/` is allowed; paths are not).
    static func parse(_ value: String) throws(Invalid) -> BackendEndpoint {
        let scheme: String
        var rest: Substring
        if value.hasPrefix("http://") {
            scheme = "http"
            rest = value.dropFirst(7)
        } else if value.hasPrefix("https://") {
            scheme = "https"
            rest = value.dropFirst(8)
        } else {
            throw Invalid(value: value, reason: "must start with http:// or https://")
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty else { throw Invalid(value: value, reason: "missing host") }
        guard !rest.contains("/"), !rest.contains("?"), !rest.contains("#"), !rest.contains("@") else {
            throw Invalid(value: value, reason: "only scheme, host and port are allowed (no path, query or user info)")
        }
        var host = rest
        var port: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw Invalid(value: value, reason: "unterminated IPv6 literal") }
            host = rest[...close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw Invalid(value: value, reason: "garbage after IPv6 literal") }
                port = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            port = rest[rest.index(after: colon)...]
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw Invalid(value: value, reason: "invalid host")
        }
        var hostHeader = String(host).lowercased()
        if let port {
            guard let n = Int(port), (1...65535).contains(n) else { throw Invalid(value: value, reason: "invalid port") }
            let isDefault = (scheme == "http" && n == 80) || (scheme == "https" && n == 443)
            if !isDefault { hostHeader += ":\(n)" }
        }
        return BackendEndpoint(scheme: scheme, hostHeader: hostHeader, baseURL: "\(scheme)://\(hostHeader)")
    }

    /// The path-style backend path of a bucket/key, encoded once (also the SigV4 canonical URI).
    static func path(bucket: String?, key: String?) -> String {
        guard let bucket else { return "/" }
        // One buffer, one String: a String per encoded part and their concatenation were four allocations per
        // backend request.
        var path: [UInt8] = []
        path.reserveCapacity(2 + bucket.utf8.count + (key?.utf8.count ?? 0) + 16)
        path.append(UInt8(ascii: "/"))
        URIEncoding.append(bytes: bucket.utf8, keepSlash: false, to: &path)
        if let key {
            path.append(UInt8(ascii: "/"))
            URIEncoding.append(bytes: key.utf8, keepSlash: true, to: &path)
        }
        return String(decoding: path, as: UTF8.self)
    }
}
