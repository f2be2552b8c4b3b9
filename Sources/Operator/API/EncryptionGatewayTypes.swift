import Shared

/// The `EncryptionGateway` API (`s3gateway.dev/v1alpha1`): the single source of the CRD's schema, the operator's
/// defaulting and validation, and the values the builders read. Every property has exactly one `Field` (a test
/// checks this), every field a description; defaults are the values `init()` gives.
///
/// Field names follow Kubernetes conventions (camelCase, `…SecretRef` for references to Secret keys).
/// Settings reach the gateway as the environment variables of `Shared.GatewaySetting`.
struct EncryptionGatewaySpec: APIObject {
    var image = ""
    var imagePullPolicy = "IfNotPresent"
    var imagePullSecrets: [LocalObjectReference] = []
    var replicas = 3
    var backend = BackendSpec()
    var proxy: ProxySpec?
    var encryption = EncryptionSpec()
    var clientCredentials = ClientCredentialsSpec()
    var tls = TLSSpec()
    var domains: [String] = []
    var logLevel = "info"
    var maxConnections = 1024
    var requestTimeout = "60s"
    var shutdownGracePeriod = "30s"
    var authTimeout = "10s"
    var maxUnauthenticatedConnections: Int?
    var probes = ProbesSpec()
    var tracing: TracingSpec?
    var resources = ResourcesSpec()
    var autoscaling = AutoscalingSpec()
    var podDisruptionBudget = PodDisruptionBudgetSpec()
    var networkPolicy = NetworkPolicySpec()
    var service = ServiceSpec()
    var ingress = IngressSpec()
    var serviceMonitor = ServiceMonitorSpec()
    var topologySpread = TopologySpreadSpec()
    var podLabels: [String: String] = [:]
    var podAnnotations: [String: String] = [:]
    var nodeSelector: [String: String] = [:]
    var tolerations: [OpaqueObject] = []
    var affinity: OpaqueObject?
    var priorityClassName = ""
    var serviceAccountName = ""

    static let durationPattern = #"^[0-9]+(ms|s|m|h)$"#
    /// A duration the gateway accepts (`GatewayConfiguration.duration`: positive, at most 1000000 units), so that a
    /// value the schema admits never leaves the pods crash-looping on a configuration error.
    static let positiveDurationPattern = #"^[1-9][0-9]{0,5}(ms|s|m|h)$"#

    static var description: String { "The desired state of one fleet of S3 encryption gateways." }

