import Foundation

/// The proxy settings libcurl would take from the environment, read once.
///
/// Left alone, libcurl looks the proxy variables up on every transfer (Debian bookworm's 7.88: `no_proxy`,
/// `NO_PROXY`, then `http_proxy`, `all_proxy`, `ALL_PROXY` — five `getenv` walks over the environment per backend
/// request; issue 12). A process's environment cannot change from outside, so `HTTPClient` reads them once and hands
/// libcurl the result explicitly (`CURLOPT_PROXY`, `CURLOPT_NOPROXY`), which also stops libcurl's own look-up. The
/// choice follows libcurl's rules exactly (lib/url.c `detect_proxy` and `create_conn_helper_init_proxy`):
/// - the scheme's own variable in lower case (`http_proxy`, `https_proxy`); for every scheme but http also its
///   upper-case form (`HTTPS_PROXY`) — never `HTTP_PROXY`, which a CGI environment lets a client set through a
///   `Proxy:` request header;
/// - else `all_proxy`, then `ALL_PROXY`;
/// - the exclusion list `no_proxy`, else `NO_PROXY`, matched by libcurl against each request's host as before;
/// - an empty variable counts as unset (`curl_getenv`).
/// An empty `proxy` means "no proxy" to libcurl, as it does when no variable is set.
public struct ProxyEnvironment: Sendable, Equatable {
    /// What to set for one transfer: `CURLOPT_PROXY` (empty: none) and `CURLOPT_NOPROXY` (empty: no exclusions).
    public struct Choice: Sendable, Equatable {
        public var proxy: String
        public var noProxy: String

        public init(proxy: String, noProxy: String) {
            self.proxy = proxy
            self.noProxy = noProxy
        }
    }

    public let http: Choice
    public let https: Choice

    /// The variables a deployment sets to give the gateway a proxy (the operator's `spec.proxy`): the scheme's own
    /// variables in lower case, the one form libcurl reads for both schemes, and the exclusion list.
    public static let httpVariable = "http_proxy"
    public static let httpsVariable = "https_proxy"
    public static let noProxyVariable = "no_proxy"

    /// No proxy for any URL, whatever the environment says: for connections to this process itself.
    public static let none = ProxyEnvironment { _ in nil }

    /// The variables read, for `--help` and the configuration reference, in libcurl's order of precedence.
    public static let settings: [(name: String, summary: String)] = [
        (httpVariable, "proxy URL for http:// backends and key services, e.g. http://proxy.example.com:3128 (lower case only: HTTP_PROXY is ignored, as libcurl does)"),
        (httpsVariable, "proxy URL for https:// ones (HTTPS_PROXY also works)"),
        ("all_proxy", "proxy URL for both when the scheme's own variable is unset (ALL_PROXY also works)"),
        (noProxyVariable, "hosts reached directly, separated by commas: names (each with the names below it), domain suffixes (.svc), IPv4 addresses and CIDR ranges, or * alone for all (NO_PROXY also works)"),
    ]

    /// - Parameter lookup: a variable's value, nil when unset (`getenv`).
    public init(lookup: (String) -> String?) {
        func value(_ name: String) -> String? {
            guard let v = lookup(name), !v.isEmpty else { return nil }
            return v
        }
        let noProxy = value(Self.noProxyVariable) ?? value("NO_PROXY") ?? ""
        let all = value("all_proxy") ?? value("ALL_PROXY")
        http = Choice(proxy: value(Self.httpVariable) ?? all ?? "", noProxy: noProxy)
        https = Choice(proxy: value(Self.httpsVariable) ?? value("HTTPS_PROXY") ?? all ?? "", noProxy: noProxy)
    }

    /// The settings for a URL: by its scheme, nil for a scheme other than http and https (libcurl then looks
    /// the variables up itself, as it always did).
    public func choice(forURL url: String) -> Choice? {
        let utf8 = url.utf8
        /// Whether the URL starts with `scheme` (lower-case ASCII), in any case.
        func hasScheme(_ scheme: StaticString) -> Bool {
            var i = utf8.startIndex
            for expected in UnsafeBufferPointer(start: scheme.utf8Start, count: scheme.utf8CodeUnitCount) {
                guard i != utf8.endIndex else { return false }
                let b = utf8[i]
                guard (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b) == expected else { return false }
                i = utf8.index(after: i)
            }
            return true
        }
        if hasScheme("http://") { return http }
        if hasScheme("https://") { return https }
        return nil
    }
}

extension ProxyEnvironment {
    /// The proxy libcurl connects through for `url`, or nil when it connects directly: no proxy for the URL's scheme,
    /// or an exclusion list that names its host (`excludes`). For log lines and warnings; the transfer itself leaves
    /// this decision to libcurl.
    public func proxy(forURL url: String) -> String? {
        guard let choice = choice(forURL: url), !choice.proxy.isEmpty else { return nil }
        guard let host = Self.host(ofURL: url) else { return choice.proxy }
        return Self.excludes(host: host, noProxy: choice.noProxy) ? nil : choice.proxy
    }

    /// What in the exclusion list most likely does not do what it says, for a warning at start-up: a `*` that is
    /// not the whole list, which libcurl reads as an ordinary name matching nothing (`excludes`), so every host
    /// the other entries do not name goes through the proxy.
    public var noProxyWarnings: [String] {
        var lists = [http.noProxy]
        if https.noProxy != http.noProxy { lists.append(https.noProxy) }
        return lists.compactMap { list in
            let entries = list.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" })
            guard list != "*", entries.contains("*") else { return nil }
            return "no_proxy \"\(list)\" lists * among other entries: libcurl reads * as every host only when it is "
                + "the whole list, so here it matches nothing and every host the other entries do not name goes through the proxy"
        }
    }

