import Foundation
import Shared

extension Builders {
    static let backendCADirectory = "/etc/s3gateway/backend-ca"
    static let tlsDirectory = "/etc/s3gateway/tls"
    static let clientCredentialsDirectory = "/etc/s3gateway/credentials"
    static let clientCredentialsFileName = "credentials.json"
    static let backendCAFileName = "ca.crt"
    /// The gateway's user: `nobody`, as the restricted Pod Security profile wants (non-root, fixed UID).
    static let runAsUser: Int64 = 65534
    /// Seconds the kubelet waits beyond the gateway's own drain before it kills the pod.
    static let terminationMargin: Int64 = 15

    /// The non-secret settings, keyed by the variable names the gateway reads (`GatewaySetting`).
    static func configMapData(_ s: Snapshot) -> [GatewaySetting: String] {
        let spec = s.spec
        var d: [GatewaySetting: String] = [
            .listenAddress: ":\(containerPort)",
            .backendEndpoint: spec.backend.endpoint,
            .backendRegion: spec.backend.region,
            .backendTLSInsecureSkipVerify: spec.backend.insecureSkipVerify ? "true" : "false",
            .encryptionCipher: spec.encryption.cipher,
            .encryptionChunkSize: String(spec.encryption.chunkSize),
            .encryptionAllowPlaintextReads: spec.encryption.allowPlaintextReads ? "true" : "false",
            .logLevel: spec.logLevel,
            .maxConnections: String(spec.maxConnections),
            .requestTimeout: spec.requestTimeout,
            .shutdownGracePeriod: spec.shutdownGracePeriod,
        ]
        if spec.backend.caSecretRef != nil { d[.backendCAFile] = backendCADirectory + "/" + backendCAFileName }
        if !spec.tls.secretName.isEmpty {
            d[.tlsCertFile] = tlsDirectory + "/tls.crt"
            d[.tlsKeyFile] = tlsDirectory + "/tls.key"
        }
        if !spec.domains.isEmpty { d[.gatewayDomains] = spec.domains.joined(separator: ",") }
        if spec.clientCredentials.credentialsFileSecretRef != nil {
            d[.gatewayCredentialsFile] = clientCredentialsDirectory + "/" + clientCredentialsFileName
        }
        // Only when not the gateway's default, so that upgrading the operator does not roll existing pods.
        if spec.clientCredentials.anonymousAccess != "deny" { d[.anonymousAccess] = spec.clientCredentials.anonymousAccess }
        if !spec.clientCredentials.regions.isEmpty { d[.gatewayRegions] = spec.clientCredentials.regions.joined(separator: ",") }
        if spec.authTimeout != "10s" { d[.authTimeout] = spec.authTimeout }
        if spec.backend.uploadChecksum != "auto" { d[.backendUploadChecksum] = spec.backend.uploadChecksum }
        if let n = spec.maxUnauthenticatedConnections { d[.maxUnauthenticatedConnections] = String(n) }
        if let port = spec.probes.port { d[.probeAddress] = ":\(port)" }
        d.merge(keyConfigData(spec.encryption)) { a, _ in a }
        return d
    }

    /// A Secret key the gateway needs, with the spec field that names it (for messages).
    struct SecretUse: Sendable {
        /// The gateway's variable it becomes (or whose file it is, when mounted): a `GatewaySetting`, or a variable
        /// the gateway reads by its common name (the proxy's, `ProxyEnvironment`; OpenTelemetry's).
        var variable: String
        var ref: SecretKeyRef
        var field: String
        /// Whether a change of the value must roll the pods (false for files the gateway reloads by itself).
        var rollsPods = true
        /// Mounted as a file (its path comes from the ConfigMap) rather than passed as a variable.
        var mounted = false

        init(setting: GatewaySetting, ref: SecretKeyRef, field: String, rollsPods: Bool = true, mounted: Bool = false) {
            self.init(variable: setting.rawValue, ref: ref, field: field, rollsPods: rollsPods, mounted: mounted)
        }

        init(variable: String, ref: SecretKeyRef, field: String, rollsPods: Bool = true, mounted: Bool = false) {
            self.variable = variable
            self.ref = ref
            self.field = field
            self.rollsPods = rollsPods
            self.mounted = mounted
        }
    }

