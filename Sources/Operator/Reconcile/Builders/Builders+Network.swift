import Foundation

extension Builders {
    static func service(_ s: Snapshot) -> JSONValue {
        let spec = s.spec
        var serviceSpec: [String: JSONValue] = [
            "type": .string(spec.service.type),
            "selector": stringMap(selectorLabels(s.resource)),
            "ports": [[
                "name": .string(portName), "port": .integer(Int64(spec.service.port)), "targetPort": .string(portName), "protocol": "TCP",
            ]],
        ]
        // Only when set, so that the API server's defaults stay out of the operator's fields.
        if !spec.service.loadBalancerSourceRanges.isEmpty {
            serviceSpec["loadBalancerSourceRanges"] = .array(spec.service.loadBalancerSourceRanges.map { .string($0) })
        }
        if let policy = spec.service.externalTrafficPolicy { serviceSpec["externalTrafficPolicy"] = .string(policy) }
        return object(.services, metadata: metadata(s, name: s.resource.name, annotations: spec.service.annotations),
                      ["spec": .object(serviceSpec)])
    }

    /// The probe listener's own ClusterIP Service, for the ServiceMonitor (`metricsPort`); nil when it does not
    /// scrape there.
    static func probesService(_ s: Snapshot) -> JSONValue? {
        guard let port = metricsPort(s.spec) else { return nil }
        return object(.services, metadata: metadata(s, name: probesServiceName(s.resource), labels: [serviceRoleLabel: probePortName]), [
            "spec": [
                "type": "ClusterIP",
                "selector": stringMap(selectorLabels(s.resource)),
                "ports": [["name": .string(probePortName), "port": .integer(Int64(port)), "targetPort": .string(probePortName),
                           "protocol": "TCP"]],
            ],
        ])
    }

    /// The TCP port an http(s) URL connects to: its own, else 80 for http and 443 for anything else.
    static func port(ofURL text: String) -> Int {
        guard let url = URL(string: text) else { return 443 }
        if let port = url.port { return port }
        return url.scheme?.lowercased() == "http" ? 80 : 443
    }

    /// The backend's TCP ports: the configured ones, else the endpoint URL's port (443 for https, 80 for http).
    static func backendPorts(_ spec: EncryptionGatewaySpec) -> [Int] {
        if !spec.networkPolicy.backendPorts.isEmpty { return spec.networkPolicy.backendPorts }
        return [port(ofURL: spec.backend.endpoint)]
    }

    /// The proxy's TCP port: the configured one, else its URL's port (80 for http, 443 for https); nil without a
    /// proxy. (A URL from a Secret always comes with its port: a rule of `ProxySpec`.)
    static func proxyPort(_ proxy: ProxySpec?) -> Int? {
        guard let proxy else { return nil }
        return proxy.port ?? proxy.url.map { port(ofURL: $0) }
    }

    static func networkPolicy(_ s: Snapshot) -> JSONValue? {
        let np = s.spec.networkPolicy
        guard np.enabled else { return nil }
        var peers: [JSONValue] = np.allowedClients.map { client in
            var p: [String: JSONValue] = [:]
            if let ns = client.namespaceSelector { p["namespaceSelector"] = ns.value }
            if let pods = client.podSelector { p["podSelector"] = pods.value }
            return .object(p)
        }.filter { $0.object?.isEmpty == false }
        // No listed clients: the gateway's own namespace.
        if peers.isEmpty { peers = [["podSelector": [:]]] }
        var egress: [JSONValue] = [[
            "to": .array(np.backendCIDRs.map { ["ipBlock": ["cidr": .string($0)]] }),
            "ports": .array(backendPorts(s.spec).map { ["protocol": "TCP", "port": .integer(Int64($0))] }),
        ]]
        let keyPorts = keyManagerPorts(s.spec.encryption)
        if !keyPorts.isEmpty {
            egress.append([
                "to": .array(np.keyManagerCIDRs.map { ["ipBlock": ["cidr": .string($0)]] }),
                "ports": .array(keyPorts.map { ["protocol": "TCP", "port": .integer(Int64($0))] }),
            ])
        }
        if let port = proxyPort(s.spec.proxy) {
            egress.append([
                "to": .array(np.proxyCIDRs.map { ["ipBlock": ["cidr": .string($0)]] }),
                "ports": [["protocol": "TCP", "port": .integer(Int64(port))]],
            ])
        }
        if let endpoint = s.spec.tracing?.endpoint {
            egress.append([
                "to": .array(np.collectorCIDRs.map { ["ipBlock": ["cidr": .string($0)]] }),
                "ports": [["protocol": "TCP", "port": .integer(Int64(port(ofURL: endpoint)))]],
            ])
        }
        if np.allowDNS {
            // DNS may be a cluster Service or a node-local cache, so port 53 is open to any destination.
            egress.append(["ports": [["protocol": "UDP", "port": 53], ["protocol": "TCP", "port": 53]]])
        }
        // The clients reach the gateway port; Prometheus (one of them) also the probe listener when it scrapes there.
        let ingressPorts = [containerPort] + (metricsPort(s.spec).map { [$0] } ?? [])
        return object(.networkPolicies, metadata: metadata(s, name: s.resource.name), [
            "spec": [
                "podSelector": ["matchLabels": stringMap(selectorLabels(s.resource))],
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [["from": .array(peers), "ports": .array(ingressPorts.map { ["protocol": "TCP", "port": .integer(Int64($0))] })]],
                "egress": .array(egress),
            ],
        ])
    }

    static func ingress(_ s: Snapshot) -> JSONValue? {
        let ing = s.spec.ingress
        guard ing.enabled, let resource = s.capabilities.ingress ?? Optional(.ingresses) else { return nil }
        var spec: [String: JSONValue] = [
            "rules": [[
                "host": .string(ing.host),
                "http": ["paths": [[
                    "path": .string(ing.path), "pathType": "Prefix",
                    "backend": ["service": ["name": .string(s.resource.name),
                                            "port": ["number": .integer(Int64(s.spec.service.port))]]],
                ]]],
            ]],
        ]
        if !ing.className.isEmpty { spec["ingressClassName"] = .string(ing.className) }
        if !ing.tlsSecretName.isEmpty {
            spec["tls"] = [["hosts": [.string(ing.host)], "secretName": .string(ing.tlsSecretName)]]
        }
        return object(resource, metadata: metadata(s, name: s.resource.name, annotations: ing.annotations),
                      ["spec": .object(spec)])
    }

    static func serviceMonitor(_ s: Snapshot) -> JSONValue? {
        let sm = s.spec.serviceMonitor
        guard sm.enabled else { return nil }
        // The probe listener's Service when there is one (plain HTTP), else the client Service's gateway port.
        let probes = metricsPort(s.spec) != nil
        var selector = selectorLabels(s.resource)
        if probes { selector[serviceRoleLabel] = probePortName }
        let https = !probes && !s.spec.tls.secretName.isEmpty
        var endpoint: [String: JSONValue] = [
            "port": .string(probes ? probePortName : portName), "path": "/metrics", "interval": .string(sm.interval),
            "scheme": .string(https ? "https" : "http"),
        ]
        if https, let tls = sm.tlsConfig { endpoint["tlsConfig"] = tls.value }
        return object(s.capabilities.serviceMonitor ?? .serviceMonitors,
                      metadata: metadata(s, name: s.resource.name, labels: sm.labels), [
            "spec": [
                "selector": ["matchLabels": stringMap(selector)],
                "namespaceSelector": ["matchNames": [.string(s.resource.namespace)]],
                "endpoints": [.object(endpoint)],
            ],
        ])
    }
}