    static var fields: [Field<Self>] {
        [
            Field("image", \.image, "Container image of the gateway. Empty: the operator's default (--gateway-image / GATEWAY_IMAGE)."),
            Field("imagePullPolicy", \.imagePullPolicy, "When the kubelet pulls the image.") { $0.enumValues = ["Always", "IfNotPresent", "Never"] },
            Field("imagePullSecrets", \.imagePullSecrets, "Secrets (kubernetes.io/dockerconfigjson) the kubelet pulls the image from a private registry with.") {
                $0.maxItems = 16 },
            Field("replicas", \.replicas, "Number of gateway pods while autoscaling is off.") { $0.minimum = 0; $0.maximum = 1000 },
            Field("backend", \.backend, "The S3 service objects are stored in (encrypted).", required: true),
            Field("proxy", \.proxy, "An HTTP proxy for the gateways' outgoing HTTP and HTTPS connections: to the backend, AWS KMS, Vault and an OTLP collector (KMIP connects directly). Unset: direct connections."),
            Field("encryption", \.encryption, "How objects are encrypted.", required: true),
            Field("clientCredentials", \.clientCredentials, "The credentials S3 clients sign their requests with.", required: true),
            Field("tls", \.tls, "HTTPS on the gateways' listener (otherwise plain HTTP, e.g. behind a TLS-terminating Ingress)."),
            Field("domains", \.domains, "Base domains for virtual-host-style bucket addressing, e.g. s3.example.com (GATEWAY_DOMAINS).") {
                $0.items?.pattern = #"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"#; $0.maxItems = 32; $0.listType = "set" },
            Field("logLevel", \.logLevel, "Gateway log level (LOG_LEVEL).") { $0.enumValues = ["debug", "info", "warn", "error"] },
            Field("maxConnections", \.maxConnections, "Concurrent client connections per pod; more get 503 SlowDown (MAX_CONNECTIONS).") {
                $0.minimum = 1; $0.maximum = 1_000_000 },
            Field("requestTimeout", \.requestTimeout, "Idle timeout of a client or backend transfer, e.g. 60s or 5m (REQUEST_TIMEOUT).") {
                $0.pattern = positiveDurationPattern },
            Field("shutdownGracePeriod", \.shutdownGracePeriod, "Time requests in flight get to finish when a pod stops (SHUTDOWN_GRACE_PERIOD); the pod's termination grace period is 15 s longer.") {
                $0.pattern = positiveDurationPattern },
            Field("authTimeout", \.authTimeout, "Time a new connection gets to complete its first authenticated request before it is closed, so that idle or slow anonymous connections cannot hold connection slots, e.g. 10s (AUTH_TIMEOUT).") {
                $0.pattern = positiveDurationPattern },
            Field("maxUnauthenticatedConnections", \.maxUnauthenticatedConnections, "Connections per pod that have not yet completed an authenticated request, a part of maxConnections; when full, the idlest is closed to make room. Unset: a quarter of maxConnections (MAX_UNAUTHENTICATED_CONNECTIONS).") {
                $0.minimum = 1; $0.maximum = 1_000_000 },
            Field("probes", \.probes, "Where the kubelet's liveness and readiness probes reach the gateways."),
            Field("tracing", \.tracing, "Traces of the gateways' requests, sent to an OpenTelemetry collector over OTLP/HTTP. Unset: no traces (trace context still propagates)."),
            Field("resources", \.resources, "CPU and memory requests and limits of the gateway container."),
            Field("autoscaling", \.autoscaling, "A HorizontalPodAutoscaler for the gateway Deployment."),
            Field("podDisruptionBudget", \.podDisruptionBudget, "A PodDisruptionBudget that keeps gateways serving during voluntary disruptions."),
            Field("networkPolicy", \.networkPolicy, "A NetworkPolicy limiting who may reach the gateways and where they may connect."),
            Field("service", \.service, "The Service clients reach the gateways through."),
            Field("ingress", \.ingress, "An optional Ingress in front of the Service."),
            Field("serviceMonitor", \.serviceMonitor, "An optional Prometheus-operator ServiceMonitor scraping /metrics (applied only where monitoring.coreos.com is served)."),
            Field("topologySpread", \.topologySpread, "Spreading of the gateway pods across zones."),
            Field("podLabels", \.podLabels, "Extra labels on the gateway pods."),
            Field("podAnnotations", \.podAnnotations, "Extra annotations on the gateway pods."),
            Field("nodeSelector", \.nodeSelector, "Node labels the gateway pods must be scheduled on."),
            Field("tolerations", \.tolerations, "Tolerations of the gateway pods (core/v1 Toleration)."),
            Field("affinity", \.affinity, "Affinity of the gateway pods (core/v1 Affinity)."),
            Field("priorityClassName", \.priorityClassName, "PriorityClass of the gateway pods.") { $0.maxLength = 253 },
            Field("serviceAccountName", \.serviceAccountName, "ServiceAccount the gateway pods run as (its token is not mounted). Empty: the namespace's default.") {
                $0.maxLength = 253 },
        ]
    }
    static var rules: [Rule<Self>] {
        [
            Rule(cel: "!has(self.maxUnauthenticatedConnections) || self.maxUnauthenticatedConnections <= self.maxConnections",
                 message: "maxUnauthenticatedConnections must not exceed maxConnections") {
                ($0.maxUnauthenticatedConnections ?? 0) <= $0.maxConnections },
        ]
    }
}

/// The kubelet's probes: on the gateway's own port by default, or on a separate plain-HTTP port.
struct ProbesSpec: APIObject {
    var port: Int?

