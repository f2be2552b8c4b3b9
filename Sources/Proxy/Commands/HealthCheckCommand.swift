import Shared

/// `s3-encryption-gateway healthcheck`: the image's `HEALTHCHECK`. Probes `GET /health` on the address the
/// gateway listens on (`LISTEN_ADDR`, default :8080; HTTPS when `TLS_CERT_FILE` is set), over loopback.
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
        // With TLS_CERT_FILE the listener speaks HTTPS; the probe does not verify the certificate (it asks its
        // own process on loopback whether it is alive).
        let tls = !(environment[GatewaySetting.tlsCertFile.rawValue] ?? "").isEmpty
        return HealthCheck.localURL(listen: listen, path: "/health", scheme: tls ? "https" : "http")
    }
}
