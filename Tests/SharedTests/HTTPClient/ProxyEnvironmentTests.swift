import Testing
@testable import Shared

@Suite struct ProxyEnvironmentTests {
    /// What libcurl 7.88 does on every transfer when no proxy option is set (lib/url.c
    /// `create_conn_helper_init_proxy` and `detect_proxy`, transcribed): the definition `ProxyEnvironment` replaces.
    /// nil: nothing found (libcurl treats it as it treats an empty string).
    static func curlsOwnChoice(scheme: String, _ env: [String: String]) -> (proxy: String?, noProxy: String?) {
        func curlGetenv(_ name: String) -> String? {  // lib/getenv.c: an empty variable is no variable
            guard let v = env[name], !v.isEmpty else { return nil }
            return v
        }
        let noProxy = curlGetenv("no_proxy") ?? curlGetenv("NO_PROXY")
        var name = scheme.lowercased() + "_proxy"
        var prox = curlGetenv(name)
        if prox == nil, name != "http_proxy" {
            name = name.uppercased()
            prox = curlGetenv(name)
        }
        return (prox ?? curlGetenv("all_proxy") ?? curlGetenv("ALL_PROXY"), noProxy)
    }

    static let names = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                        "no_proxy", "NO_PROXY"]

    /// Every combination of the variables unset, empty or set (a value naming the variable) gives libcurl's choice.
    @Test func everyCombinationChoosesAsLibcurl() {
        var combinations = 0
        for code in 0..<Int(pow3(Self.names.count)) {
            var env: [String: String] = [:]
            var rest = code
            for name in Self.names {
                switch rest % 3 {
                case 1: env[name] = ""
                case 2: env[name] = "http://\(name).example:3128"
                default: break
                }
                rest /= 3
            }
            let chosen = ProxyEnvironment { env[$0] }
            for (scheme, choice) in [("http", chosen.http), ("HTTPS", chosen.https)] {
                let expected = Self.curlsOwnChoice(scheme: scheme, env)
                #expect(choice.proxy == expected.proxy ?? "", "\(scheme) \(env)")
                #expect(choice.noProxy == expected.noProxy ?? "", "\(scheme) \(env)")
            }
            combinations += 1
        }
        #expect(combinations == 6561)
    }

    private func pow3(_ n: Int) -> Int { n == 0 ? 1 : 3 * pow3(n - 1) }

    @Test(arguments: [
        ([:], "", "", ""),
        (["HTTP_PROXY": "h"], "", "", ""),  // never the upper-case http variable
        (["http_proxy": "h"], "h", "", ""),
        (["HTTPS_PROXY": "s"], "", "s", ""),
        (["https_proxy": "s", "HTTPS_PROXY": "S"], "", "s", ""),
        (["http_proxy": "", "all_proxy": "a", "ALL_PROXY": "A"], "a", "a", ""),
        (["ALL_PROXY": "A", "https_proxy": "s"], "A", "s", ""),
        (["no_proxy": "", "NO_PROXY": "n"], "", "", "n"),
        (["no_proxy": "m", "NO_PROXY": "n", "http_proxy": "h"], "h", "", "m"),
    ] as [([String: String], String, String, String)])
    func choices(env: [String: String], http: String, https: String, noProxy: String) {
        let chosen = ProxyEnvironment { env[$0] }
        #expect(chosen.http == .init(proxy: http, noProxy: noProxy))
        #expect(chosen.https == .init(proxy: https, noProxy: noProxy))
    }

    @Test(arguments: [
        ("http://127.0.0.1:9000/b/k", "http"), ("HTTP://h/", "http"), ("https://s3.example/", "https"),
        ("HtTpS://s3.example/", "https"), ("ftp://h/", nil), ("http:/h", nil), ("httpx://h/", nil), ("", nil),
        ("h/x", nil),
    ] as [(String, String?)])
    func choiceByScheme(url: String, scheme: String?) {
        let chosen = ProxyEnvironment { ["http_proxy": "http", "https_proxy": "https"][$0] }
        #expect(chosen.choice(forURL: url)?.proxy == scheme)
    }

    /// The names the operator sets and `--help` lists are variables the choice reads: each alone changes it.
    @Test func documentedAndDeployedNamesAreRead() {
        let quiet = ProxyEnvironment { _ in nil }
        let named = [ProxyEnvironment.httpVariable, ProxyEnvironment.httpsVariable, ProxyEnvironment.noProxyVariable]
            + ProxyEnvironment.settings.map(\.name)
        for name in Set(named) {
            #expect(ProxyEnvironment { $0 == name ? "x" : nil } != quiet, "\(name) is not read")
        }
        #expect(ProxyEnvironment { $0 == ProxyEnvironment.httpsVariable ? "p" : nil }.https.proxy == "p")
        #expect(ProxyEnvironment { $0 == ProxyEnvironment.noProxyVariable ? ".svc" : nil }.http.noProxy == ".svc")
    }

    /// `.none` names no proxy for any scheme whatever the process's variables say (the probe of its own loopback).
    @Test func noneChoosesDirectConnections() {
        for url in ["http://127.0.0.1:8080/health", "https://[::1]:8443/health"] {
            #expect(ProxyEnvironment.none.choice(forURL: url) == .init(proxy: "", noProxy: ""))
        }
    }

    @Test(arguments: [
        // Names: the name itself or any name below it, case and one trailing dot ignored.
        ("rgw.ceph.svc", ".svc", true), ("rgw.ceph.svc", "svc", true), ("rgw.ceph.svc", "ceph.svc", true),
        ("rgw.ceph.svc", "eph.svc", false), ("rgw.ceph.svc", "rgw.ceph.svc.", true), ("RGW.ceph.svc", "rgw.CEPH.svc", true),
        ("rgw.ceph.svc.", ".svc", true), ("rgw.ceph.svc.cluster.local", ".svc", false),
        ("rgw.ceph.svc.cluster.local", "cluster.local", true), ("svc", ".svc", true), ("asvc", "svc", false),
        ("minio", "minio.", true), ("minio", "..minio", false),
        // The list: separated by commas and blanks; * only alone.
        ("minio", "a,minio", true), ("minio", "a minio", true), ("minio", " ,,minio,, ", true), ("minio", "*", true),
        ("minio", "*,a", false), ("minio", " * ", false), ("minio", "", false), ("", "*", false),
        // IPv4: the address or a range; a malformed entry or more than 32 bits matches nothing.
        ("10.1.2.3", "10.1.2.3", true), ("10.1.2.3", "10.0.0.0/8", true), ("10.1.2.3", "10.0.0.0/16", false),
        ("10.1.2.3", "10.1.2.2/31", true), ("10.1.2.3", "10.1.2.2/32", false), ("10.1.2.3", "10.0.0.0/0", false),
        ("10.1.2.3", "10.1.2.3/0", true), ("10.1.2.3", "10.0.0.0/33", false), ("10.1.2.3", "10.1.2.3/-1", false),
        ("10.1.2.3", "010.1.2.3", false), ("10.1.2.3", "10.1.2", false), ("10.1.2.3", ".3", false),
        // IPv6 literals compare as names.
        ("::1", "::1", true), ("::1", "0::1", false), ("::1", "::1/128", false),
    ] as [(String, String, Bool)])
    func exclusionList(host: String, noProxy: String, excluded: Bool) {
        #expect(ProxyEnvironment.excludes(host: host, noProxy: noProxy) == excluded)
    }

    @Test(arguments: [
        ("http://rgw.ceph.svc:8080/b/k", "http://p:3128"), ("https://s3.example/", "http://s:3128"),
        ("http://minio/", nil), ("http://[::1]:9000/", nil), ("http://[::2]:9000/", "http://p:3128"),
        ("ftp://h/", nil), ("http:///", "http://p:3128"),
    ] as [(String, String?)])
    func proxyForURL(url: String, proxy: String?) {
        let env = ProxyEnvironment { ["http_proxy": "http://p:3128", "https_proxy": "http://s:3128", "no_proxy": "minio,::1"][$0] }
        #expect(env.proxy(forURL: url) == proxy)
    }

    @Test(arguments: [
        ("http://user:secret@proxy:3128", "http://proxy:3128"), ("http://proxy:3128/", "http://proxy:3128/"),
        ("user:secret@proxy:3128", "proxy:3128"), ("http://a@b:c@proxy/x@y", "http://proxy/x@y"), ("", ""),
    ] as [(String, String)])
    func redactedProxyHasNoCredentials(proxy: String, logged: String) {
        #expect(ProxyEnvironment.redacted(proxy) == logged)
    }

    /// A `*` that is not the whole list is warned about; it changes what `excludes` says for a host it should cover.
    @Test(arguments: [("*", false), ("*,.svc", true), (" * ", true), (".svc *", true), (".svc,minio", false), ("", false)]
          as [(String, Bool)])
    func starAmongOtherEntriesIsWarnedAbout(noProxy: String, warned: Bool) {
        let env = ProxyEnvironment { ["http_proxy": "http://p:3128", "no_proxy": noProxy][$0] }
        #expect(env.noProxyWarnings.count == (warned ? 1 : 0), "\(env.noProxyWarnings)")
        if warned { #expect(!ProxyEnvironment.excludes(host: "s3.example.com", noProxy: noProxy)) }
    }
}
