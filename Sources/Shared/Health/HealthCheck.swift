import Foundation

/// The `healthcheck` subcommand of both binaries: one GET against the process's own health endpoint on
/// loopback, exit 0 when it answers 2xx and 1 otherwise. The images' `HEALTHCHECK` runs the binary itself,
/// so they need no curl or wget.
public enum HealthCheck {
    /// What a probe found: healthy, or why not (the text is printed for `docker inspect`).
    public enum Outcome: Equatable, Sendable {
        case healthy(status: Int)
        case unhealthy(String)
    }

    public struct Options: Equatable, Sendable {
        /// Overrides the URL derived from the listen address.
        public var url: String?
        public var timeout: Duration = .seconds(2)
        public init(url: String? = nil, timeout: Duration = .seconds(2)) {
            self.url = url
            self.timeout = timeout
        }
    }

    public struct UsageError: Error, Equatable, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
        public init(message: String) { self.message = message }
    }

    public static let usage = """
        usage: healthcheck [--url URL] [--timeout DURATION]
          --url URL            probe this URL instead of the process's own health endpoint on loopback
          --timeout DURATION   give up after this long, e.g. 2s, 500ms (default 2s)
        Exit 0 when the endpoint answers 2xx, 1 otherwise, 2 for bad usage.
        """

    /// Parses the subcommand's flags (`--flag value` or `--flag=value`).
    public static func parse(_ arguments: [String]) throws(UsageError) -> Options {
        var options = Options()
        var i = 0
        while i < arguments.count {
            var name = arguments[i]
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            i += 1
            if value == nil, name == "--url" || name == "--timeout" {
                guard i < arguments.count else { throw UsageError(message: "\(name) needs a value") }
                value = arguments[i]
                i += 1
            }
            switch name {
            case "--url":
                guard let url = value, url.hasPrefix("http://") || url.hasPrefix("https://") else {
                    throw UsageError(message: "--url must be an http:// or https:// URL")
                }
                options.url = url
            case "--timeout":
                guard let text = value, let timeout = try? GatewayConfiguration.duration(text, .requestTimeout) else {
                    throw UsageError(message: "--timeout must be a duration like 2s or 500ms")
                }
                options.timeout = timeout
            default:
                throw UsageError(message: "unknown argument \(JSON.quote(arguments[i - 1])) for healthcheck")
            }
        }
        return options
    }

    /// The URL a probe inside the container uses for a server bound to `listen`: a wildcard or empty host
    /// becomes the loopback address of the same family.
    public static func localURL(listen: ListenAddress, path: String, scheme: String = "http") -> String {
        let host: String
        switch listen.host {
        case "", "0.0.0.0": host = "127.0.0.1"
        case "::": host = "[::1]"
        case let h where h.contains(":"): host = "[\(h)]"
        case let h: host = h
        }
        return "\(scheme)://\(host):\(listen.port)\(path)"
    }

    /// One GET with `timeout` as its whole budget. Certificates are not verified: the probe talks to its own
    /// process on loopback and asks whether it is alive, not who it is.
    public static func probe(url: String, timeout: Duration) -> Outcome {
        var configuration = HTTPClientConfiguration()
        configuration.connectTimeout = timeout
        configuration.idleTimeout = timeout
        configuration.insecureSkipVerify = true
        configuration.maxPooledHandles = 1
        // Its own process, on loopback: never through the outgoing proxy the environment names (a pod with
        // `spec.proxy` has http_proxy set, and the proxy cannot reach the pod's loopback).
        configuration.proxies = .none
        var request = HTTPClientRequest(method: "GET", url: url)
        request.totalTimeout = timeout
        do {
            let response = try HTTPClient(configuration: configuration).execute(request, maxBodySize: 64 << 10)
            guard (200..<300).contains(response.status) else {
                return .unhealthy("\(url) answered \(response.status)")
            }
            return .healthy(status: response.status)
        } catch {
            return .unhealthy("\(url): \(error)")
        }
    }

    /// Runs the subcommand: parses `arguments`, probes `options.url ?? defaultURL()`, prints one line.
    /// `defaultURL` may throw a usage error (e.g. an invalid listen address in the environment).
    public static func run(program: String, arguments: [String],
                           defaultURL: () throws(UsageError) -> String) -> Int32 {
        if arguments.contains("--help") || arguments.contains("-h") {
            print(usage)
            return 0
        }
        let url: String
        let options: Options
        do throws(UsageError) {
            options = try parse(arguments)
            if let given = options.url { url = given } else { url = try defaultURL() }
        } catch {
            FileHandle.standardError.write(Data("\(program) healthcheck: \(error.message)\n\(usage)\n".utf8))
            return 2
        }
        switch probe(url: url, timeout: options.timeout) {
        case .healthy(let status):
            print("healthy: \(url) answered \(status)")
            return 0
        case .unhealthy(let reason):
            print("unhealthy: \(reason)")
            return 1
        }
    }
}
