import Shared

/// `s3-encryption-gateway healthcheck`: the image's `HEALTHCHECK`. Probes `GET /health` on the address the
/// gateway listens on (`LISTEN_ADDR`, default :8080), over loopback.
enum HealthCheckCommand {
    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        HealthCheck.run(program: "s3-encryption-gateway", arguments: arguments) { () throws(HealthCheck.UsageError) in
            try defaultURL(environment: environment)
        }
    }

    static func defaultURL(environment: [String: String]) throws(HealthCheck.UsageError) -> String {
        var listen = GatewayConfiguration.defaultListenAddress
        if let text = environment[GatewaySetting.listenAddress.rawValue], !text.isEmpty {
            do throws(HTTPServerError) {
                listen = try ListenAddress(parsing: text)
            } catch {
                throw HealthCheck.UsageError(message: "\(GatewaySetting.listenAddress.rawValue): \(error.message)")
            }
        }
        return HealthCheck.localURL(listen: listen, path: "/health")
    }
}
