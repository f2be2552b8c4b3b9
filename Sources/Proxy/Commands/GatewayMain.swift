import Foundation
import Shared

/// Entry point of `s3-encryption-gateway`.
@main
struct GatewayMain {
    static let usage = """
        s3-encryption-gateway: a transparent S3 proxy that encrypts objects before they reach the backend.

        usage:
          s3-encryption-gateway [serve] [options]     run the gateway (the default)
          s3-encryption-gateway bench-engine [opts]   measure the encryption engine in process
          s3-encryption-gateway rotate --bucket B     re-wrap data keys under another key or provider (rotate --help)
          s3-encryption-gateway decrypt --bucket B --key K   offline decryption (decrypt --help)
          s3-encryption-gateway healthcheck [--url U]  probe the running gateway's /health (the image's HEALTHCHECK)
          s3-encryption-gateway --version
          s3-encryption-gateway --help

        """

    /// The proxy variables (environment only): every outgoing HTTP(S) connection but KMIP's follows them.
    static var proxyHelp: String {
        "\nOutgoing proxy (environment only; backend, AWS KMS, Vault, OTLP; not KMIP):\n"
            + ProxyEnvironment.settings.map { "  \($0.name)\n      \($0.summary)\n" }.joined()
    }

    /// The OpenTelemetry variables (environment only; docs/monitoring.md#traces).
    static var tracingHelp: String {
        "\nTracing (OpenTelemetry, environment only):\n"
            + TracingConfiguration.settings.map { "  \($0.name)\n      \($0.summary)\n" }.joined()
    }

    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        let environment = ProcessInfo.processInfo.environment
        switch arguments.first {
        case "rotate":
            exit(RotateCommand.run(arguments: Array(arguments.dropFirst()), environment: environment))
        case "decrypt":
            exit(DecryptCommand.run(arguments: Array(arguments.dropFirst()), environment: environment))
        case "healthcheck":
            exit(HealthCheckCommand.run(arguments: Array(arguments.dropFirst()), environment: environment))
        case "version", "--version":
            print("s3-encryption-gateway \(BuildInfo.version)")
            exit(0)
        default:
            break
        }
        if arguments.contains("--help") || arguments.contains("-h") {
            print(usage + GatewayConfiguration.helpText(program: "s3-encryption-gateway serve") + proxyHelp + tracingHelp)
            exit(0)
        }
        switch arguments.first {
        case "bench-engine":
            exit(runEngineBenchmark(arguments: Array(arguments.dropFirst())))
        case "serve":
            arguments.removeFirst()
            exit(ServeCommand.run(arguments: arguments, environment: environment))
        default:
            exit(ServeCommand.run(arguments: arguments, environment: environment))
        }
    }
}