    /// The proxy's variables (`spec.proxy`), in order: its URL for both schemes (nil when it comes from its Secret,
    /// `proxySecretUses`) and the exclusion list. Their own names, not `GatewaySetting`s: the gateway reads them the
    /// way libcurl does (`ProxyEnvironment`). A change rolls the pods (the template or the Secret hash changes).
    static func proxyVariables(_ proxy: ProxySpec?) -> [(name: String, value: String?)] {
        guard let proxy else { return [] }
        var out: [(name: String, value: String?)] = [(ProxyEnvironment.httpVariable, proxy.url),
                                                     (ProxyEnvironment.httpsVariable, proxy.url)]
        if !proxy.noProxy.isEmpty { out.append((ProxyEnvironment.noProxyVariable, proxy.noProxy.joined(separator: ","))) }
        return out
    }

    /// The variable the pod's own name is in, for the trace resource attributes (`$(…)` expands it).
    static let podNameVariable = "POD_NAME"

    /// The tracing variables (`spec.tracing`), in order: the OpenTelemetry SDK's, which the gateway reads
    /// (`TracingConfiguration`); the headers come from their Secret (nil here, `tracingSecretUses`). The resource
    /// attributes name the namespace, the Deployment and the pod, so spans of a fleet can be told apart.
    static func tracingVariables(_ s: Snapshot) -> [(name: String, value: String?)] {
        guard let t = s.spec.tracing else { return [] }
        var out: [(name: String, value: String?)] = [("OTEL_EXPORTER_OTLP_ENDPOINT", t.endpoint), ("OTEL_TRACES_SAMPLER", t.sampler)]
        if let arg = t.samplerArg { out.append(("OTEL_TRACES_SAMPLER_ARG", arg)) }
        if t.headersSecretRef != nil { out.append(("OTEL_EXPORTER_OTLP_HEADERS", nil)) }
        out.append(("OTEL_RESOURCE_ATTRIBUTES", "k8s.namespace.name=\(s.resource.namespace),k8s.deployment.name=\(s.resource.name),"
                    + "k8s.pod.name=$(\(podNameVariable))"))
        return out
    }

    /// The collector's headers Secret key.
    static func tracingSecretUses(_ tracing: TracingSpec?) -> [SecretUse] {
        guard let ref = tracing?.headersSecretRef else { return [] }
        return [SecretUse(variable: "OTEL_EXPORTER_OTLP_HEADERS", ref: ref, field: "spec.tracing.headersSecretRef")]
    }

    /// The proxy URL's Secret key, one use per variable it becomes.
    static func proxySecretUses(_ proxy: ProxySpec?) -> [SecretUse] {
        guard let ref = proxy?.urlSecretRef else { return [] }
        return [ProxyEnvironment.httpVariable, ProxyEnvironment.httpsVariable].map {
            SecretUse(variable: $0, ref: ref, field: "spec.proxy.urlSecretRef")
        }
    }

    /// The settings that come from Secrets (environment variables, and the CA mounted as a file).
    static func secretUses(_ spec: EncryptionGatewaySpec) -> [SecretUse] {
        let b = spec.backend.credentialsSecretRef
        var out: [SecretUse] = [
            SecretUse(setting: .backendAccessKey, ref: SecretKeyRef(name: b.name, key: b.accessKeyIDKey),
                      field: "spec.backend.credentialsSecretRef"),
            SecretUse(setting: .backendSecretKey, ref: SecretKeyRef(name: b.name, key: b.secretAccessKeyKey),
                      field: "spec.backend.credentialsSecretRef"),
        ]
        if let c = spec.clientCredentials.secretRef {
            out.append(SecretUse(setting: .gatewayAccessKey, ref: SecretKeyRef(name: c.name, key: c.accessKeyIDKey),
                                 field: "spec.clientCredentials.secretRef"))
            out.append(SecretUse(setting: .gatewaySecretKey, ref: SecretKeyRef(name: c.name, key: c.secretAccessKeyKey),
                                 field: "spec.clientCredentials.secretRef"))
        }
        if let file = spec.clientCredentials.credentialsFileSecretRef {
            // Mounted; the gateway re-reads the file when the kubelet updates it, so a change needs no new pods.
            out.append(SecretUse(setting: .gatewayCredentialsFile, ref: file, field: "spec.clientCredentials.credentialsFileSecretRef",
                                 rollsPods: false, mounted: true))
        }
        out += keySecretUses(spec.encryption)
        if let ca = spec.backend.caSecretRef {
            out.append(SecretUse(setting: .backendCAFile, ref: ca, field: "spec.backend.caSecretRef", mounted: true))
        }
        if !spec.tls.secretName.isEmpty {
            for (setting, key) in [(GatewaySetting.tlsCertFile, "tls.crt"), (.tlsKeyFile, "tls.key")] {
                out.append(SecretUse(setting: setting, ref: SecretKeyRef(name: spec.tls.secretName, key: key),
                                     field: "spec.tls.secretName", rollsPods: false, mounted: true))
            }
        }
        out += proxySecretUses(spec.proxy) + tracingSecretUses(spec.tracing)
        return out
    }