    /// A proxy URL fit for a log line: without the user name and password it may carry (`user:password@`).
    public static func redacted(_ proxy: String) -> String {
        let authorityStart = proxy.range(of: "://")?.upperBound ?? proxy.startIndex
        let authorityEnd = proxy[authorityStart...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? proxy.endIndex
        guard let at = proxy[authorityStart..<authorityEnd].lastIndex(of: "@") else { return proxy }
        return String(proxy[..<authorityStart]) + String(proxy[proxy.index(after: at)...])
    }

    /// A URL's host as libcurl matches it against the exclusion list: an IPv6 literal without its brackets.
    public static func host(ofURL url: String) -> String? {
        guard let parsed = URLComponents(string: url), let host = parsed.host, !host.isEmpty else { return nil }
        if host.hasPrefix("["), host.hasSuffix("]") { return String(host.dropFirst().dropLast()) }
        return host
    }

    /// Whether libcurl (Debian bookworm's 7.88, lib/noproxy.c) connects to `host` directly under the exclusion list
    /// `noProxy` (`no_proxy`, `CURLOPT_NOPROXY`):
    /// - the list `*` alone excludes every host; a `*` among other entries is an ordinary name that matches nothing;
    /// - entries are separated by commas and blanks;
    /// - for a name, an entry matches the name itself or any name below it (`svc` and `.svc` both match `a.svc`,
    ///   neither matches `asvc`), ignoring case and one trailing dot on either side;
    /// - for an IPv4 address, an entry matches the same address, or a range `address/bits`;
    /// - an IPv6 address (without its brackets) compares as a name: only the same text matches, and 7.88 knows no
    ///   IPv6 ranges.
    /// `HTTPClientTests.exclusionMatchingAgreesWithLibcurl` holds this to the real libcurl, request by request.
    public static func excludes(host: String, noProxy: String) -> Bool {
        guard !host.isEmpty, !noProxy.isEmpty else { return false }
        if noProxy == "*" { return true }
        let ipv4 = ipv4Address(host.utf8)
        var name = Array(host.utf8)
        if ipv4 == nil, name.last == UInt8(ascii: ".") { name.removeLast() }
        let entries = Array(noProxy.utf8).split(whereSeparator: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") })
        for entry in entries {
            if let ipv4 {
                if ipv4Entry(entry, matches: ipv4) { return true }
                continue
            }
            var pattern = entry
            if pattern.last == UInt8(ascii: ".") { pattern = pattern.dropLast() }
            if pattern.first == UInt8(ascii: ".") { pattern = pattern.dropFirst() }
            if pattern.count == name.count {
                if equalFolded(pattern, name[...]) { return true }
            } else if pattern.count < name.count {
                if name[name.count - pattern.count - 1] == UInt8(ascii: "."),
                   equalFolded(pattern, name[(name.count - pattern.count)...]) { return true }
            }
        }
        return false
    }

    /// Byte strings of the same length equal but for ASCII case (libcurl's `strncasecompare`).
    private static func equalFolded(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
        zip(a, b).allSatisfy { ASCIICase.lowered($0) == ASCIICase.lowered($1) }
    }

    /// An IPv4 entry (`a.b.c.d` or `a.b.c.d/bits`) against an address; a malformed entry or more than 32 bits
    /// matches nothing, and `/0` means the whole address (libcurl's `Curl_cidr4_match`).
    private static func ipv4Entry(_ entry: ArraySlice<UInt8>, matches address: UInt32) -> Bool {
        let parts = entry.split(separator: UInt8(ascii: "/"), maxSplits: 1, omittingEmptySubsequences: false)
        guard let network = ipv4Address(parts[0]) else { return false }
        var bits = 0
        if parts.count == 2 { bits = Self.leadingNumber(parts[1]) }
        guard bits <= 32 else { return false }
        if bits == 0 || bits == 32 { return network == address }
        let mask = UInt32.max << UInt32(32 - bits)
        return (network ^ address) & mask == 0
    }

    /// `atoi` as libcurl's unsigned `bits`: the decimal digits at the start, 0 without any; large values saturate
    /// and negative ones wrap to large ones, which no range accepts.
    private static func leadingNumber(_ text: ArraySlice<UInt8>) -> Int {
        var digits = text
        let negative = digits.first == UInt8(ascii: "-")
        if negative || digits.first == UInt8(ascii: "+") { digits = digits.dropFirst() }
        var value = 0
        for c in digits {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { break }
            value = min(value * 10 + Int(c - UInt8(ascii: "0")), 1 << 20)
        }
        return negative && value != 0 ? 1 << 20 : value
    }

    /// A dotted-quad IPv4 address as `inet_pton` reads one (four decimal parts of at most three digits, each at
    /// most 255, nothing else), in network order as a number; nil otherwise.
    private static func ipv4Address<S: Sequence<UInt8>>(_ text: S) -> UInt32? {
        var value: UInt32 = 0, part: UInt32 = 0, digits = 0, parts = 0
        for c in text {
            if c == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                part = 0; digits = 0; parts += 1
            } else if c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
                // inet_pton refuses a leading zero in a part of more than one digit.
                guard digits < 3, !(digits == 1 && part == 0) else { return nil }
                part = part * 10 + UInt32(c - UInt8(ascii: "0"))
                digits += 1
                guard part <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | part
    }
}
