import Shared

/// `encryption-gateway-operator healthcheck`: the image's `HEALTHCHECK`. Probes `GET /healthz` on the probe
/// address (`--health-probe-bind-address`, default :8081) over loopback.
enum HealthCheckCommand {
    static func run(arguments: [String]) -> Int32 {
        // The probe address is the one flag of the operator's own that matters here; everything else is the
        // shared healthcheck's.
        var probeAddress = OperatorOptions().healthProbeBindAddress
        var rest: [String] = []
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            i += 1
            if argument.hasPrefix("--health-probe-bind-address=") {
                probeAddress = String(argument.dropFirst("--health-probe-bind-address=".count))
            } else if argument == "--health-probe-bind-address", i < arguments.count {
                probeAddress = arguments[i]
                i += 1
            } else {
                rest.append(argument)
            }
        }
        return HealthCheck.run(program: "encryption-gateway-operator", arguments: rest) { () throws(HealthCheck.UsageError) in
            do throws(HTTPServerError) {
                return HealthCheck.localURL(listen: try ListenAddress(parsing: probeAddress), path: "/healthz")
            } catch {
                throw HealthCheck.UsageError(message: "--health-probe-bind-address: \(error.message)")
            }
        }
    }
}
