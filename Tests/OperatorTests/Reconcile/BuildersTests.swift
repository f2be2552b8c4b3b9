import Foundation
import Shared
import Testing
@testable import Operator

/// Table tests of the pure builders: every spec option lands where it should, defaults, features on/off.
@Suite struct BuildersTests {
    static func snapshot(_ mutate: (inout JSONValue) -> Void = { _ in }, labels: [String: String] = [:],
                         capabilities: ClusterCapabilities = .current) -> Snapshot {
        var spec = APITypesTests.minimalSpec
        mutate(&spec)
        var metadata: JSONValue = ["name": "gw", "namespace": "ns", "uid": "uid-1", "generation": 4]
        if !labels.isEmpty { metadata["labels"] = .object(labels.mapValues(JSONValue.string)) }
        let (resource, problems) = GatewayResource.parse(["metadata": metadata, "spec": spec])
        #expect(problems == [])
        return Snapshot(resource: resource, secretHash: "hash-1", capabilities: capabilities, defaultImage: "img:default")
    }

    static func child(_ s: Snapshot, _ kind: ChildKind) -> JSONValue? {
        Builders.all(s).first { $0.kind == kind }?.object
    }

    static func container(_ s: Snapshot) -> JSONValue? {
        child(s, .deployment)?[path: "spec", "template", "spec", "containers"]?[0]
    }

