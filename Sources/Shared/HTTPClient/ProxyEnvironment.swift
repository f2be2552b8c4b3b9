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
        (noProxyVariable, "hosts reached directly, separated by commas: names, domain suffixes (.svc), IP addresses, CIDR ranges, or * for all (NO_PROXY also works)"),
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