    static func configMap(_ s: Snapshot) -> JSONValue {
        let data = configMapData(s).reduce(into: [String: String]()) { $0[$1.key.rawValue] = $1.value }
        return object(.configMaps, metadata: metadata(s, name: configMapName(s.resource)), ["data": stringMap(data)])
    }

    static func deployment(_ s: Snapshot, configMap: JSONValue?) -> JSONValue {
        let spec = s.spec
        let r = s.resource
        var env: [JSONValue] = []
        let configKeys = configMapData(s).keys
        // Environment in GatewaySetting's declaration order, so the list is stable, then the proxy's and the tracing's.
        // The CA is a mounted file (its path comes from the ConfigMap); the rest are variables from Secret keys.
        let fromSecrets = Dictionary(secretUses(spec).filter { !$0.mounted }.map { ($0.variable, $0.ref) },
                                     uniquingKeysWith: { a, _ in a })
        func fromSecret(_ name: String, _ ref: SecretKeyRef) -> JSONValue {
            ["name": .string(name), "valueFrom": ["secretKeyRef": ["name": .string(ref.name), "key": .string(ref.key)]]]
        }
        for setting in GatewaySetting.allCases {
            if let ref = fromSecrets[setting.rawValue] {
                env.append(fromSecret(setting.rawValue, ref))
            } else if configKeys.contains(setting) {
                env.append(["name": .string(setting.rawValue),
                            "valueFrom": ["configMapKeyRef": ["name": .string(configMapName(r)), "key": .string(setting.rawValue)]]])
            }
        }
        if spec.tracing != nil {
            env.append(["name": .string(podNameVariable), "valueFrom": ["fieldRef": ["fieldPath": "metadata.name"]]])
        }
        for (name, value) in proxyVariables(spec.proxy) + tracingVariables(s) {
            if let ref = fromSecrets[name] {
                env.append(fromSecret(name, ref))
            } else if let value {
                env.append(["name": .string(name), "value": .string(value)])
            }
        }

        var volumes: [JSONValue] = [["name": "tmp", "emptyDir": ["medium": "Memory", "sizeLimit": "64Mi"]]]
        var mounts: [JSONValue] = [["name": "tmp", "mountPath": "/tmp"]]
        if let ca = spec.backend.caSecretRef {
            volumes.append(["name": "backend-ca", "secret": [
                "secretName": .string(ca.name), "defaultMode": 0o444,
                "items": [["key": .string(ca.key), "path": .string(backendCAFileName)]],
            ]])
            mounts.append(["name": "backend-ca", "mountPath": .string(backendCADirectory), "readOnly": true])
        }
        if !spec.tls.secretName.isEmpty {
            volumes.append(["name": "tls", "secret": [
                "secretName": .string(spec.tls.secretName), "defaultMode": 0o440,
                "items": [["key": "tls.crt", "path": "tls.crt"], ["key": "tls.key", "path": "tls.key"]],
            ]])
            mounts.append(["name": "tls", "mountPath": .string(tlsDirectory), "readOnly": true])
        }
        if let file = spec.clientCredentials.credentialsFileSecretRef {
            volumes.append(["name": "client-credentials", "secret": [
                "secretName": .string(file.name), "defaultMode": 0o440,
                "items": [["key": .string(file.key), "path": .string(clientCredentialsFileName)]],
            ]])
            mounts.append(["name": "client-credentials", "mountPath": .string(clientCredentialsDirectory), "readOnly": true])
        }
        if let keys = keysVolume(spec.encryption) {
            volumes.append(keys.volume)
            mounts.append(keys.mount)
        }
        var ports: [JSONValue] = [["name": .string(portName), "containerPort": .integer(Int64(containerPort)), "protocol": "TCP"]]
        // Probes go to the probe listener (plain HTTP) when there is one, else to the gateway port with its TLS.
        let probePort: String
        let scheme: JSONValue
        if let port = spec.probes.port {
            ports.append(["name": .string(probePortName), "containerPort": .integer(Int64(port)), "protocol": "TCP"])
            (probePort, scheme) = (probePortName, "HTTP")
        } else {
            (probePort, scheme) = (portName, spec.tls.secretName.isEmpty ? "HTTP" : "HTTPS")
        }

        let resources: JSONValue = [
            "requests": .object(spec.resources.requests.mapValues { .string($0.text) }),
            "limits": .object(spec.resources.limits.mapValues { .string($0.text) }),
        ]
        let container: JSONValue = [
            "name": .string(containerName),
            "image": .string(spec.image.isEmpty ? s.defaultImage : spec.image),
            "imagePullPolicy": .string(spec.imagePullPolicy),
            "ports": .array(ports),
            "env": .array(env),
            "resources": pruned(resources),
            "livenessProbe": probe("/health", port: probePort, scheme: scheme, period: 10, failures: 3),
            "readinessProbe": probe("/ready", port: probePort, scheme: scheme, period: 5, failures: 2),
            "securityContext": [
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "runAsUser": .integer(runAsUser),
                "runAsGroup": .integer(runAsUser),
                "capabilities": ["drop": ["ALL"]],
                "seccompProfile": ["type": "RuntimeDefault"],
            ],
            "volumeMounts": .array(mounts),
        ]

        var annotations = spec.podAnnotations
        annotations[secretHashAnnotation] = s.secretHash
        if let configMap { annotations[configHashAnnotation] = sha256Hex((configMap["data"] ?? .null).jsonString) }
        var podLabels = spec.podLabels
        for (k, v) in selectorLabels(r) { podLabels[k] = v }

        var podSpec: [String: JSONValue] = [
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": .integer(durationSeconds(spec.shutdownGracePeriod) + terminationMargin),
            "securityContext": [
                "runAsNonRoot": true,
                "runAsUser": .integer(runAsUser),
                "runAsGroup": .integer(runAsUser),
                "fsGroup": .integer(runAsUser),
                "seccompProfile": ["type": "RuntimeDefault"],
            ],
            "containers": [container],
            "volumes": .array(volumes),
        ]
        if !spec.serviceAccountName.isEmpty { podSpec["serviceAccountName"] = .string(spec.serviceAccountName) }
        if !spec.imagePullSecrets.isEmpty {
            podSpec["imagePullSecrets"] = .array(spec.imagePullSecrets.map { ["name": .string($0.name)] })
        }
        if !spec.priorityClassName.isEmpty { podSpec["priorityClassName"] = .string(spec.priorityClassName) }
        if !spec.nodeSelector.isEmpty { podSpec["nodeSelector"] = stringMap(spec.nodeSelector) }
        if !spec.tolerations.isEmpty { podSpec["tolerations"] = .array(spec.tolerations.map(\.value)) }
        if let affinity = spec.affinity { podSpec["affinity"] = affinity.value }
        if spec.topologySpread.enabled {
            podSpec["topologySpreadConstraints"] = [[
                "maxSkew": .integer(Int64(spec.topologySpread.maxSkew)),
                "topologyKey": .string(spec.topologySpread.topologyKey),
                "whenUnsatisfiable": .string(spec.topologySpread.whenUnsatisfiable),
                "labelSelector": ["matchLabels": stringMap(selectorLabels(r))],
            ]]
        }

        var deploymentSpec: [String: JSONValue] = [
            "selector": ["matchLabels": stringMap(selectorLabels(r))],
            "strategy": ["type": "RollingUpdate", "rollingUpdate": ["maxUnavailable": 1, "maxSurge": 1]],
            "template": [
                "metadata": ["labels": stringMap(podLabels), "annotations": stringMap(annotations)],
                "spec": .object(podSpec),
            ],
        ]
        // While an autoscaler is enabled it owns the replica count: sending one would fight it on every apply.
        if !spec.autoscaling.enabled { deploymentSpec["replicas"] = .integer(Int64(spec.replicas)) }
        return object(.deployments, metadata: metadata(s, name: r.name), ["spec": .object(deploymentSpec)])
    }

    static func probe(_ path: String, port: String, scheme: JSONValue, period: Int64, failures: Int64) -> JSONValue {
        [
            "httpGet": ["path": .string(path), "port": .string(port), "scheme": scheme],
            "periodSeconds": .integer(period),
            "timeoutSeconds": 3,
            "failureThreshold": .integer(failures),
            "successThreshold": 1,
        ]
    }

    /// Seconds of a validated duration (`500ms`, `30s`, `5m`, `1h`), rounded up.
    static func durationSeconds(_ text: String) -> Int64 {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, millis) in units where text.hasSuffix(suffix) {
            if let n = Int64(text.dropLast(suffix.count)) { return (n * millis + 999) / 1000 }
        }
        return 0
    }

    /// Drops empty objects (an empty `limits` means none).
    static func pruned(_ v: JSONValue) -> JSONValue {
        guard case .object(let o) = v else { return v }
        return .object(o.filter { if case .object(let inner) = $0.value { return !inner.isEmpty } else { return true } })
    }
}