    static var description: String {
        "Where the probes go. By default they share the gateway port (and its TLS) with the S3 clients; a separate port answers only /health, /ready and /metrics over plain HTTP, so probes never wait behind client connections."
    }
    static var fields: [Field<Self>] {
        [
            Field("port", \.port, "Container port of a separate probe listener (PROBE_ADDR), which then alone serves /metrics; the liveness and readiness probes use it, and so does an enabled ServiceMonitor: a ClusterIP Service <name>-probes then offers it, and the NetworkPolicy opens it to the allowed clients. Without a ServiceMonitor it is in no Service and not opened by the NetworkPolicy: the kubelet probes from the pod's own node, which NetworkPolicies do not filter. Unset: probes and scrapes use the gateway port.") {
                $0.minimum = 1024; $0.maximum = 65535 },
        ]
    }
    static var rules: [Rule<Self>] {
        [Rule(cel: "!has(self.port) || self.port != \(Builders.containerPort)", message: "probes.port must differ from the gateway port \(Builders.containerPort)") {
            $0.port != Builders.containerPort }]
    }
}

/// A Secret in the resource's namespace, by name (core/v1 LocalObjectReference).
struct LocalObjectReference: APIObject {
    var name = ""

    static var description: String { "A Secret in the same namespace." }
    static var fields: [Field<Self>] {
        [Field("name", \.name, "Name of the Secret.", required: true) { $0.minLength = 1; $0.maxLength = 253 }]
    }
}

/// Tracing of the gateways, as the OpenTelemetry variables they read (`TracingConfiguration`).
struct TracingSpec: APIObject {
    var endpoint = ""
    var sampler = Sampler.names[0]
    var samplerArg: String?
    var headersSecretRef: SecretKeyRef?