    static func env(_ s: Snapshot) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for e in container(s)?["env"]?.array ?? [] { out[e["name"]!.string!] = e["valueFrom"] }
        return out
    }

    @Test func defaultsProduceTheDesignedFleet() throws {
        let s = Self.snapshot()
        let kinds = Builders.all(s).filter { $0.object != nil }.map(\.kind)
        #expect(kinds == [.configMap, .deployment, .service, .pdb, .networkPolicy])
        let d = try #require(Self.child(s, .deployment))
        #expect(d[path: "spec", "replicas"] == 3)
        #expect(d[path: "spec", "strategy", "rollingUpdate"] == ["maxUnavailable": 1, "maxSurge": 1])
        let pod = try #require(d[path: "spec", "template", "spec"])
        #expect(pod["automountServiceAccountToken"] == false)
        #expect(pod["terminationGracePeriodSeconds"] == 45)  // 30 s drain + 15 s
        #expect(pod[path: "securityContext", "seccompProfile", "type"] == "RuntimeDefault")
        #expect(pod[path: "securityContext", "runAsNonRoot"] == true)
        let c = try #require(Self.container(s))
        #expect(c["image"] == "img:default")
        #expect(c[path: "securityContext"] == [
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
            "runAsUser": 65534, "runAsGroup": 65534, "capabilities": ["drop": ["ALL"]],
            "seccompProfile": ["type": "RuntimeDefault"],
        ])
        #expect(c[path: "livenessProbe", "httpGet", "path"] == "/health")
        #expect(c[path: "readinessProbe", "httpGet", "path"] == "/ready")
        #expect(c[path: "ports"]?[0]?["containerPort"] == 8080)
        #expect(c[path: "resources"] == ["requests": ["cpu": "100m", "memory": "128Mi"], "limits": ["cpu": "500m", "memory": "512Mi"]])
        #expect(pod["topologySpreadConstraints"]?[0]?["topologyKey"] == "topology.kubernetes.io/zone")
        #expect(pod["topologySpreadConstraints"]?[0]?["whenUnsatisfiable"] == "ScheduleAnyway")
        let annotations = try #require(d[path: "spec", "template", "metadata", "annotations"])
        #expect(annotations[Builders.secretHashAnnotation] == "hash-1")
        #expect(annotations[Builders.configHashAnnotation]?.string?.count == 64)
        let svc = try #require(Self.child(s, .service))
        #expect(svc[path: "spec", "ports"]?[0] == ["name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"])
        #expect(svc[path: "spec", "type"] == "ClusterIP")
        #expect(Self.child(s, .pdb)?[path: "spec", "maxUnavailable"] == 1)
    }

    @Test func environmentUsesExactlyTheGatewaysVariableNames() throws {
        let s = Self.snapshot()
        let env = Self.env(s)
        let known = Set(GatewaySetting.allCases.map(\.rawValue))
        #expect(Set(env.keys).isSubset(of: known))
        #expect(env["BACKEND_SECRET_KEY"] == ["secretKeyRef": ["name": "b", "key": "secretAccessKey"]])
        #expect(env["ENCRYPTION_PASSWORD"] == ["secretKeyRef": ["name": "e", "key": "password"]])
        #expect(env["GATEWAY_ACCESS_KEY"] == ["secretKeyRef": ["name": "c", "key": "accessKeyID"]])
        #expect(env["BACKEND_ENDPOINT"] == ["configMapKeyRef": ["name": "gw-config", "key": "BACKEND_ENDPOINT"]])
        // Every ConfigMap key is a setting the gateway reads, and is referenced by the container.
        let data = try #require(Self.child(s, .configMap)?["data"]?.object)
        #expect(Set(data.keys).isSubset(of: known))
        for key in data.keys { #expect(env[key]?["configMapKeyRef"] != nil, "\(key) is not passed to the container") }
        #expect(data["BACKEND_ENDPOINT"] == "https://s3.example.com" && data["LISTEN_ADDR"] == ":8080")
        // Optional settings appear only when used.
        #expect(env["ENCRYPTION_PREVIOUS_PASSWORDS"] == nil && env["BACKEND_CA_FILE"] == nil && env["GATEWAY_DOMAINS"] == nil)
        // The connection budgets keep the gateway's defaults (not rendered, so an operator upgrade rolls no pods),
        // and the probes share the gateway port.
        #expect(env["AUTH_TIMEOUT"] == nil && env["MAX_UNAUTHENTICATED_CONNECTIONS"] == nil && env["PROBE_ADDR"] == nil)
        let c = try #require(Self.container(s))
        #expect(c["ports"]?.array?.count == 1)
        #expect(c[path: "livenessProbe", "httpGet", "port"] == "http" && c[path: "readinessProbe", "httpGet", "port"] == "http")
    }

    /// (option set in the spec, check on the built children)
    static let options: [(String, @Sendable (inout JSONValue) -> Void, @Sendable (Snapshot) -> Bool)] = [
        ("image", { $0["image"] = "my/img:1" }, { container($0)?["image"] == "my/img:1" }),
        ("imagePullPolicy", { $0["imagePullPolicy"] = "Always" }, { container($0)?["imagePullPolicy"] == "Always" }),
        ("replicas", { $0["replicas"] = 7 }, { child($0, .deployment)?[path: "spec", "replicas"] == 7 }),
        ("region", { $0["backend"]?["region"] = "eu-west-1" }, { child($0, .configMap)?[path: "data", "BACKEND_REGION"] == "eu-west-1" }),
        ("custom credential keys", { $0["backend"]?["credentialsSecretRef"] = ["name": "b", "accessKeyIDKey": "ak", "secretAccessKeyKey": "sk"] },
         { env($0)["BACKEND_ACCESS_KEY"] == ["secretKeyRef": ["name": "b", "key": "ak"]] && env($0)["BACKEND_SECRET_KEY"]?[path: "secretKeyRef", "key"] == "sk" }),
        ("CA secret", { $0["backend"]?["caSecretRef"] = ["name": "ca", "key": "bundle.pem"] }, { s in
            let pod = child(s, .deployment)?[path: "spec", "template", "spec"]
            let volume = pod?["volumes"]?.array?.first { $0["name"] == "backend-ca" }
            return volume?[path: "secret", "secretName"] == "ca" && volume?[path: "secret", "items"]?[0]?["key"] == "bundle.pem"
                && container(s)?["volumeMounts"]?.array?.contains { $0["mountPath"] == "/etc/s3gateway/backend-ca" && $0["readOnly"] == true } == true
                && child(s, .configMap)?[path: "data", "BACKEND_CA_FILE"] == "/etc/s3gateway/backend-ca/ca.crt"
                && env(s)["BACKEND_CA_FILE"] != nil
        }),
        ("insecure skip verify", { $0["backend"]?["insecureSkipVerify"] = true },
         { child($0, .configMap)?[path: "data", "BACKEND_TLS_INSECURE_SKIP_VERIFY"] == "true" }),
        ("upload checksum", { $0["backend"]?["uploadChecksum"] = "crc32" },
         { child($0, .configMap)?[path: "data", "BACKEND_UPLOAD_CHECKSUM"] == "crc32" }),
        ("previous passwords", { $0["encryption"]?["previousPasswordsSecretRef"] = ["name": "e", "key": "old"] },
         { env($0)["ENCRYPTION_PREVIOUS_PASSWORDS"] == ["secretKeyRef": ["name": "e", "key": "old"]] }),
        ("cipher and chunk size", { $0["encryption"]?["cipher"] = "chacha20-poly1305"; $0["encryption"]?["chunkSize"] = 8192 }, {
            child($0, .configMap)?[path: "data", "ENCRYPTION_CIPHER"] == "chacha20-poly1305"
                && child($0, .configMap)?[path: "data", "ENCRYPTION_CHUNK_SIZE"] == "8192" }),
        ("domains", { $0["domains"] = ["s3.a.example", "s3.b.example"] },
         { child($0, .configMap)?[path: "data", "GATEWAY_DOMAINS"] == "s3.a.example,s3.b.example" }),
        ("log level, connections, timeouts", {
            $0["logLevel"] = "debug"; $0["maxConnections"] = 10; $0["requestTimeout"] = "5m"; $0["shutdownGracePeriod"] = "2m"
        }, { s in
            let d = child(s, .configMap)?["data"]
            return d?["LOG_LEVEL"] == "debug" && d?["MAX_CONNECTIONS"] == "10" && d?["REQUEST_TIMEOUT"] == "5m"
                && d?["SHUTDOWN_GRACE_PERIOD"] == "2m"
                && child(s, .deployment)?[path: "spec", "template", "spec", "terminationGracePeriodSeconds"] == 135
        }),
        ("connection budgets", { $0["authTimeout"] = "30s"; $0["maxUnauthenticatedConnections"] = 64 }, { s in
            let d = child(s, .configMap)?["data"]
            return d?["AUTH_TIMEOUT"] == "30s" && d?["MAX_UNAUTHENTICATED_CONNECTIONS"] == "64"
                && env(s)["AUTH_TIMEOUT"]?["configMapKeyRef"] != nil && env(s)["MAX_UNAUTHENTICATED_CONNECTIONS"]?["configMapKeyRef"] != nil
        }),
        ("probe port, with TLS on the gateway port", { $0["probes"] = ["port": 8081]; $0["tls"] = ["secretName": "gw-tls"] }, { s in
            let c = container(s)
            let np = child(s, .networkPolicy)?["spec"]
            return child(s, .configMap)?[path: "data", "PROBE_ADDR"] == ":8081" && env(s)["PROBE_ADDR"]?["configMapKeyRef"] != nil
                && c?["ports"] == [["name": "http", "containerPort": 8080, "protocol": "TCP"],
                                   ["name": "probes", "containerPort": 8081, "protocol": "TCP"]]
                // The probe listener is plain HTTP whatever the gateway port speaks.
                && c?[path: "livenessProbe", "httpGet"] == ["path": "/health", "port": "probes", "scheme": "HTTP"]
                && c?[path: "readinessProbe", "httpGet"] == ["path": "/ready", "port": "probes", "scheme": "HTTP"]
                // Not offered to clients: not in the Service, not opened by the NetworkPolicy (the kubelet's
                // probes come from the pod's node, which NetworkPolicies do not filter).
                && child(s, .service)?[path: "spec", "ports"]?.array?.count == 1
                && np?["ingress"] == [["from": [["podSelector": [:]]], "ports": [["protocol": "TCP", "port": 8080]]]]
        }),
        ("resources", { $0["resources"] = ["requests": ["cpu": "1"], "limits": [:]] },
         { container($0)?["resources"] == ["requests": ["cpu": "1"]] }),
        ("autoscaling on", { $0["autoscaling"] = ["enabled": true, "minReplicas": 2, "maxReplicas": 9, "targetMemoryUtilizationPercentage": 0] }, { s in
            let hpa = child(s, .hpa)
            return hpa?[path: "spec", "minReplicas"] == 2 && hpa?[path: "spec", "maxReplicas"] == 9
                && hpa?[path: "spec", "metrics"]?.array?.count == 1
                && hpa?[path: "spec", "metrics"]?[0]?[path: "resource", "target", "averageUtilization"] == 70
                && hpa?[path: "spec", "scaleTargetRef", "name"] == "gw"
                // The autoscaler owns the replica count: the Deployment does not send one.
                && child(s, .deployment)?[path: "spec", "replicas"] == nil
        }),
        ("PDB minAvailable", { $0["podDisruptionBudget"] = ["minAvailable": "50%"] },
         { child($0, .pdb)?[path: "spec"] == ["minAvailable": "50%", "selector": ["matchLabels": .object(Builders.selectorLabels($0.resource).mapValues(JSONValue.string))]] }),
        ("PDB off", { $0["podDisruptionBudget"] = ["enabled": false] }, { child($0, .pdb) == nil }),
        ("network policy off", { $0["networkPolicy"] = ["enabled": false] }, { child($0, .networkPolicy) == nil }),
        ("network policy peers, ports, DNS", { $0["networkPolicy"] = [
            "allowedClients": [["namespaceSelector": ["matchLabels": ["team": "a"]]], ["podSelector": ["matchLabels": ["app": "x"]]]],
            "backendCIDRs": ["10.0.0.0/8"], "backendPorts": [7480], "allowDNS": false,
        ] }, { s in
            let spec = child(s, .networkPolicy)?["spec"]
            return spec?["ingress"]?[0]?["from"] == [["namespaceSelector": ["matchLabels": ["team": "a"]]], ["podSelector": ["matchLabels": ["app": "x"]]]]
                && spec?["ingress"]?[0]?["ports"] == [["protocol": "TCP", "port": 8080]]
                && spec?["egress"] == [["to": [["ipBlock": ["cidr": "10.0.0.0/8"]]], "ports": [["protocol": "TCP", "port": 7480]]]]
        }),
        ("network policy defaults: same namespace, endpoint port, DNS", { $0["backend"]?["endpoint"] = "http://minio.storage:9000" }, { s in
            let spec = child(s, .networkPolicy)?["spec"]
            return spec?["ingress"]?[0]?["from"] == [["podSelector": [:]]]
                && spec?["egress"]?[0]?["ports"] == [["protocol": "TCP", "port": 9000]]
                && spec?["egress"]?[1] == ["ports": [["protocol": "UDP", "port": 53], ["protocol": "TCP", "port": 53]]]
                && spec?["policyTypes"] == ["Ingress", "Egress"]
        }),
        ("service type, port, annotations", { $0["service"] = ["type": "LoadBalancer", "port": 9000, "annotations": ["a": "b"]] }, { s in
            let svc = child(s, .service)
            return svc?[path: "spec", "type"] == "LoadBalancer" && svc?[path: "spec", "ports"]?[0]?["port"] == 9000
                && svc?[path: "metadata", "annotations", "a"] == "b"
                // Unset: left to the API server's defaults.
                && svc?[path: "spec", "externalTrafficPolicy"] == nil && svc?[path: "spec", "loadBalancerSourceRanges"] == nil
        }),
        ("load balancer source ranges, local traffic policy", { $0["service"] = [
            "type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24", "2001:db8::/32"], "externalTrafficPolicy": "Local",
        ] }, { s in
            let spec = child(s, .service)?["spec"]
            return spec?["loadBalancerSourceRanges"] == ["203.0.113.0/24", "2001:db8::/32"] && spec?["externalTrafficPolicy"] == "Local"
        }),
        ("ingress", { $0["ingress"] = ["enabled": true, "className": "nginx", "host": "s3.example.com", "tlsSecretName": "tls",
                                        "annotations": ["x": "y"]]; $0["service"] = ["port": 8000] }, { s in
            let ing = child(s, .ingress)
            return ing?[path: "spec", "ingressClassName"] == "nginx"
                && ing?[path: "spec", "tls"] == [["hosts": ["s3.example.com"], "secretName": "tls"]]
                && ing?[path: "spec", "rules"]?[0]?[path: "http", "paths"]?[0]?[path: "backend", "service"] == ["name": "gw", "port": ["number": 8000]]
                && ing?[path: "metadata", "annotations", "x"] == "y"
        }),
        ("service monitor", { $0["serviceMonitor"] = ["enabled": true, "interval": "10s", "labels": ["release": "p"]] }, { s in
            let sm = child(s, .serviceMonitor)
            return sm?["apiVersion"] == "monitoring.coreos.com/v1" && sm?[path: "metadata", "labels", "release"] == "p"
                && sm?[path: "spec", "endpoints"] == [["port": "http", "path": "/metrics", "interval": "10s", "scheme": "http"]]
        }),
        ("service monitor on the probe listener", {
            // tlsConfig is for HTTPS scrapes only: the probe listener speaks plain HTTP.
            $0["serviceMonitor"] = ["enabled": true, "tlsConfig": ["insecureSkipVerify": true]]; $0["probes"] = ["port": 8081]
            $0["tls"] = ["secretName": "gw-tls"]; $0["service"] = ["type": "LoadBalancer"]
        }, { s in
            // Scraped over plain HTTP on the probe listener, which a saturated gateway port never delays, through a
            // ClusterIP Service of its own (the metrics name buckets; the client Service here is a public load
            // balancer and keeps its one port); the NetworkPolicy opens the port to the allowed clients (Prometheus).
            let probes = Builders.all(s).first { $0.kind == .service && $0.name == "gw-probes" }?.object
            let selector = ["app.kubernetes.io/name": "s3-encryption-gateway", "s3gateway.dev/gateway": "gw"] as JSONValue
            return child(s, .serviceMonitor)?[path: "spec", "endpoints"] == [["port": "probes", "path": "/metrics", "interval": "30s", "scheme": "http"]]
                && child(s, .serviceMonitor)?[path: "spec", "selector", "matchLabels"]
                    == ["app.kubernetes.io/name": "s3-encryption-gateway", "s3gateway.dev/gateway": "gw", "s3gateway.dev/service": "probes"]
                && probes?[path: "metadata", "labels", "s3gateway.dev/service"] == "probes"
                && probes?[path: "spec"] == ["type": "ClusterIP", "selector": selector,
                                             "ports": [["name": "probes", "port": 8081, "targetPort": "probes", "protocol": "TCP"]]]
                && child(s, .service)?[path: "spec", "ports"] == [["name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"]]
                && child(s, .service)?[path: "metadata", "labels", "s3gateway.dev/service"] == nil
                && child(s, .networkPolicy)?[path: "spec", "ingress"]
                    == [["from": [["podSelector": [:]]], "ports": [["protocol": "TCP", "port": 8080], ["protocol": "TCP", "port": 8081]]]]
        }),
        ("service monitor on the gateway port, with TLS and its verification", {
            $0["serviceMonitor"] = ["enabled": true, "tlsConfig": ["ca": ["secret": ["name": "gw-tls", "key": "ca.crt"]], "serverName": "gw.ns.svc"]]
            $0["tls"] = ["secretName": "gw-tls"]
        }, { s in
            child(s, .serviceMonitor)?[path: "spec", "endpoints"] == [["port": "http", "path": "/metrics", "interval": "30s", "scheme": "https",
                                                                       "tlsConfig": ["ca": ["secret": ["name": "gw-tls", "key": "ca.crt"]],
                                                                                     "serverName": "gw.ns.svc"]]]
                && child(s, .serviceMonitor)?[path: "spec", "selector", "matchLabels", "s3gateway.dev/service"] == nil
                && Builders.all(s).first { $0.name == "gw-probes" }?.object == nil
        }),
        ("TLS on the listener", { $0["tls"] = ["secretName": "gw-tls"] }, { s in
            let pod = child(s, .deployment)?[path: "spec", "template", "spec"]
            let volume = pod?["volumes"]?.array?.first { $0["name"] == "tls" }
            let d = child(s, .configMap)?["data"]
            return volume?[path: "secret", "secretName"] == "gw-tls"
                && container(s)?["volumeMounts"]?.array?.contains { $0["mountPath"] == "/etc/s3gateway/tls" } == true
                && d?["TLS_CERT_FILE"] == "/etc/s3gateway/tls/tls.crt" && d?["TLS_KEY_FILE"] == "/etc/s3gateway/tls/tls.key"
                && env(s)["TLS_CERT_FILE"]?["configMapKeyRef"] != nil
                && container(s)?[path: "readinessProbe", "httpGet", "scheme"] == "HTTPS"
                && container(s)?[path: "livenessProbe", "httpGet", "scheme"] == "HTTPS"
        }),
        ("client credentials file, anonymous access, regions", {
            $0["clientCredentials"] = ["credentialsFileSecretRef": ["name": "creds", "key": "credentials.json"],
                                       "anonymousAccess": "forward", "regions": ["eu-west-1", "us-east-1"]]
        }, { s in
            let pod = child(s, .deployment)?[path: "spec", "template", "spec"]
            let volume = pod?["volumes"]?.array?.first { $0["name"] == "client-credentials" }
            let d = child(s, .configMap)?["data"]
            let uses = Builders.secretUses(s.spec).filter { $0.variable == GatewaySetting.gatewayCredentialsFile.rawValue }
            return volume?[path: "secret", "secretName"] == "creds"
                && volume?[path: "secret", "items"] == [["key": "credentials.json", "path": "credentials.json"]]
                && container(s)?["volumeMounts"]?.array?.contains { $0["mountPath"] == "/etc/s3gateway/credentials" && $0["readOnly"] == true } == true
                && d?["GATEWAY_CREDENTIALS_FILE"] == "/etc/s3gateway/credentials/credentials.json"
                && d?["ANONYMOUS_ACCESS"] == "forward" && d?["GATEWAY_REGIONS"] == "eu-west-1,us-east-1"
                && env(s)["GATEWAY_CREDENTIALS_FILE"]?["configMapKeyRef"] != nil
                && env(s)["GATEWAY_ACCESS_KEY"] == nil && env(s)["GATEWAY_SECRET_KEY"] == nil
                // The gateway reloads the file: a change of the Secret does not roll the pods.
                && uses.count == 1 && uses[0].mounted && !uses[0].rollsPods
        }),
        ("client key pair and credentials file together", {
            $0["clientCredentials"]?["credentialsFileSecretRef"] = ["name": "creds", "key": "c.json"]
        }, { s in
            env(s)["GATEWAY_ACCESS_KEY"]?[path: "secretKeyRef", "name"] == "c" && env(s)["GATEWAY_CREDENTIALS_FILE"] != nil
                && child(s, .configMap)?[path: "data", "ANONYMOUS_ACCESS"] == nil  // deny, the gateway's default
        }),
        ("topology spread off", { $0["topologySpread"] = ["enabled": false] },
         { child($0, .deployment)?[path: "spec", "template", "spec", "topologySpreadConstraints"] == nil }),
        ("scheduling", {
            $0["nodeSelector"] = ["disk": "ssd"]; $0["tolerations"] = [["key": "k", "operator": "Exists"]]
            $0["affinity"] = ["nodeAffinity": ["x": 1]]; $0["priorityClassName"] = "high"; $0["serviceAccountName"] = "sa"
        }, { s in
            let pod = child(s, .deployment)?[path: "spec", "template", "spec"]
            return pod?["nodeSelector"] == ["disk": "ssd"] && pod?["tolerations"] == [["key": "k", "operator": "Exists"]]
                && pod?["affinity"] == ["nodeAffinity": ["x": 1]] && pod?["priorityClassName"] == "high"
                && pod?["serviceAccountName"] == "sa"
        }),
        ("proxy URL and exclusions", {
            $0["proxy"] = ["url": "http://proxy.example.com:3128", "noProxy": [".svc", "10.0.0.0/8"]]
            $0["networkPolicy"] = ["proxyCIDRs": ["192.0.2.10/32"]]
        }, { s in
            let entries = container(s)?["env"]?.array ?? []
            let egress = child(s, .networkPolicy)?[path: "spec", "egress"]?.array ?? []
            return entries.contains(["name": "http_proxy", "value": "http://proxy.example.com:3128"])
                && entries.contains(["name": "https_proxy", "value": "http://proxy.example.com:3128"])
                && entries.contains(["name": "no_proxy", "value": ".svc,10.0.0.0/8"])
                && egress.contains(["to": [["ipBlock": ["cidr": "192.0.2.10/32"]]], "ports": [["protocol": "TCP", "port": 3128]]])
                && !Builders.secretUses(s.spec).contains { $0.field.hasPrefix("spec.proxy") }
                // Not in the ConfigMap: the gateway reads these variables the way libcurl does, not as settings.
                && child(s, .configMap)?[path: "data", "http_proxy"] == nil
        }),
        ("proxy URL from a Secret", {
            $0["proxy"] = ["urlSecretRef": ["name": "proxy", "key": "url"], "port": 8080]
        }, { s in
            let uses = Builders.secretUses(s.spec).filter { $0.field == "spec.proxy.urlSecretRef" }
            let egress = child(s, .networkPolicy)?[path: "spec", "egress"]?.array ?? []
            return env(s)["http_proxy"] == ["secretKeyRef": ["name": "proxy", "key": "url"]]
                && env(s)["https_proxy"] == ["secretKeyRef": ["name": "proxy", "key": "url"]]
                && env(s)["no_proxy"] == nil
                // Checked to exist and hashed like every other Secret: a new URL rolls the pods.
                && uses.count == 2 && uses.allSatisfy { $0.rollsPods && !$0.mounted }
                && egress.contains(["to": [["ipBlock": ["cidr": "0.0.0.0/0"]], ["ipBlock": ["cidr": "::/0"]]],
                                    "ports": [["protocol": "TCP", "port": 8080]]])
        }),
        ("tracing", {
            $0["tracing"] = ["endpoint": "http://otel-collector.monitoring.svc:4318", "sampler": "parentbased_traceidratio",
                             "samplerArg": "0.1", "headersSecretRef": ["name": "otlp", "key": "headers"]]
            $0["networkPolicy"] = ["collectorCIDRs": ["10.96.0.0/12"]]
        }, { s in
            let entries = container(s)?["env"]?.array ?? []
            let names = entries.compactMap { $0["name"]?.string }
            let egress = child(s, .networkPolicy)?[path: "spec", "egress"]?.array ?? []
            let uses = Builders.secretUses(s.spec).filter { $0.field == "spec.tracing.headersSecretRef" }
            return entries.contains(["name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.monitoring.svc:4318"])
                && entries.contains(["name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"])
                && entries.contains(["name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.1"])
                && env(s)["OTEL_EXPORTER_OTLP_HEADERS"] == ["secretKeyRef": ["name": "otlp", "key": "headers"]]
                && uses.count == 1 && uses[0].rollsPods
                // The pod's name is defined before the attributes that expand it.
                && env(s)["POD_NAME"] == ["fieldRef": ["fieldPath": "metadata.name"]]
                && entries.contains(["name": "OTEL_RESOURCE_ATTRIBUTES",
                                     "value": "k8s.namespace.name=ns,k8s.deployment.name=gw,k8s.pod.name=$(POD_NAME)"])
                && (names.firstIndex(of: "POD_NAME") ?? .max) < (names.firstIndex(of: "OTEL_RESOURCE_ATTRIBUTES") ?? -1)
                && egress.contains(["to": [["ipBlock": ["cidr": "10.96.0.0/12"]]], "ports": [["protocol": "TCP", "port": 4318]]])
        }),
        ("tracing with the defaults", { $0["tracing"] = ["endpoint": "https://otlp.example.com"] }, { s in
            let entries = container(s)?["env"]?.array ?? []
            let egress = child(s, .networkPolicy)?[path: "spec", "egress"]?.array ?? []
            return entries.contains(["name": "OTEL_TRACES_SAMPLER", "value": "parentbased_always_on"])
                && !entries.contains { $0["name"] == "OTEL_TRACES_SAMPLER_ARG" || $0["name"] == "OTEL_EXPORTER_OTLP_HEADERS" }
                // The backend's rule (https://s3.example.com) and the collector's, both on 443 to any address.
                && egress.filter { $0["ports"] == [["protocol": "TCP", "port": 443]] && $0["to"]?.array?.count == 2 }.count == 2
        }),
        ("image pull secrets", { $0["imagePullSecrets"] = [["name": "registry-a"], ["name": "registry-b"]] }, {
            child($0, .deployment)?[path: "spec", "template", "spec", "imagePullSecrets"] == [["name": "registry-a"], ["name": "registry-b"]]
        }),
        ("pod labels and annotations", { $0["podLabels"] = ["team": "a"]; $0["podAnnotations"] = ["note": "n"] }, { s in
            let meta = child(s, .deployment)?[path: "spec", "template", "metadata"]
            return meta?[path: "labels", "team"] == "a" && meta?[path: "annotations", "note"] == "n"
                && meta?[path: "labels", Builders.gatewayLabel] == "gw"
        }),
    ]

    /// The port the NetworkPolicy opens towards the proxy: the configured one, else the URL's, else its scheme's.
    @Test(arguments: [
        (ProxySpec(url: "http://proxy.example.com:3128"), 3128),
        (ProxySpec(url: "http://proxy.example.com"), 80),
        (ProxySpec(url: "https://proxy.example.com/"), 443),
        (ProxySpec(url: "HTTP://proxy.example.com"), 80),
        (ProxySpec(url: "http://proxy.example.com:3128", port: 8080), 8080),
        (ProxySpec(urlSecretRef: SecretKeyRef(name: "p", key: "url"), port: 3129), 3129),
    ] as [(ProxySpec, Int)])
    func proxyPortForTheNetworkPolicy(_ proxy: ProxySpec, _ port: Int) {
        #expect(Builders.proxyPort(proxy) == port)
    }

    /// Every OpenTelemetry variable the operator sets is one the gateway reads (`TracingConfiguration.settings`).
    @Test func tracingVariablesAreTheGatewaysOwn() {
        let s = Self.snapshot { $0["tracing"] = ["endpoint": "http://c:4318", "sampler": "traceidratio", "samplerArg": "0.5",
                                                 "headersSecretRef": ["name": "h", "key": "k"]] }
        let read = Set(TracingConfiguration.settings.map(\.name))
        let set = Builders.tracingVariables(s).map(\.name)
        #expect(set.count == 5 && Set(set).isSubset(of: read), "\(Set(set).subtracting(read))")
        #expect(Builders.tracingVariables(Self.snapshot()).isEmpty)
    }

    @Test func noProxyNoProxyVariablesAndNoProxyEgress() throws {
        let s = Self.snapshot()
        #expect(Builders.proxyPort(s.spec.proxy) == nil && Builders.proxyVariables(s.spec.proxy).isEmpty)
        let names = (Self.container(s)?["env"]?.array ?? []).compactMap { $0["name"]?.string }
        #expect(!names.contains { $0.hasSuffix("_proxy") })
        // Backend, key manager (none here) and DNS only.
        #expect(Self.child(s, .networkPolicy)?[path: "spec", "egress"]?.array?.count == 2)
    }

    @Test(arguments: options.indices)
    func everySpecOptionReachesItsChild(_ i: Int) {
        let (name, mutate, check) = Self.options[i]
        #expect(check(Self.snapshot(mutate)), "\(name)")
    }

    @Test func apiVersionsFollowDiscovery() throws {
        let old = ClusterCapabilities.from(apiGroups: ["groups": [
            ["name": "autoscaling", "versions": [["version": "v1"], ["version": "v2beta2"]]],
            ["name": "policy", "versions": [["version": "v1beta1"]]],
            ["name": "networking.k8s.io", "versions": [["version": "v1"]]],
        ]])
        #expect(old.hpa?.apiVersion == "autoscaling/v2beta2" && old.pdb?.apiVersion == "policy/v1beta1" && old.serviceMonitor == nil)
        let new = ClusterCapabilities.from(apiGroups: ["groups": [
            ["name": "autoscaling", "versions": [["version": "v2"], ["version": "v2beta2"]]],
            ["name": "policy", "versions": [["version": "v1"], ["version": "v1beta1"]]],
            ["name": "monitoring.coreos.com", "versions": [["version": "v1"]]],
        ]])
        #expect(new.hpa?.apiVersion == "autoscaling/v2" && new.pdb?.apiVersion == "policy/v1" && new.serviceMonitor != nil)
        let s = Self.snapshot({ $0["autoscaling"] = ["enabled": true] }, capabilities: old)
        #expect(Self.child(s, .hpa)?["apiVersion"] == "autoscaling/v2beta2")
        #expect(Self.child(s, .pdb)?["apiVersion"] == "policy/v1beta1")
        #expect(ChildKind.serviceMonitor.resource(old) == nil)
    }

    @Test func ownerReferenceAndLabelsButNoToolMetadata() throws {
        let s = Self.snapshot(labels: ["team": "a", "app.kubernetes.io/instance": "argo-app", "argocd.argoproj.io/x": "y"])
        for child in Builders.all(s) {
            guard let o = child.object else { continue }
            let refs = try #require(o[path: "metadata", "ownerReferences"]?.array)
            #expect(refs == [["apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway", "name": "gw",
                              "uid": "uid-1", "controller": true, "blockOwnerDeletion": true]])
            let labels = try #require(o[path: "metadata", "labels"]?.object)
            #expect(labels["team"] == "a" && labels[Builders.managedByLabel] == "encryption-gateway-operator")
            #expect(labels.keys.allSatisfy { !$0.hasPrefix("argocd.argoproj.io/") && $0 != "app.kubernetes.io/instance" })
            #expect(o[path: "metadata", "namespace"] == "ns")
        }
        let svc = Self.snapshot({ $0["service"] = ["annotations": ["kubectl.kubernetes.io/last-applied-configuration": "{}",
                                                                    "argocd.argoproj.io/sync-wave": "1", "keep": "me"]] })
        #expect(Self.child(svc, .service)?[path: "metadata", "annotations"] == ["keep": "me"])
    }

    @Test func renderingIsDeterministicAndHashesFollowInputs() {
        let a = Builders.all(Self.snapshot()).compactMap(\.object)
        let b = Builders.all(Self.snapshot()).compactMap(\.object)
        #expect(YAMLWriter.documents(a) == YAMLWriter.documents(b))
        func annotation(_ s: Snapshot, _ key: String) -> JSONValue? {
            Self.child(s, .deployment)?[path: "spec", "template", "metadata", "annotations", key]
        }
        var other = Self.snapshot()
        other.secretHash = "hash-2"
        #expect(annotation(other, Builders.secretHashAnnotation) == "hash-2")
        let changedConfig = Self.snapshot { $0["logLevel"] = "warn" }
        #expect(annotation(changedConfig, Builders.configHashAnnotation) != annotation(Self.snapshot(), Builders.configHashAnnotation))
    }
}
