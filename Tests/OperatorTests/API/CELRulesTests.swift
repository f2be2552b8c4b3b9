import Foundation
import Shared
import Testing
@testable import Operator
import TestSupport

/// Each `Rule` is written twice — CEL for API servers from 1.25 on, Swift for the operator on every cluster. A CEL
/// engine (cel-python, Tests/OperatorTests/API/cel_eval.py) evaluates the CRD's expressions over a grid of values and
/// must agree with the Swift checks everywhere, so the two cannot drift apart.
@Suite struct CELRulesTests {
    static let script = APITypesTests.repoRoot.appendingPathComponent("Tests/OperatorTests/API/cel_eval.py").path

    static func evaluate(_ cases: [(rule: String, value: JSONValue)]) throws -> [JSONValue] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script]
        // The cases go through a file, not a pipe: if python3 exits early (cel-python missing), writing to a pipe
        // would kill the whole test process with SIGPIPE instead of failing this test with python's message.
        let dir = TempDir(prefix: "cel-eval")
        let body: JSONValue = .array(cases.map { ["rule": .string($0.rule), "self": $0.value] })
        let casesFile = dir.url.appendingPathComponent("cases.json")
        try Data(body.encoded()).write(to: casesFile)
        let output = Pipe(), errors = Pipe()
        p.standardInput = try FileHandle(forReadingFrom: casesFile)
        p.standardOutput = output
        p.standardError = errors
        try p.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw TestSupportError.failed("cel_eval.py failed: \(String(decoding: err, as: UTF8.self))")
        }
        return try JSONValue.parse(Array(data)).array ?? []
    }

    /// For every rule of `T`, every value: (CEL expression, the value as the API server sees it, the Swift verdict).
    static func grid<T: APIObject>(_ type: T.Type, _ values: [T]) -> [(rule: String, value: JSONValue, swift: Bool)] {
        T.rules.flatMap { rule in values.map { (rule.cel, $0.json ?? .null, rule.check($0)) } }
    }

    /// Key providers: every combination of configured providers, with every keyProvider value.
    static var encryptionGrid: [EncryptionSpec] {
        let ref = SecretKeyRef(name: "s", key: "k")
        var out: [EncryptionSpec] = []
        for mask in 0..<32 {
            for provider in EncryptionSpec.keyProviders {
                var e = EncryptionSpec()
                e.keyProvider = provider
                if mask & 1 != 0 { e.rawKey = RawKeySpec(secretRef: ref) }
                if mask & 2 != 0 { e.passwordSecretRef = ref }
                if mask & 4 != 0 { e.kmip = KMIPSpec(endpoint: "k:5696", keyID: "u", clientCertSecretName: "c") }
                if mask & 8 != 0 { e.awsKMS = AWSKMSSpec(keyID: "k") }
                if mask & 16 != 0 { e.vault = VaultSpec(address: "https://v", transitKey: "t") }
                out.append(e)
            }
        }
        for (previous, salt) in [(true, false), (false, true), (true, true)] {
            for password in [false, true] {
                var e = EncryptionSpec()
                e.rawKey = RawKeySpec(secretRef: ref)
                e.keyProvider = "raw"
                if password { e.passwordSecretRef = ref }
                if previous { e.previousPasswordsSecretRef = ref }
                if salt { e.passwordSaltSecretRef = ref }
                out.append(e)
            }
        }
        return out
    }

    static var vaultAuthGrid: [VaultAuthSpec] {
        let token = SecretKeyRef(name: "v", key: "t"), k8s = VaultKubernetesAuthSpec(role: "r")
        return [VaultAuthSpec(), VaultAuthSpec(tokenSecretRef: token), VaultAuthSpec(kubernetes: k8s),
                VaultAuthSpec(tokenSecretRef: token, kubernetes: k8s)]
    }

    @Test func celAndSwiftAgreeOnEveryRule() throws {
        var autoscaling: [AutoscalingSpec] = []
        for enabled in [false, true] {
            for (min, max) in [(1, 1), (2, 5), (5, 2), (10, 3)] {
                for (cpu, memory) in [(0, 0), (70, 0), (0, 80), (50, 50)] {
                    autoscaling.append(AutoscalingSpec(enabled: enabled, minReplicas: min, maxReplicas: max,
                                                       targetCPUUtilizationPercentage: cpu, targetMemoryUtilizationPercentage: memory))
                }
            }
        }
        var pdb: [PodDisruptionBudgetSpec] = []
        for min in [nil, IntOrString.int(2), .string("50%")] {
            for max in [nil, IntOrString.int(1), .string("10%")] {
                pdb.append(PodDisruptionBudgetSpec(enabled: true, minAvailable: min, maxUnavailable: max))
            }
        }
        var ingress: [IngressSpec] = []
        for enabled in [false, true] {
            for host in ["", "s3.example.com"] { ingress.append(IngressSpec(enabled: enabled, host: host)) }
        }
        var clients: [ClientCredentialsSpec] = []
        for pair in [nil, CredentialsSecretRef(name: "c")] {
            for file in [nil, SecretKeyRef(name: "f", key: "credentials.json")] {
                clients.append(ClientCredentialsSpec(secretRef: pair, credentialsFileSecretRef: file))
            }
        }
        var budgets: [EncryptionGatewaySpec] = []
        for (total, unauthenticated) in [(1024, nil), (100, 1), (100, 100), (100, 101), (1, 2)] as [(Int, Int?)] {
            var spec = EncryptionGatewaySpec()
            spec.maxConnections = total
            spec.maxUnauthenticatedConnections = unauthenticated
            budgets.append(spec)
        }
        let probes = [nil, 8081, 8080, 9090].map { ProbesSpec(port: $0) }
        var services: [ServiceSpec] = []
        for type in ["ClusterIP", "NodePort", "LoadBalancer"] {
            for policy in [nil, "Local", "Cluster"] {
                for ranges in [[], ["10.0.0.0/8"]] {
                    services.append(ServiceSpec(type: type, loadBalancerSourceRanges: ranges, externalTrafficPolicy: policy))
                }
            }
        }
        var tracing: [TracingSpec] = []
        for sampler in Sampler.names {
            for arg in [nil, "0.5"] { tracing.append(TracingSpec(endpoint: "http://c:4318", sampler: sampler, samplerArg: arg)) }
        }
        var proxies: [ProxySpec] = []
        for url in [nil, "http://proxy:3128"] {
            for ref in [nil, SecretKeyRef(name: "p", key: "url")] {
                for port in [nil, 8080] { proxies.append(ProxySpec(url: url, urlSecretRef: ref, port: port)) }
            }
        }
        for noProxy in [[], ["*"], ["*", ".svc"], [".svc", "*"], [".svc", "minio"]] {
            proxies.append(ProxySpec(url: "http://proxy:3128", noProxy: noProxy))
        }
        var cases = Self.grid(AutoscalingSpec.self, autoscaling) + Self.grid(PodDisruptionBudgetSpec.self, pdb)
            + Self.grid(EncryptionGatewaySpec.self, budgets) + Self.grid(ProbesSpec.self, probes) + Self.grid(ServiceSpec.self, services)
            + Self.grid(IngressSpec.self, ingress) + Self.grid(ClientCredentialsSpec.self, clients)
            + Self.grid(EncryptionSpec.self, Self.encryptionGrid) + Self.grid(VaultAuthSpec.self, Self.vaultAuthGrid)
            + Self.grid(ProxySpec.self, proxies) + Self.grid(TracingSpec.self, tracing)
        for name in ["gw", "a", "my-gateway-1", "1gw", "Gw", "gw-", "gw_1", "gw-probes", "gw-probes-1", "probes", String(repeating: "a", count: 56),
                     String(repeating: "a", count: 57)] {
            for rule in EncryptionGatewayCRD.nameRules {
                cases.append((rule.cel, ["metadata": ["name": .string(name)]], rule.check(name)))
            }
        }
        // Every rule in the CRD is covered.
        let covered = Set(cases.map(\.rule))
        var inCRD: [String] = []
        func collect(_ s: Schema) {
            inCRD += s.validations.map(\.rule)
            for p in s.properties.values { collect(p) }
            if let i = s.items { collect(i) }
        }
        collect(EncryptionGatewayCRD.schema)
        #expect(Set(inCRD) == covered, "rules without cases: \(Set(inCRD).subtracting(covered))")

        let results = try Self.evaluate(cases.map { ($0.rule, $0.value) })
        #expect(results.count == cases.count)
        for (c, cel) in zip(cases, results) {
            #expect(cel == .bool(c.swift), "\(c.rule) over \(c.value.jsonString): CEL says \(cel.jsonString), Swift says \(c.swift)")
        }
    }
}
