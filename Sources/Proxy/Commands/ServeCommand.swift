import Foundation
import Shared

/// `s3-encryption-gateway [serve]`: load the configuration, start the server,
/// run until SIGTERM/SIGINT, then drain in-flight requests and exit 0.
enum ServeCommand {
    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        let config: GatewayConfiguration
        do {
            config = try GatewayConfiguration.load(environment: environment, arguments: arguments)
        } catch {
            printError("s3-encryption-gateway: \(error)\nRun with --help for the list of settings.")
            return 2
        }
        let logger = Logger(level: config.logLevel)
        let telemetry = GatewayTelemetry(logger: logger)

        let backend: BackendClient
        do {
            backend = try BackendClient(gateway: config)
        } catch {
            printError("s3-encryption-gateway: invalid configuration: BACKEND_ENDPOINT: \(error)")
            return 2
        }

        let handler = S3RequestHandler(
            gateway: GatewayEndpointsHandler(backend: backend, telemetry: telemetry),
            verifier: SigV4Verifier(credentials: StaticCredentials(accessKey: config.gatewayAccessKey,
                                                                   secretKey: config.gatewaySecretKey)),
            backend: backend, observer: telemetry, baseDomains: config.gatewayDomains)

        let server: HTTPServer
        do {
            server = try HTTPServer(
                configuration: HTTPServerConfiguration(
                    listenAddress: config.listenAddress.description, maxConnections: config.maxConnections,
                    idleTimeout: config.requestTimeout, bodyIdleTimeout: config.requestTimeout),
                handler: handler, observer: telemetry)
            try server.start()
        } catch {
            logger.error("cannot start", ["error": .string("\(error)")])
            printError("s3-encryption-gateway: \(error)")
            return 1
        }

        if config.passthrough {
            logger.warn("pass-through mode: objects are stored UNENCRYPTED (GATEWAY_PASSTHROUGH=true)")
        }
        logger.info("listening", [
            "addr": .string(server.boundAddress),
            "backend": .string(config.backendEndpoint.absoluteString),
            "region": .string(config.backendRegion),
            "max_connections": .int(config.maxConnections),
            "passthrough": .bool(config.passthrough),
        ])

        let stopped = DispatchSemaphore(value: 0)
        let watcher = SignalWatcher.start(signals: [SIGTERM, SIGINT]) { signal in
            logger.info("shutting down", ["signal": .string(signal == SIGTERM ? "SIGTERM" : "SIGINT"),
                                          "grace_seconds": .int(Int(config.shutdownGracePeriod.components.seconds))])
            server.shutdown(grace: config.shutdownGracePeriod)
            stopped.signal()
        }
        stopped.wait()
        _ = watcher
        logger.info("stopped")
        return 0
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
