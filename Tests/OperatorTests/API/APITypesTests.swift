import Foundation
import Shared
import Testing
@testable import Operator

/// The Swift types are the single source of the API: every property has exactly one field with a description,
/// the committed CRD is what they generate, and defaulting/validation behave like the API server plus CEL.
@Suite struct APITypesTests {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Every API object type, with a value to reflect on.
    static let types: [(name: String, properties: [String], fieldNames: [String], descriptions: [String?])] = {
        func entry<T: APIObject>(_ t: T.Type) -> (String, [String], [String], [String?]) {
            let properties = Mirror(reflecting: T()).children.compactMap(\.label)
            return ("\(T.self)", properties, T.fields.map(\.name), T.fields.map(\.schema.description))
        }
        return [
            entry(EncryptionGatewaySpec.self), entry(SecretKeyRef.self), entry(CredentialsSecretRef.self),
            entry(BackendSpec.self), entry(ProxySpec.self), entry(TracingSpec.self), entry(LocalObjectReference.self),
            entry(EncryptionSpec.self), entry(ClientCredentialsSpec.self),
            entry(ResourcesSpec.self), entry(AutoscalingSpec.self), entry(PodDisruptionBudgetSpec.self),
            entry(NetworkPolicyPeerSpec.self), entry(NetworkPolicySpec.self), entry(ServiceSpec.self),
            entry(IngressSpec.self), entry(ServiceMonitorSpec.self), entry(TopologySpreadSpec.self),
            entry(EncryptionGatewayStatus.self), entry(Condition.self),
        ].map { (name: $0.0, properties: $0.1, fieldNames: $0.2, descriptions: $0.3) }
    }()

    @Test(arguments: types.map(\.name))
    func everyPropertyHasExactlyOneDescribedField(_ name: String) throws {
        let t = try #require(Self.types.first { $0.name == name })
        #expect(t.fieldNames.sorted() == t.properties.sorted(), "properties and fields of \(name) differ")
        #expect(Set(t.fieldNames).count == t.fieldNames.count, "a field of \(name) is declared twice")
        for (field, description) in zip(t.fieldNames, t.descriptions) {
            #expect((description ?? "").count > 10, "\(name).\(field) needs a description")
        }
    }

