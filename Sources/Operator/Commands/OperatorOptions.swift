/// Command-line options of `encryption-gateway-operator` (controller-runtime's conventional flag names).
struct OperatorOptions: Equatable, Sendable {
    var kubeconfig: String?
    /// Watch scope; nil = all namespaces.
    var namespace: String?
    var leaderElect = true
    /// nil = the in-cluster namespace, else the watch namespace, else "default".
    var leaderElectionNamespace: String?
    var leaderElectionID = "encryption-gateway-operator.s3gateway.dev"
    var leaseDuration: Duration = .seconds(15)
    var renewDeadline: Duration = .seconds(10)
    var retryPeriod: Duration = .seconds(2)
    var healthProbeBindAddress = ":8081"
    /// "0" disables the metrics endpoint.
    var metricsBindAddress = ":8080"
    var workers = 1
    var gracefulShutdownTimeout: Duration = .seconds(30)
    var logLevel = "info"
    /// Image of gateways whose spec.image is empty.
    var gatewayImage = OperatorOptions.defaultGatewayImage
    /// How often every resource is reconciled again even without a change (controller-runtime's SyncPeriod).
    var syncPeriod: Duration = .seconds(10 * 3600)
    var help = false

    static let defaultGatewayImage = "s3-encryption-gateway/gateway:latest"

    static let usage = """
        usage: encryption-gateway-operator [flags]
               encryption-gateway-operator render -f FILE [--secret-hash H]   (see render --help)
               encryption-gateway-operator crd

          --kubeconfig PATH                      kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
          --namespace NS                         only watch this namespace (default: all namespaces)
          --leader-elect[=BOOL]                  use a Lease so only one replica acts (default true)
          --leader-election-namespace NS         namespace of the Lease (default: the pod's namespace)
          --leader-election-id NAME              name of the Lease (default encryption-gateway-operator.s3gateway.dev)
          --leader-election-lease-duration DUR   how long a Lease is valid without renewal (default 15s)
          --leader-election-renew-deadline DUR   how long the leader retries renewing before giving up (default 10s)
          --leader-election-retry-period DUR     wait between election attempts (default 2s)
          --health-probe-bind-address ADDR       /healthz and /readyz (default :8081)
          --metrics-bind-address ADDR            /metrics, "0" to disable (default :8080)
          --workers N                            concurrent reconciles (default 1)
          --graceful-shutdown-timeout DUR        how long SIGTERM waits for reconciles in flight (default 30s)
          --log-level LEVEL                      debug, info, warn or error (default info; env LOG_LEVEL)
          --gateway-image IMAGE                  image of gateways that do not name one (env GATEWAY_IMAGE)
          --sync-period DUR                      reconcile every resource this often even without changes (default 10h)
          --help                                 print this help

        Durations are written like 500ms, 15s, 1m30s.
        Traces: the gateway's OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, ...; see
        docs/configuration.md) export one span per reconcile; invalid values exit 2.
        """