    static var description: String { "OpenTelemetry tracing: where spans go and which requests are sampled." }
    static var fields: [Field<Self>] {
        [
            Field("endpoint", \.endpoint, "OTLP/HTTP collector base URL, e.g. http://otel-collector.monitoring.svc:4318; spans go to <endpoint>/v1/traces (OTEL_EXPORTER_OTLP_ENDPOINT). The NetworkPolicy opens its port towards networkPolicy.collectorCIDRs.", required: true) {
                $0.pattern = #"^https?://[^\s/?#@]+(/[^\s?#]*)?$"#; $0.maxLength = 2048 },
            Field("sampler", \.sampler, "Which traces are recorded (OTEL_TRACES_SAMPLER); the parentbased samplers follow the client's traceparent decision.") {
                $0.enumValues = Sampler.names },
            Field("samplerArg", \.samplerArg, "Ratio of traces recorded by the traceidratio samplers, from 0 to 1, e.g. \"0.1\" (OTEL_TRACES_SAMPLER_ARG). Unset: 1.") {
                $0.pattern = #"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"# },
            Field("headersSecretRef", \.headersSecretRef, "Request headers for the collector from a Secret, such as an API key: key=value pairs separated by commas, values URL-encoded (OTEL_EXPORTER_OTLP_HEADERS)."),
        ]
    }
    static var rules: [Rule<Self>] {
        [Rule(cel: "!has(self.samplerArg) || self.sampler.endsWith('traceidratio')",
              message: "samplerArg applies to the traceidratio samplers only") {
            $0.samplerArg == nil || $0.sampler.hasSuffix("traceidratio") }]
    }
}

/// A key of a Secret in the resource's namespace.
struct SecretKeyRef: APIObject {
    var name = ""
    var key = ""

    static var description: String { "A key of a Secret in the same namespace." }
    static var fields: [Field<Self>] {
        [
            Field("name", \.name, "Name of the Secret.", required: true) { $0.minLength = 1; $0.maxLength = 253 },
            Field("key", \.key, "Key within the Secret's data.", required: true) { $0.minLength = 1; $0.maxLength = 253 },
        ]
    }
}

/// An access key pair held in one Secret.
struct CredentialsSecretRef: APIObject {
    var name = ""
    var accessKeyIDKey = "accessKeyID"
    var secretAccessKeyKey = "secretAccessKey"

    static var description: String { "A Secret in the same namespace holding an access key ID and a secret access key." }
    static var fields: [Field<Self>] {
        [
            Field("name", \.name, "Name of the Secret.", required: true) { $0.minLength = 1; $0.maxLength = 253 },
            Field("accessKeyIDKey", \.accessKeyIDKey, "Key of the access key ID within the Secret.") { $0.minLength = 1 },
            Field("secretAccessKeyKey", \.secretAccessKeyKey, "Key of the secret access key within the Secret.") { $0.minLength = 1 },
        ]
    }
}

struct BackendSpec: APIObject {
    var endpoint = ""
    var region = "us-east-1"
    var credentialsSecretRef = CredentialsSecretRef()
    var caSecretRef: SecretKeyRef?
    var insecureSkipVerify = false
    var uploadChecksum = "auto"

    static var description: String { "The S3 backend." }
    static var fields: [Field<Self>] {
        [
            Field("endpoint", \.endpoint, "URL of the S3 backend, e.g. https://s3.us-east-1.amazonaws.com (BACKEND_ENDPOINT).", required: true) {
                $0.pattern = #"^https?://[^\s/?#@]+(/[^\s?#]*)?$"#; $0.maxLength = 2048 },
            Field("region", \.region, "Region requests to the backend are signed for (BACKEND_REGION).") { $0.pattern = #"^[a-z0-9-]+$"# },
            Field("credentialsSecretRef", \.credentialsSecretRef, "The backend's access key pair (BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY).", required: true),
            Field("caSecretRef", \.caSecretRef, "PEM bundle verifying the backend's TLS certificate, mounted into the pods (BACKEND_CA_FILE). Unset: the system CAs."),
            Field("insecureSkipVerify", \.insecureSkipVerify, "Skip verification of the backend's TLS certificate; test backends only (BACKEND_TLS_INSECURE_SKIP_VERIFY)."),
            Field("uploadChecksum", \.uploadChecksum, "Checksum the backend verifies on streamed uploads and parts (BACKEND_UPLOAD_CHECKSUM): crc32 sends a CRC32 trailer (AWS object-lock buckets require a checksum), off none (Ceph RGW Pacific refuses the trailer), auto crc32 for *.amazonaws.com endpoints only.") {
                $0.enumValues = ["auto", "crc32", "off"] },
        ]
    }
}

/// The proxy the gateways' outgoing HTTP(S) connections go through, as the variables libcurl reads
/// (`ProxyEnvironment`): `http_proxy` and `https_proxy` name it, `no_proxy` lists what bypasses it.
struct ProxySpec: APIObject {
    var url: String?
    var urlSecretRef: SecretKeyRef?
    var port: Int?
    var noProxy: [String] = []

    static var description: String { "An HTTP proxy: exactly one of url and urlSecretRef, and the hosts that bypass it." }
    static var fields: [Field<Self>] {
        [
            Field("url", \.url, "URL of the proxy, e.g. http://proxy.example.com:3128 (http_proxy and https_proxy). Without credentials: a URL with a user and password goes in urlSecretRef.") {
                $0.pattern = #"^https?://[^\s/?#@]+/?$"#; $0.maxLength = 2048 },
            Field("urlSecretRef", \.urlSecretRef, "The proxy's URL from a Secret, for one with credentials, e.g. http://user:password@proxy.example.com:3128 (http_proxy and https_proxy). Needs port."),
            Field("port", \.port, "TCP port of the proxy, which the NetworkPolicy opens towards networkPolicy.proxyCIDRs. Unset: the port of url (80 for http, 443 for https when it names none).") {
                $0.minimum = 1; $0.maximum = 65535 },
            Field("noProxy", \.noProxy, "Hosts the gateways reach directly: names (each also matching every name below it), domain suffixes such as .svc, IPv4 addresses and CIDR ranges, or * alone for all (no_proxy). A backend, key service or trace collector inside the cluster must be listed, e.g. .svc and .cluster.local.") {
                $0.items?.pattern = #"^(\*|\.?[A-Za-z0-9:]([-A-Za-z0-9.:]*[A-Za-z0-9])?(/[0-9]{1,3})?)$"#
                $0.items?.maxLength = 253; $0.maxItems = 64; $0.listType = "set" },
        ]
    }
    static var rules: [Rule<Self>] {
        [
            Rule(cel: "has(self.url) != has(self.urlSecretRef)", message: "set exactly one of url and urlSecretRef") {
                ($0.url != nil) != ($0.urlSecretRef != nil) },
            Rule(cel: "!has(self.urlSecretRef) || has(self.port)", message: "a proxy URL from a Secret needs port (for the NetworkPolicy)") {
                $0.urlSecretRef == nil || $0.port != nil },
            // libcurl reads * as "every host" only when it is the whole list; among other entries it is an ordinary
            // name that matches nothing, which would send everything through the proxy.
            Rule(cel: "!has(self.noProxy) || !('*' in self.noProxy) || size(self.noProxy) == 1",
                 message: "noProxy: * already means every host; list it alone") {
                !$0.noProxy.contains("*") || $0.noProxy.count == 1 },
        ]
    }
}

struct EncryptionSpec: APIObject {
    var passwordSecretRef: SecretKeyRef?
    var previousPasswordsSecretRef: SecretKeyRef?
    var cipher = "aes-256-gcm"
    var chunkSize = 65536
    var allowPlaintextReads = true
    // Key providers, policy and cache: EncryptionGatewayKeyTypes.swift.
    var keyProvider = ""
    var rawKey: RawKeySpec?
    var passwordSaltSecretRef: SecretKeyRef?
    var kmip: KMIPSpec?
    var awsKMS: AWSKMSSpec?
    var vault: VaultSpec?
    var policyConfigMapRef: ConfigMapKeyRef?
    var keyCacheTTL = "5m"
    var keyCacheSize = 10000
    var intermediateKeyLifetime = "15m"
    var keyProviderTimeout = "5s"

    static var description: String { "Encryption of new objects and the keys that still read older ones." }
    static var fields: [Field<Self>] {
        [
            Field("passwordSecretRef", \.passwordSecretRef, "A password key-encryption keys are derived from (provider password); at least 16 characters (ENCRYPTION_PASSWORD). Prefer rawKey or a key manager."),
            Field("previousPasswordsSecretRef", \.previousPasswordsSecretRef, "Comma-separated older passwords still accepted for reading (ENCRYPTION_PREVIOUS_PASSWORDS)."),
            Field("cipher", \.cipher, "Content cipher of new objects (ENCRYPTION_CIPHER).") { $0.enumValues = ["aes-256-gcm", "chacha20-poly1305"] },
            Field("chunkSize", \.chunkSize, "Plaintext bytes per encrypted chunk of new objects (ENCRYPTION_CHUNK_SIZE).") {
                $0.minimum = 4096; $0.maximum = 16_777_216 },
            Field("allowPlaintextReads", \.allowPlaintextReads, "Serve objects stored without gateway encryption as they are; false refuses them (after a migration) (ENCRYPTION_ALLOW_PLAINTEXT_READS)."),
        ] + keyFields
    }
    static var rules: [Rule<Self>] { keyRules }
}

struct ClientCredentialsSpec: APIObject {
    var secretRef: CredentialsSecretRef?
    var credentialsFileSecretRef: SecretKeyRef?
    var anonymousAccess = "deny"
    var regions: [String] = []

    static var description: String { "Credentials of the S3 clients of the gateway (different from the backend's): one key pair, a credentials file, or both." }
    static var fields: [Field<Self>] {
        [
            Field("secretRef", \.secretRef, "One access key pair clients sign requests with, with access to everything (GATEWAY_ACCESS_KEY, GATEWAY_SECRET_KEY)."),
            Field("credentialsFileSecretRef", \.credentialsFileSecretRef, "A credentials file (JSON: many credentials, each with optional bucket list, read-only flag and own backend key pair; docs/authentication.md), mounted into the pods (GATEWAY_CREDENTIALS_FILE). The gateway reloads it when the Secret changes, without a restart; a broken file keeps the last good set."),
            Field("anonymousAccess", \.anonymousAccess, "deny refuses unsigned requests; forward sends them unsigned to the backend, whose own public ACLs and bucket policies decide (what the backend serves publicly, the gateway serves decrypted) (ANONYMOUS_ACCESS).") {
                $0.enumValues = ["deny", "forward"] },
            Field("regions", \.regions, "Regions clients may name in their SigV4 credential scope; empty: backend.region (GATEWAY_REGIONS).") {
                $0.items?.pattern = #"^[a-z0-9-]+$"#; $0.maxItems = 32; $0.listType = "set" },
        ]
    }
    static var rules: [Rule<Self>] {
        [
            Rule(cel: "has(self.secretRef) || has(self.credentialsFileSecretRef)",
                 message: "set secretRef, credentialsFileSecretRef or both") {
                $0.secretRef != nil || $0.credentialsFileSecretRef != nil },
        ]
    }
}

struct TLSSpec: APIObject {
    var secretName = ""

    static var description: String { "TLS for the gateway listener." }
    static var fields: [Field<Self>] {
        [
            Field("secretName", \.secretName, "kubernetes.io/tls Secret (tls.crt, tls.key) mounted into the pods (TLS_CERT_FILE, TLS_KEY_FILE); the gateway reloads rotated files without a restart. Empty: plain HTTP.") {
                $0.maxLength = 253 },
        ]
    }
}

struct ResourcesSpec: APIObject {
    var requests: [String: Quantity] = ["cpu": "100m", "memory": "128Mi"]
    var limits: [String: Quantity] = ["cpu": "500m", "memory": "512Mi"]

    static var description: String { "Compute resources of the gateway container (core/v1 ResourceRequirements)." }
    static var fields: [Field<Self>] {
        [
            Field("requests", \.requests, "Minimum resources, e.g. cpu: 100m, memory: 128Mi."),
            Field("limits", \.limits, "Maximum resources, e.g. cpu: 500m, memory: 512Mi."),
        ]
    }
}

struct AutoscalingSpec: APIObject {
    var enabled = false
    var minReplicas = 3
    var maxReplicas = 10
    var targetCPUUtilizationPercentage = 70
    var targetMemoryUtilizationPercentage = 80

    static var description: String { "Horizontal autoscaling; while enabled, the Deployment's replicas belong to the autoscaler." }
    static var fields: [Field<Self>] {
        [
            Field("enabled", \.enabled, "Create a HorizontalPodAutoscaler (spec.replicas is then ignored)."),
            Field("minReplicas", \.minReplicas, "Lower bound of the replica count.") { $0.minimum = 1; $0.maximum = 1000 },
            Field("maxReplicas", \.maxReplicas, "Upper bound of the replica count.") { $0.minimum = 1; $0.maximum = 1000 },
            Field("targetCPUUtilizationPercentage", \.targetCPUUtilizationPercentage, "Average CPU utilization to aim for, in percent of the request; 0 disables the CPU metric.") {
                $0.minimum = 0; $0.maximum = 1000 },
            Field("targetMemoryUtilizationPercentage", \.targetMemoryUtilizationPercentage, "Average memory utilization to aim for, in percent of the request; 0 disables the memory metric.") {
                $0.minimum = 0; $0.maximum = 1000 },
        ]
    }
    static var rules: [Rule<Self>] {
        [
            Rule(cel: "self.minReplicas <= self.maxReplicas", message: "minReplicas must not exceed maxReplicas") {
                $0.minReplicas <= $0.maxReplicas },
            Rule(cel: "!self.enabled || self.targetCPUUtilizationPercentage > 0 || self.targetMemoryUtilizationPercentage > 0",
                 message: "an enabled autoscaler needs a CPU or a memory target") {
                !$0.enabled || $0.targetCPUUtilizationPercentage > 0 || $0.targetMemoryUtilizationPercentage > 0 },
        ]
    }
}

struct PodDisruptionBudgetSpec: APIObject {
    var enabled = true
    var minAvailable: IntOrString?
    var maxUnavailable: IntOrString?

    static let percentOrCount = #"^([0-9]+|[0-9]{1,2}%|100%)$"#
    static var description: String { "The PodDisruptionBudget; with neither minAvailable nor maxUnavailable set, maxUnavailable is 1." }
    static var fields: [Field<Self>] {
        [
            Field("enabled", \.enabled, "Create a PodDisruptionBudget."),
            Field("minAvailable", \.minAvailable, "Pods that must stay available: a count or a percentage.") {
                $0.pattern = percentOrCount; $0.minimum = 0 },
            Field("maxUnavailable", \.maxUnavailable, "Pods that may be unavailable: a count or a percentage.") {
                $0.pattern = percentOrCount; $0.minimum = 0 },
        ]
    }
    static var rules: [Rule<Self>] {
        [
            Rule(cel: "!(has(self.minAvailable) && has(self.maxUnavailable))",
                 message: "set at most one of minAvailable and maxUnavailable") {
                !($0.minAvailable != nil && $0.maxUnavailable != nil) },
        ]
    }
}

/// Pods allowed to reach the gateways: the pods `podSelector` picks in the namespaces `namespaceSelector` picks.
struct NetworkPolicyPeerSpec: APIObject {
    var namespaceSelector: OpaqueObject?
    var podSelector: OpaqueObject?

    static var description: String { "Clients allowed in (core networking/v1 NetworkPolicyPeer selectors)." }
    static var fields: [Field<Self>] {
        [
            Field("namespaceSelector", \.namespaceSelector, "Label selector of client namespaces; unset: the gateway's own namespace."),
            Field("podSelector", \.podSelector, "Label selector of client pods; unset: every pod of the selected namespaces."),
        ]
    }
}

struct NetworkPolicySpec: APIObject {
    var enabled = true
    var allowedClients: [NetworkPolicyPeerSpec] = []
    var backendCIDRs: [String] = ["0.0.0.0/0", "::/0"]
    var backendPorts: [Int] = []
    var keyManagerCIDRs: [String] = ["0.0.0.0/0", "::/0"]
    var proxyCIDRs: [String] = ["0.0.0.0/0", "::/0"]
    var collectorCIDRs: [String] = ["0.0.0.0/0", "::/0"]
    var allowDNS = true

    static var description: String {
        "A NetworkPolicy: ingress only from the allowed clients to the gateway port; egress only to the backend, the key manager, the proxy, the trace collector and DNS."
    }
    static var fields: [Field<Self>] {
        [
            Field("enabled", \.enabled, "Create the NetworkPolicy."),
            Field("allowedClients", \.allowedClients, "Who may connect; empty: every pod of the gateway's namespace. Include your ingress controller and Prometheus.") {
                $0.maxItems = 64 },
            Field("backendCIDRs", \.backendCIDRs, "Address ranges of the backend.") {
                $0.items?.pattern = #"^[0-9a-fA-F:.]+/[0-9]{1,3}$"#; $0.maxItems = 64 },
            Field("backendPorts", \.backendPorts, "TCP ports of the backend; empty: the endpoint's port (443 for https, 80 for http).") {
                $0.items?.minimum = 1; $0.items?.maximum = 65535; $0.maxItems = 16 },
            Field("keyManagerCIDRs", \.keyManagerCIDRs, "Address ranges of the key manager (KMIP, AWS KMS or Vault), reached on the port of its endpoint.") {
                $0.items?.pattern = #"^[0-9a-fA-F:.]+/[0-9]{1,3}$"#; $0.maxItems = 64 },
            Field("proxyCIDRs", \.proxyCIDRs, "Address ranges of the proxy (spec.proxy), reached on its port.") {
                $0.items?.pattern = #"^[0-9a-fA-F:.]+/[0-9]{1,3}$"#; $0.maxItems = 64 },
            Field("collectorCIDRs", \.collectorCIDRs, "Address ranges of the OpenTelemetry collector (spec.tracing), reached on the port of its endpoint.") {
                $0.items?.pattern = #"^[0-9a-fA-F:.]+/[0-9]{1,3}$"#; $0.maxItems = 64 },
            Field("allowDNS", \.allowDNS, "Allow DNS (port 53, UDP and TCP) to any namespace, which resolving the backend needs."),
        ]
    }
}

struct ServiceSpec: APIObject {
    var type = "ClusterIP"
    var port = 80
    var annotations: [String: String] = [:]
    var loadBalancerSourceRanges: [String] = []
    var externalTrafficPolicy: String?

    static var description: String { "The gateway Service (port → container port 8080)." }
    static var fields: [Field<Self>] {
        [
            Field("type", \.type, "Service type.") { $0.enumValues = ["ClusterIP", "NodePort", "LoadBalancer"] },
            Field("port", \.port, "Port clients connect to.") { $0.minimum = 1; $0.maximum = 65535 },
            Field("annotations", \.annotations, "Annotations of the Service (e.g. for a cloud load balancer)."),
            Field("loadBalancerSourceRanges", \.loadBalancerSourceRanges, "Client address ranges a LoadBalancer Service accepts (where the cloud provider supports it); empty: any.") {
                $0.items?.pattern = #"^[0-9a-fA-F:.]+/[0-9]{1,3}$"#; $0.maxItems = 64; $0.listType = "set" },
            Field("externalTrafficPolicy", \.externalTrafficPolicy, "Local keeps external clients' own addresses (the gateway logs them as remote) and sends their traffic only to nodes running a gateway pod; Cluster spreads it over every node behind source NAT. NodePort and LoadBalancer only. Unset: Kubernetes' default, Cluster.") {
                $0.enumValues = ["Cluster", "Local"] },
        ]
    }
    static var rules: [Rule<Self>] {
        [
            Rule(cel: "!has(self.externalTrafficPolicy) || self.type != 'ClusterIP'",
                 message: "externalTrafficPolicy needs type NodePort or LoadBalancer") { $0.externalTrafficPolicy == nil || $0.type != "ClusterIP" },
            Rule(cel: "!has(self.loadBalancerSourceRanges) || size(self.loadBalancerSourceRanges) == 0 || self.type == 'LoadBalancer'",
                 message: "loadBalancerSourceRanges needs type LoadBalancer") { $0.loadBalancerSourceRanges.isEmpty || $0.type == "LoadBalancer" },
        ]
    }
}

struct IngressSpec: APIObject {
    var enabled = false
    var className = ""
    var host = ""
    var path = "/"
    var tlsSecretName = ""
    var annotations: [String: String] = [:]

    static var description: String { "An Ingress routing a host name to the gateway Service." }
    static var fields: [Field<Self>] {
        [
            Field("enabled", \.enabled, "Create the Ingress."),
            Field("className", \.className, "IngressClass to use; empty: the cluster's default class."),
            Field("host", \.host, "Host name clients use, e.g. s3.example.com.") {
                $0.pattern = #"^$|^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"#; $0.maxLength = 253 },
            Field("path", \.path, "Path prefix routed to the gateways.") { $0.pattern = "^/" },
            Field("tlsSecretName", \.tlsSecretName, "kubernetes.io/tls Secret terminating TLS for the host; empty: no TLS section."),
            Field("annotations", \.annotations, "Annotations of the Ingress (e.g. for cert-manager or the controller's body-size limit)."),
        ]
    }
    static var rules: [Rule<Self>] {
        [Rule(cel: "!self.enabled || self.host != ''", message: "an enabled ingress needs a host") { !$0.enabled || !$0.host.isEmpty }]
    }
}

struct ServiceMonitorSpec: APIObject {
    var enabled = false
    var interval = "30s"
    var labels: [String: String] = [:]
    var tlsConfig: OpaqueObject?

    static var description: String {
        "A ServiceMonitor for the Prometheus operator. It scrapes the probe listener (plain HTTP) when probes.port is set, so that scrapes never wait behind client requests and need no TLS settings; else the gateway port, over HTTPS with tls."
    }
    static var fields: [Field<Self>] {
        [
            Field("enabled", \.enabled, "Create the ServiceMonitor (only where monitoring.coreos.com/v1 is served; otherwise Degraded)."),
            Field("interval", \.interval, "Scrape interval.") { $0.pattern = EncryptionGatewaySpec.durationPattern },
            Field("labels", \.labels, "Labels of the ServiceMonitor (e.g. the release label your Prometheus selects)."),
            Field("tlsConfig", \.tlsConfig, "How Prometheus verifies the gateway's certificate when it scrapes the gateway port over HTTPS (tls set, probes.port not): the Prometheus operator's SafeTLSConfig, e.g. ca from a Secret and serverName. Unused when it scrapes the probe listener, which speaks plain HTTP."),
        ]
    }
}

struct TopologySpreadSpec: APIObject {
    var enabled = true
    var topologyKey = "topology.kubernetes.io/zone"
    var maxSkew = 1
    var whenUnsatisfiable = "ScheduleAnyway"

    static var description: String { "A topology spread constraint over the gateway pods." }
    static var fields: [Field<Self>] {
        [
            Field("enabled", \.enabled, "Add the constraint."),
            Field("topologyKey", \.topologyKey, "Node label whose values are the domains (zones by default).") { $0.minLength = 1 },
            Field("maxSkew", \.maxSkew, "Largest allowed difference of pod counts between domains.") { $0.minimum = 1 },
            Field("whenUnsatisfiable", \.whenUnsatisfiable, "ScheduleAnyway prefers spreading; DoNotSchedule enforces it.") {
                $0.enumValues = ["ScheduleAnyway", "DoNotSchedule"] },
        ]
    }
}