    @Test func committedCRDIsGeneratedFromTheTypes() throws {
        let path = Self.repoRoot.appendingPathComponent(EncryptionGatewayCRD.path).path
        let committed = try String(contentsOfFile: path, encoding: .utf8)
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            try EncryptionGatewayCRD.yaml.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        #expect(committed == EncryptionGatewayCRD.yaml,
                "config/crd is stale: run `swift run encryption-gateway-operator crd > \(EncryptionGatewayCRD.path)`")
        // And it reads back as the same object.
        #expect(try YAMLToJSON.parse(committed) == EncryptionGatewayCRD.object)
    }

    @Test func schemaIsStructuralEverywhere() {
        // Structural schemas: every node has a type (or is int-or-string / preserves unknown fields), objects have
        // properties or additionalProperties or preserve unknown fields, arrays have items.
        func check(_ s: Schema, _ path: String) {
            switch s.kind {
            case .object:
                #expect(!s.properties.isEmpty || s.additionalProperties != nil || s.preserveUnknownFields || path == ".metadata",
                        "\(path) is an object without a shape")
                for (k, p) in s.properties { check(p, path + "." + k) }
                if let a = s.additionalProperties { check(a, path + ".*") }
            case .array:
                #expect(s.items != nil, "\(path) is an array without items")
                if let items = s.items { check(items, path + "[]") }
            default: break
            }
        }
        check(EncryptionGatewayCRD.schema, "")
        #expect(EncryptionGatewayCRD.schema.properties["spec"]?.required.sorted() == ["backend", "clientCredentials", "encryption"])
    }

    static let minimalSpec: JSONValue = [
        "backend": ["endpoint": "https://s3.example.com", "credentialsSecretRef": ["name": "b"]],
        "encryption": ["passwordSecretRef": ["name": "e", "key": "password"]],
        "clientCredentials": ["secretRef": ["name": "c"]],
    ]

    @Test func defaultsComeFromTheTypesInitialValues() {
        let (spec, problems) = EncryptionGatewaySpec.decode(Self.minimalSpec, path: "spec")
        #expect(problems.isEmpty)
        #expect(spec.replicas == 3 && spec.logLevel == "info" && spec.maxConnections == 1024)
        #expect(spec.backend.region == "us-east-1" && spec.backend.credentialsSecretRef.accessKeyIDKey == "accessKeyID")
        #expect(spec.encryption.cipher == "aes-256-gcm" && spec.encryption.chunkSize == 65536)
        #expect(spec.networkPolicy.enabled && spec.podDisruptionBudget.enabled && !spec.autoscaling.enabled)
        #expect(spec.service.port == 80 && spec.ingress.path == "/")
        // The CRD carries the same defaults, nested objects defaulting to {} so the server fills them in.
        let specSchema = EncryptionGatewaySpec.schema
        #expect(specSchema.properties["replicas"]?.defaultValue == 3)
        #expect(specSchema.properties["autoscaling"]?.defaultValue == .object([:]))
        #expect(specSchema.properties["autoscaling"]?.properties["maxReplicas"]?.defaultValue == 10)
        #expect(specSchema.properties["backend"]?.defaultValue == nil)  // required: no default
        #expect(specSchema.properties["image"]?.defaultValue == nil)    // empty means "operator default"
        #expect(specSchema.properties["affinity"]?.defaultValue == nil)
    }

    /// A spec change → the problem it must produce (a path and a phrase).
    static let invalid: [(String, @Sendable (inout JSONValue) -> Void, String)] = [
        ("negative replicas", { $0["replicas"] = -1 }, "spec.replicas: must be at least 0"),
        ("unknown cipher", { $0["encryption"]?["cipher"] = "des" }, "spec.encryption.cipher: must be one of"),
        ("chunk size too small", { $0["encryption"]?["chunkSize"] = 100 }, "spec.encryption.chunkSize: must be at least 4096"),
        ("ftp endpoint", { $0["backend"]?["endpoint"] = "ftp://x" }, "spec.backend.endpoint:"),
        ("missing backend", { $0["backend"] = nil }, "spec.backend: required value"),
        ("missing secret name", { $0["clientCredentials"]?["secretRef"] = [:] }, "spec.clientCredentials.secretRef.name: required value"),
        ("no client credentials (CEL rule)", { $0["clientCredentials"] = [:] },
         "spec.clientCredentials: set secretRef, credentialsFileSecretRef or both"),
        ("unknown anonymous access", { $0["clientCredentials"]?["anonymousAccess"] = "allow" }, "spec.clientCredentials.anonymousAccess: must be one of"),
        ("bad region", { $0["clientCredentials"]?["regions"] = ["EU West"] }, "spec.clientCredentials.regions[0]:"),
        ("credentials file without key", { $0["clientCredentials"]?["credentialsFileSecretRef"] = ["name": "f"] },
         "spec.clientCredentials.credentialsFileSecretRef.key: required value"),
        ("unknown field", { $0["replica"] = 2 }, "spec.replica: unknown field"),
        ("wrong type", { $0["maxConnections"] = "many" }, "spec.maxConnections: must be an integer"),
        ("bad duration", { $0["requestTimeout"] = "1 minute" }, "spec.requestTimeout:"),
        ("bad quantity", { $0["resources"] = ["requests": ["cpu": "lots"]] }, "spec.resources.requests.cpu:"),
        ("min above max (CEL rule)", { $0["autoscaling"] = ["enabled": true, "minReplicas": 5, "maxReplicas": 2] },
         "spec.autoscaling: minReplicas must not exceed maxReplicas"),
        ("no autoscaling target (CEL rule)",
         { $0["autoscaling"] = ["enabled": true, "targetCPUUtilizationPercentage": 0, "targetMemoryUtilizationPercentage": 0] },
         "spec.autoscaling: an enabled autoscaler needs a CPU or a memory target"),
        ("both PDB bounds (CEL rule)", { $0["podDisruptionBudget"] = ["minAvailable": 1, "maxUnavailable": "10%"] },
         "spec.podDisruptionBudget: set at most one of minAvailable and maxUnavailable"),
        ("ingress without host (CEL rule)", { $0["ingress"] = ["enabled": true] }, "spec.ingress: an enabled ingress needs a host"),
        ("bad percentage", { $0["podDisruptionBudget"] = ["maxUnavailable": "150%"] }, "spec.podDisruptionBudget.maxUnavailable:"),
        ("bad CIDR", { $0["networkPolicy"] = ["backendCIDRs": ["10.0.0.1"]] }, "spec.networkPolicy.backendCIDRs[0]:"),
        ("duplicate domains", { $0["domains"] = ["a.example", "a.example"] }, "spec.domains: must not contain duplicates"),
        ("zero auth timeout", { $0["authTimeout"] = "0s" }, "spec.authTimeout:"),
        ("auth timeout without unit", { $0["authTimeout"] = "10" }, "spec.authTimeout:"),
        ("no unauthenticated connections", { $0["maxUnauthenticatedConnections"] = 0 }, "spec.maxUnauthenticatedConnections: must be at least 1"),
        ("unauthenticated budget above the total (CEL rule)", { $0["maxConnections"] = 100; $0["maxUnauthenticatedConnections"] = 101 },
         "spec: maxUnauthenticatedConnections must not exceed maxConnections"),
        ("privileged probe port", { $0["probes"] = ["port": 81] }, "spec.probes.port: must be at least 1024"),
        ("traffic policy of a ClusterIP Service (CEL rule)", { $0["service"] = ["externalTrafficPolicy": "Local"] },
         "spec.service: externalTrafficPolicy needs type NodePort or LoadBalancer"),
        ("source ranges of a NodePort Service (CEL rule)", { $0["service"] = ["type": "NodePort", "loadBalancerSourceRanges": ["10.0.0.0/8"]] },
         "spec.service: loadBalancerSourceRanges needs type LoadBalancer"),
        ("source range without a prefix length", { $0["service"] = ["type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.1"]] },
         "spec.service.loadBalancerSourceRanges[0]:"),
        ("unknown traffic policy", { $0["service"] = ["type": "LoadBalancer", "externalTrafficPolicy": "Nearest"] },
         "spec.service.externalTrafficPolicy:"),
        ("probe port on the gateway port (CEL rule)", { $0["probes"] = ["port": 8080] }, "spec.probes: probes.port must differ from the gateway port 8080"),
        ("proxy URL with credentials", { $0["proxy"] = ["url": "http://user:pw@proxy.example.com:3128"] }, "spec.proxy.url:"),
        ("proxy URL with a path", { $0["proxy"] = ["url": "http://proxy.example.com:3128/x"] }, "spec.proxy.url:"),
        ("socks proxy", { $0["proxy"] = ["url": "socks5://proxy.example.com:1080"] }, "spec.proxy.url:"),
        ("proxy without a URL (CEL rule)", { $0["proxy"] = ["noProxy": [".svc"]] }, "spec.proxy: set exactly one of url and urlSecretRef"),
        ("proxy URL twice (CEL rule)", { $0["proxy"] = ["url": "http://p:3128", "urlSecretRef": ["name": "p", "key": "url"]] },
         "spec.proxy: set exactly one of url and urlSecretRef"),
        ("proxy URL from a Secret without port (CEL rule)", { $0["proxy"] = ["urlSecretRef": ["name": "p", "key": "url"]] },
         "spec.proxy: a proxy URL from a Secret needs port (for the NetworkPolicy)"),
        ("bad no-proxy entry", { $0["proxy"] = ["url": "http://p:3128", "noProxy": ["a b"]] }, "spec.proxy.noProxy[0]:"),
        ("no-proxy * among other entries (CEL rule)", { $0["proxy"] = ["url": "http://p:3128", "noProxy": [".svc", "*"]] },
         "spec.proxy: noProxy: * already means every host; list it alone"),
        ("no-proxy list with a comma", { $0["proxy"] = ["url": "http://p:3128", "noProxy": [".svc,.local"]] }, "spec.proxy.noProxy[0]:"),
        ("bad proxy CIDR", { $0["networkPolicy"] = ["proxyCIDRs": ["proxy"]] }, "spec.networkPolicy.proxyCIDRs[0]:"),
        ("tracing without endpoint", { $0["tracing"] = ["sampler": "always_on"] }, "spec.tracing.endpoint: required value"),
        ("grpc collector", { $0["tracing"] = ["endpoint": "grpc://collector:4317"] }, "spec.tracing.endpoint:"),
        ("unknown sampler", { $0["tracing"] = ["endpoint": "http://c:4318", "sampler": "sometimes"] }, "spec.tracing.sampler: must be one of"),
        ("ratio above 1", { $0["tracing"] = ["endpoint": "http://c:4318", "sampler": "traceidratio", "samplerArg": "1.5"] },
         "spec.tracing.samplerArg:"),
        ("ratio for a sampler without one (CEL rule)", { $0["tracing"] = ["endpoint": "http://c:4318", "samplerArg": "0.5"] },
         "spec.tracing: samplerArg applies to the traceidratio samplers only"),
        ("bad collector CIDR", { $0["networkPolicy"] = ["collectorCIDRs": ["10.0.0.0"]] }, "spec.networkPolicy.collectorCIDRs[0]:"),
        ("pull secret without a name", { $0["imagePullSecrets"] = [[:]] }, "spec.imagePullSecrets[0].name: required value"),
    ]

    @Test(arguments: invalid.indices)
    func invalidSpecsAreRefusedWithThePath(_ i: Int) {
        let (name, mutate, expected) = Self.invalid[i]
        var spec = Self.minimalSpec
        mutate(&spec)
        let problems = EncryptionGatewaySpec.decode(spec, path: "spec").problems
        #expect(problems.contains { $0.hasPrefix(expected) || $0.contains(expected) }, "\(name): \(problems)")
    }

    /// Every duration the gateway reads: what the schema admits, the gateway accepts (a value it refused would leave
    /// the pods crash-looping on a configuration error instead of the resource reporting InvalidSpec).
    @Test func durationsTheSchemaAdmitsAreDurationsTheGatewayAccepts() throws {
        let spec = EncryptionGatewaySpec.schema
        let encryption = try #require(spec.properties["encryption"])
        let fields: [(Schema?, GatewaySetting, zeroMeansOff: Bool)] = [
            (spec.properties["requestTimeout"], .requestTimeout, false), (spec.properties["shutdownGracePeriod"], .shutdownGracePeriod, false),
            (spec.properties["authTimeout"], .authTimeout, false), (encryption.properties["keyProviderTimeout"], .keyProviderTimeout, false),
            (encryption.properties["keyCacheTTL"], .keyCacheTTL, true), (encryption.properties["intermediateKeyLifetime"], .keyIntermediateLifetime, true),
        ]
        let samples = ["0", "0s", "0ms", "00s", "1ms", "500ms", "30s", "5m", "1h", "999999h", "1000000s", "1000001s", "010s",
                       "-1s", "1.5s", "5 m", "1d", "", "s"]
        for (schema, setting, zeroMeansOff) in fields {
            let pattern = try #require(schema?.pattern, "\(setting.rawValue) has no pattern")
            #expect(schema?.defaultValue.flatMap(\.string).map { Schema.matches($0, pattern) } == true, "\(setting.rawValue) default")
            for value in samples where Schema.matches(value, pattern) {
                let off = zeroMeansOff && (value == "0" || value == "0s")
                #expect(off || (try? GatewayConfiguration.duration(value, setting)) != nil, "\(setting.rawValue)=\(value) passes the schema only")
            }
            #expect(Schema.matches("30s", pattern) && !Schema.matches("0ms", pattern))
        }
    }

    @Test func validVariantsPass() {
        for mutate: (inout JSONValue) -> Void in [
            { $0["podDisruptionBudget"] = ["maxUnavailable": "25%"] },
            { $0["podDisruptionBudget"] = ["minAvailable": 2] },
            { $0["ingress"] = ["enabled": true, "host": "s3.example.com"] },
            { $0["autoscaling"] = ["enabled": true, "minReplicas": 2, "maxReplicas": 2] },
            { $0["resources"] = ["requests": ["cpu": "0.5", "memory": "1Gi"], "limits": ["cpu": 2]] },
            { $0["affinity"] = ["nodeAffinity": ["anything": ["goes": true]]] },
            { $0["backend"]?["endpoint"] = "http://10.0.0.1:7480" },
            { $0["authTimeout"] = "500ms"; $0["maxUnauthenticatedConnections"] = 1024; $0["probes"] = ["port": 8081] },
            { $0["proxy"] = ["url": "http://proxy.example.com:3128", "noProxy": [".svc", "cluster.local", "10.0.0.0/8", "::1", "s3.internal"]] },
            { $0["proxy"] = ["url": "http://proxy.example.com:3128", "noProxy": ["*"]] },
            { $0["proxy"] = ["url": "https://proxy.example.com/"] },
            { $0["proxy"] = ["urlSecretRef": ["name": "p", "key": "url"], "port": 8080] },
            { $0["tracing"] = ["endpoint": "https://otlp.example.com", "sampler": "parentbased_traceidratio", "samplerArg": "0.05",
                               "headersSecretRef": ["name": "otlp", "key": "headers"]] },
            { $0["tracing"] = ["endpoint": "http://otel-collector.monitoring.svc:4318"] },
            { $0["imagePullSecrets"] = [["name": "registry"]] },
        ] {
            var spec = Self.minimalSpec
            mutate(&spec)
            #expect(EncryptionGatewaySpec.decode(spec, path: "spec").problems == [])
        }
    }

    @Test func resourceNamesMustFitTheChildren() {
        var o: JSONValue = ["metadata": ["name": "ok-name", "namespace": "ns"], "spec": Self.minimalSpec]
        #expect(GatewayResource.parse(o).problems.isEmpty)
        o["metadata"]?["name"] = .string(String(repeating: "a", count: 57))
        #expect(GatewayResource.parse(o).problems.contains { $0.contains("at most 56") })
        o["metadata"]?["name"] = "1abc"
        #expect(GatewayResource.parse(o).problems.contains { $0.contains("DNS-1035") })
        // Another gateway's probe Service would collide with this one's client Service.
        o["metadata"]?["name"] = "gw-probes"
        #expect(GatewayResource.parse(o).problems.contains { $0.contains("'-probes'") })
    }

    @Test func rulesCarryCELAndTheSwiftCheckTogether() {
        let schema = EncryptionGatewayCRD.schema
        let autoscaling = schema.properties["spec"]?.properties["autoscaling"]
        #expect(autoscaling?.validations.map(\.rule) == AutoscalingSpec.rules.map(\.cel))
        #expect(schema.validations.count == EncryptionGatewayCRD.nameRules.count)
        #expect(EncryptionGatewayCRD.object[path: "spec", "versions"]?[0]?[path: "schema", "openAPIV3Schema", "x-kubernetes-validations"] != nil)
    }
}
