import Foundation
import Shared

/// Entry point of `encryption-gateway-operator`.
@main
struct OperatorMain {
    static func main() {
        let environment = ProcessInfo.processInfo.environment
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "crd":
            print(EncryptionGatewayCRD.yaml, terminator: "")
            exit(0)
        case "render":
            do {
                let yaml = try RenderCommand.render(Array(arguments.dropFirst()), environment: environment) { path in
                    if path == "-" { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
                    guard let data = FileManager.default.contents(atPath: path) else {
                        throw RenderCommand.Failure(message: "no such file", code: 1)
                    }
                    return Array(data)
                }
                print(yaml, terminator: "")
                exit(0)
            } catch {
                let prefix = error.code == 0 ? "" : "encryption-gateway-operator render: "
                FileHandle.standardError.write(Data((prefix + error.message + "\n").utf8))
                exit(error.code)
            }
        case "healthcheck": exit(HealthCheckCommand.run(arguments: Array(arguments.dropFirst())))
        case "version", "--version":
            print("encryption-gateway-operator \(BuildInfo.version)")
            exit(0)
        default: break
        }
        let options: OperatorOptions
        do {
            options = try OperatorOptions.parse(arguments, environment: environment)
        } catch {
            FileHandle.standardError.write(Data("encryption-gateway-operator: \(error.message)\n".utf8))
            exit(2)
        }
        if options.help {
            print(OperatorOptions.usage)
            exit(0)
        }
        let tracing: TracingConfiguration
        do {
            tracing = try TracingConfiguration.fromEnvironment(environment, serviceName: "encryption-gateway-operator")
        } catch {
            FileHandle.standardError.write(Data("encryption-gateway-operator: \(error)\n".utf8))
            exit(2)
        }
        let logger = Logger(level: LogLevel(options.logLevel) ?? .info)
        let log = LoggerRuntimeLog(logger: logger)
        // A parent may hand us SIGTERM/SIGINT blocked (signal masks are inherited across exec); unblock them here,
        // before any thread exists, or graceful shutdown would never start.
        var termination = sigset_t()
        sigemptyset(&termination)
        sigaddset(&termination, SIGTERM)
        sigaddset(&termination, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &termination, nil)
        let shutdown = ShutdownRelay()
        SignalWatcher.start(signals: [SIGTERM, SIGINT]) { signal in
            // A second signal means "now": skip the drain, as controller-runtime does.
            if shutdown.hasFired { exit(1) }
            log.info("received signal, shutting down", ["signal": signal == SIGTERM ? "SIGTERM" : "SIGINT"])
            shutdown.fire()
        }
        exit(RunCommand.run(options, tracing: tracing, logger: logger, log: log, shutdown: shutdown))
    }
}