    struct ParseError: Error, Equatable, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Parses `arguments` (without the program name). `environment` supplies LOG_LEVEL.
    static func parse(_ arguments: [String], environment: [String: String] = [:]) throws(ParseError) -> OperatorOptions {
        var o = OperatorOptions()
        if let level = environment["LOG_LEVEL"], !level.isEmpty { o.logLevel = level }
        if let image = environment["GATEWAY_IMAGE"], !image.isEmpty { o.gatewayImage = image }
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            guard arg.hasPrefix("--"), arg.count > 2 else {
                throw ParseError(message: "unexpected argument \"\(arg)\" (flags start with --; see --help)")
            }
            var name = String(arg.dropFirst(2))
            var inlineValue: String?
            if let eq = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            func value() throws(ParseError) -> String {
                if let inlineValue { return inlineValue }
                guard i < arguments.count else { throw ParseError(message: "flag --\(name) needs a value") }
                defer { i += 1 }
                return arguments[i]
            }
            func duration() throws(ParseError) -> Duration {
                let text = try value()
                guard let d = GoDuration.parse(text), d > .zero else {
                    throw ParseError(message: "flag --\(name): \"\(text)\" is not a positive duration (e.g. 500ms, 15s, 1m)")
                }
                return d
            }
            switch name {
            case "help", "h": o.help = true
            case "kubeconfig": o.kubeconfig = try value()
            case "namespace":
                let ns = try value()
                o.namespace = ns.isEmpty ? nil : ns
            case "leader-elect":
                // A boolean flag: bare means true; a value must be inline (--leader-elect=false), as Go's flag package.
                switch inlineValue?.lowercased() {
                case nil, "true", "1": o.leaderElect = true
                case "false", "0": o.leaderElect = false
                default: throw ParseError(message: "flag --leader-elect: \"\(inlineValue!)\" is not true or false")
                }
            case "leader-election-namespace": o.leaderElectionNamespace = try value()
            case "leader-election-id":
                o.leaderElectionID = try value()
                if o.leaderElectionID.isEmpty { throw ParseError(message: "flag --leader-election-id must not be empty") }
            case "leader-election-lease-duration": o.leaseDuration = try duration()
            case "leader-election-renew-deadline": o.renewDeadline = try duration()
            case "leader-election-retry-period": o.retryPeriod = try duration()
            case "health-probe-bind-address": o.healthProbeBindAddress = try value()
            case "metrics-bind-address": o.metricsBindAddress = try value()
            case "workers":
                let text = try value()
                guard let n = Int(text), (1...256).contains(n) else {
                    throw ParseError(message: "flag --workers: \"\(text)\" is not a number between 1 and 256")
                }
                o.workers = n
            case "graceful-shutdown-timeout": o.gracefulShutdownTimeout = try duration()
            case "log-level": o.logLevel = try value()
            case "gateway-image":
                o.gatewayImage = try value()
                if o.gatewayImage.isEmpty { throw ParseError(message: "flag --gateway-image must not be empty") }
            case "sync-period": o.syncPeriod = try duration()
            default:
                throw ParseError(message: "unknown flag --\(name) (see --help)")
            }
        }
        guard ["debug", "info", "warn", "error"].contains(o.logLevel) else {
            throw ParseError(message: "log level \"\(o.logLevel)\" is not one of debug, info, warn, error (--log-level / LOG_LEVEL)")
        }
        if o.leaderElect, let problem = o.leaderElectionTimings.validate() {
            throw ParseError(message: problem + " (--leader-election-lease-duration / -renew-deadline / -retry-period)")
        }
        return o
    }

    /// The timing part of the leader-election configuration (namespace/identity filled in at startup).
    var leaderElectionTimings: LeaderElectionConfiguration {
        var c = LeaderElectionConfiguration(namespace: leaderElectionNamespace ?? "default", name: leaderElectionID,
                                            identity: "")
        c.leaseDuration = leaseDuration
        c.renewDeadline = renewDeadline
        c.retryPeriod = retryPeriod
        return c
    }
}

/// Go's `time.ParseDuration` subset used on the command line: one or more <number><unit> with units
/// ns, us, ms, s, m, h ("1m30s", "1.5s", "500ms"). Bounded: at most 64 characters.
enum GoDuration {
    static func parse(_ text: String) -> Duration? {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        if text == "0" { return .zero }
        var bytes = Array(text.utf8)[...]
        var totalNanos = 0.0
        while !bytes.isEmpty {
            let numberEnd = bytes.firstIndex { !(($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E) } ?? bytes.endIndex
            guard numberEnd > bytes.startIndex else { return nil }
            guard let number = Double(String(decoding: bytes[..<numberEnd], as: UTF8.self)) else { return nil }
            bytes = bytes[numberEnd...]
            let unitEnd = bytes.firstIndex { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E } ?? bytes.endIndex
            let unit = String(decoding: bytes[..<unitEnd], as: UTF8.self)
            bytes = bytes[unitEnd...]
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            totalNanos += number * scale
        }
        guard totalNanos.isFinite, totalNanos < 1e18 else { return nil }
        return .nanoseconds(Int64(totalNanos.rounded()))
    }
}
