import Shared

/// Serves the manager's HTTP endpoints: `/healthz` (the process is alive), `/readyz` (informer caches synced)
/// and `/metrics` (Prometheus text). One instance per listener; `routes` picks which paths it answers.
struct ProbeHandler: HTTPRequestHandler {
    struct Routes: OptionSet, Sendable {
        let rawValue: Int
        static let probes = Routes(rawValue: 1)
        static let metrics = Routes(rawValue: 2)
    }

    var routes: Routes
    var isReady: @Sendable () -> Bool
    var metricsText: @Sendable () -> String

    func handle(_ head: HTTPRequestHead, body: RequestBody, response: ResponseWriter, context: RequestContext) throws {
        guard head.method == "GET" else {
            try respond(response, head, 405, "method not allowed\n", extra: ["Allow": "GET"])
            return
        }
        switch head.rawPath {
        case "/healthz" where routes.contains(.probes):
            try respond(response, head, 200, "ok\n")
        case "/readyz" where routes.contains(.probes):
            if isReady() {
                try respond(response, head, 200, "ok\n")
            } else {
                try respond(response, head, 503, "informer caches not synced\n")
            }
        case "/metrics" where routes.contains(.metrics):
            try respond(response, head, 200, metricsText(), contentType: MetricsRegistry.contentType)
        default:
            try respond(response, head, 404, "not found\n")
        }
    }

    private func respond(_ response: ResponseWriter, _ head: HTTPRequestHead, _ status: Int, _ text: String,
                         contentType: String = "text/plain; charset=utf-8", extra: [String: String] = [:]) throws {
        var headers: HTTPFields = ["Content-Type": contentType]
        for (k, v) in extra { headers.add(k, v) }
        try response.respond(status: status, headers: headers, body: Array(text.utf8))
    }
}
