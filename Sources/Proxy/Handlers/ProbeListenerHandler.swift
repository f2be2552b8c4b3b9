import Shared

/// The `PROBE_ADDR` listener: `/health`, `/ready` and `/metrics` only (plain HTTP, no credentials), so that
/// kubelet probes and scrapes never compete with S3 clients for the main listener's connections.
struct ProbeListenerHandler: HTTPRequestHandler {
    let gateway: any GatewayEndpoints

    func handle(_ head: HTTPRequestHead, body: RequestBody, response: ResponseWriter, context: RequestContext) throws {
        let route = GatewayRoute.decide(method: head.method, rawPath: head.rawPath, rawQuery: head.rawQuery, headers: head.headers)
        if case .gateway(let endpoint) = route {
            gateway.serve(endpoint, head: head, response: response, context: context)
            return
        }
        let text = Array("only /health, /ready and /metrics are served here\n".utf8)
        try response.respond(status: 404, headers: ["Content-Type": "text/plain; charset=utf-8"],
                             body: head.method == "HEAD" ? [] : text)
    }
}
