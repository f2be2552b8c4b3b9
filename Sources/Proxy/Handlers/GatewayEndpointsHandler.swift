import Shared

/// `/health`, `/ready` and `/metrics`: answered only for anonymous requests
/// (see `GatewayRoute`), so a bucket named `health` stays reachable with a signed request.
struct GatewayEndpointsHandler: GatewayEndpoints {
    let backend: BackendClient
    let telemetry: GatewayTelemetry
    /// The backend counts as up when it answered anything within this window.
    let readinessWindow: Duration = .seconds(5)
    /// The key managers the gateway uses (nil: none); each unreachable one makes the gateway not ready.
    var keys: KeyService? = nil

    func serve(_ endpoint: GatewayRoute.Endpoint, head: HTTPRequestHead, response: ResponseWriter, context: RequestContext) {
        var headers = HTTPFields()
        let status: Int
        let body: [UInt8]
        switch endpoint {
        case .health:
            status = 200
            body = Array("ok\n".utf8)
            headers.add("Content-Type", "text/plain; charset=utf-8")
        case .ready:
            var (ready, reason) = backendReady()
            if ready, let problems = keys?.providerHealth().compactMap({ item in item.problem.map { "key provider \(item.provider): \($0)" } }),
               !problems.isEmpty {
                ready = false
                reason = problems.joined(separator: "; ")
            }
            status = ready ? 200 : 503
            body = Array((ready ? "ready\n" : "not ready: \(reason)\n").utf8)
            headers.add("Content-Type", "text/plain; charset=utf-8")
        case .metrics:
            status = 200
            body = Array(telemetry.registry.exposition().utf8)
            headers.add("Content-Type", MetricsRegistry.contentType)
        }
        headers.add("Cache-Control", "no-store")
        if head.method == "HEAD" {
            try? response.writeHead(HTTPResponseHead(status: status, headers: headers, contentLength: Int64(body.count)))
            try? response.finish()
        } else {
            try? response.respond(status: status, headers: headers, body: body)
        }
    }

    /// Ready when the backend answered recently; otherwise one cheap signed probe decides.
    private func backendReady() -> (Bool, String) {
        if backend.health.answered(within: readinessWindow) { return (true, "") }
        do {
            _ = try backend.probe(timeout: .seconds(2))
            return (true, "")
        } catch {
            telemetry.backendErrors.inc()
            telemetry.logger.warn("backend not reachable", ["error": .string("\(error)")])
            return (false, "backend not reachable: \(error)")
        }
    }
}
