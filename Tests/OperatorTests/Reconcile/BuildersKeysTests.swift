import Foundation
import Shared
import Testing
@testable import Operator

/// Table tests of the key-provider part of the builders (`spec.encryption`): settings, Secret uses, the keys
/// volume and the key manager's egress.
@Suite struct BuildersKeysTests {
    typealias B = BuildersTests

    /// A spec whose encryption block is `encryption` (replacing the minimal spec's password).
    static func snapshot(_ encryption: JSONValue, _ mutate: @escaping (inout JSONValue) -> Void = { _ in }) -> Snapshot {
        B.snapshot { spec in
            spec["encryption"] = encryption
            mutate(&spec)
        }
    }

    static func data(_ s: Snapshot) -> JSONValue? { B.child(s, .configMap)?["data"] }

    static func keysVolume(_ s: Snapshot) -> JSONValue? {
        B.child(s, .deployment)?[path: "spec", "template", "spec", "volumes"]?.array?.first { $0["name"] == "keys" }
    }

    /// The projected volume's sources as "kind name/key → path" (or "serviceAccountToken → path").
    static func sources(_ s: Snapshot) -> [String] {
        (keysVolume(s)?[path: "projected", "sources"]?.array ?? []).map { source in
            if let t = source["serviceAccountToken"] { return "serviceAccountToken → \(t["path"]?.string ?? "")" }
            for kind in ["secret", "configMap"] {
                if let v = source[kind], let item = v["items"]?[0] {
                    return "\(kind) \(v["name"]?.string ?? "")/\(item["key"]?.string ?? "") → \(item["path"]?.string ?? "")"
                }
            }
            return "?"
        }
    }

    static func mountsKeys(_ s: Snapshot) -> Bool {
        B.container(s)?["volumeMounts"]?.array?.contains {
            $0["name"] == "keys" && $0["mountPath"] == "/etc/s3gateway/keys" && $0["readOnly"] == true
        } == true
    }

    static func egressPorts(_ s: Snapshot) -> [[JSONValue]] {
        (B.child(s, .networkPolicy)?[path: "spec", "egress"]?.array ?? []).map { $0["ports"]?.array?.compactMap { $0["port"] } ?? [] }
    }

    /// Every ConfigMap key and Secret-fed variable is a gateway setting and reaches the container.
    static func consistent(_ s: Snapshot) -> Bool {
        let known = Set(GatewaySetting.allCases.map(\.rawValue))
        let env = B.env(s)
        let keys = data(s)?.object?.keys.map { $0 } ?? []
        return Set(env.keys).isSubset(of: known) && keys.allSatisfy { env[$0]?["configMapKeyRef"] != nil }
    }

    static let kmip: JSONValue = ["endpoint": "kmip.keys.svc:5697", "keyID": "uid-1", "clientCertSecretName": "kmip-client",
                                  "caSecretRef": ["name": "kmip-ca", "key": "ca.pem"]]
    static let awsKMS: JSONValue = ["keyID": "alias/s3gw", "region": "eu-west-1", "credentialsSecretRef": ["name": "kms"]]
    static let vaultToken: JSONValue = ["address": "https://vault.vault.svc:8200", "transitKey": "s3gw",
                                        "auth": ["tokenSecretRef": ["name": "vault", "key": "token"]]]

    /// (case, encryption block, check on the built children)
    static let cases: [(String, JSONValue, @Sendable (Snapshot) -> Bool)] = [
        ("password only: no keys volume, no key-manager settings", ["passwordSecretRef": ["name": "e", "key": "password"]], { s in
            keysVolume(s) == nil && data(s)?["KEY_CACHE_TTL"] == nil && data(s)?["ENCRYPTION_KEY_PROVIDER"] == nil
                && B.env(s)["ENCRYPTION_PASSWORD"] == ["secretKeyRef": ["name": "e", "key": "password"]]
        }),
        ("password with salt and previous passwords", ["passwordSecretRef": ["name": "e", "key": "password"],
                                                        "passwordSaltSecretRef": ["name": "e", "key": "salt"],
                                                        "previousPasswordsSecretRef": ["name": "e", "key": "old"]], { s in
            B.env(s)["ENCRYPTION_PASSWORD_SALT"] == ["secretKeyRef": ["name": "e", "key": "salt"]]
                && B.env(s)["ENCRYPTION_PREVIOUS_PASSWORDS"] == ["secretKeyRef": ["name": "e", "key": "old"]]
        }),
        ("raw key with previous keys", ["rawKey": ["secretRef": ["name": "k", "key": "key"],
                                                   "previousSecretRefs": [["name": "k", "key": "old1"], ["name": "k0", "key": "key"]]]], { s in
            sources(s) == ["secret k/key → raw/key", "secret k/old1 → raw/previous-0", "secret k0/key → raw/previous-1"]
                && data(s)?["ENCRYPTION_KEY_FILE"] == "/etc/s3gateway/keys/raw/key"
                && data(s)?["ENCRYPTION_PREVIOUS_KEY_FILES"] == "/etc/s3gateway/keys/raw/previous-0,/etc/s3gateway/keys/raw/previous-1"
                && keysVolume(s)?[path: "projected", "defaultMode"] == 0o440 && mountsKeys(s)
                && B.env(s)["ENCRYPTION_PASSWORD"] == nil && data(s)?["KEY_CACHE_TTL"] == nil
                // The raw key is read at start: a change rolls the pods.
                && Builders.secretUses(s.spec).filter { $0.field.hasPrefix("spec.encryption.rawKey") }.allSatisfy { $0.rollsPods && $0.mounted }
        }),
        ("kmip: endpoint, key, client certificate, CA, egress to its port", ["kmip": kmip], { s in
            let d = data(s)
            return sources(s) == ["secret kmip-client/tls.crt → kmip/tls.crt", "secret kmip-client/tls.key → kmip/tls.key",
                                  "secret kmip-ca/ca.pem → kmip/ca.crt"]
                && d?["KMIP_ENDPOINT"] == "kmip.keys.svc:5697" && d?["KMIP_KEY_ID"] == "uid-1"
                && d?["KMIP_CLIENT_CERT_FILE"] == "/etc/s3gateway/keys/kmip/tls.crt"
                && d?["KMIP_CLIENT_KEY_FILE"] == "/etc/s3gateway/keys/kmip/tls.key"
                && d?["KMIP_CA_FILE"] == "/etc/s3gateway/keys/kmip/ca.crt" && d?["KMIP_SERVER_NAME"] == nil
                && d?["KEY_CACHE_TTL"] == "5m" && d?["KEY_CACHE_SIZE"] == "10000" && d?["KEY_INTERMEDIATE_LIFETIME"] == "15m"
                && d?["KEY_PROVIDER_TIMEOUT"] == "5s"
                && egressPorts(s).contains([5697])
        }),
        ("kmip without a port: 5696; server name", ["kmip": ["endpoint": "10.0.0.7", "keyID": "uid-1", "clientCertSecretName": "c",
                                                              "serverName": "kmip.example.com"]], { s in
            egressPorts(s).contains([5696]) && data(s)?["KMIP_SERVER_NAME"] == "kmip.example.com" && data(s)?["KMIP_CA_FILE"] == nil
        }),
        ("aws-kms: key, region, credentials from the Secret, egress 443", ["awsKMS": awsKMS], { s in
            let env = B.env(s)
            return env["AWS_KMS_ACCESS_KEY_ID"] == ["secretKeyRef": ["name": "kms", "key": "accessKeyID"]]
                && env["AWS_KMS_SECRET_ACCESS_KEY"] == ["secretKeyRef": ["name": "kms", "key": "secretAccessKey"]]
                && data(s)?["AWS_KMS_KEY_ID"] == "alias/s3gw" && data(s)?["AWS_KMS_REGION"] == "eu-west-1"
                && data(s)?["AWS_KMS_ENDPOINT"] == nil && keysVolume(s) == nil && egressPorts(s).contains([443])
        }),
        ("aws-kms with an endpoint and a CA", ["awsKMS": ["keyID": "k", "endpoint": "http://kms.local:4566",
                                                          "credentialsSecretRef": ["name": "kms", "accessKeyIDKey": "id", "secretAccessKeyKey": "secret"],
                                                          "caSecretRef": ["name": "kms-ca", "key": "ca.crt"]]], { s in
            data(s)?["AWS_KMS_ENDPOINT"] == "http://kms.local:4566" && data(s)?["AWS_KMS_REGION"] == nil
                && data(s)?["AWS_KMS_CA_FILE"] == "/etc/s3gateway/keys/aws-kms/ca.crt"
                && B.env(s)["AWS_KMS_ACCESS_KEY_ID"]?[path: "secretKeyRef", "key"] == "id"
                && sources(s) == ["secret kms-ca/ca.crt → aws-kms/ca.crt"] && egressPorts(s).contains([4566])
        }),
        ("vault with a token: file re-read by the gateway, not rolling pods", ["vault": vaultToken], { s in
            let d = data(s)
            return d?["VAULT_ADDR"] == "https://vault.vault.svc:8200" && d?["VAULT_TRANSIT_KEY"] == "s3gw"
                && d?["VAULT_TRANSIT_MOUNT"] == "transit" && d?["VAULT_AUTH_METHOD"] == "token"
                && d?["VAULT_TOKEN_FILE"] == "/etc/s3gateway/keys/vault/token" && B.env(s)["VAULT_TOKEN"] == nil
                && sources(s) == ["secret vault/token → vault/token"]
                && Builders.secretUses(s.spec).first { $0.ref.name == "vault" }?.rollsPods == false
                && egressPorts(s).contains([8200])
        }),
        ("vault with Kubernetes auth: projected service-account token", ["vault": [
            "address": "http://vault:8200", "transitKey": "k", "transitMount": "kv/transit", "namespace": "team-a",
            "caSecretRef": ["name": "vault-ca", "key": "ca.crt"],
            "auth": ["kubernetes": ["role": "s3gw", "audience": "vault", "tokenExpirationSeconds": 1200]],
        ]], { s in
            let d = data(s)
            let token = keysVolume(s)?[path: "projected", "sources"]?.array?.compactMap { $0["serviceAccountToken"] }.first
            return d?["VAULT_AUTH_METHOD"] == "kubernetes" && d?["VAULT_KUBERNETES_ROLE"] == "s3gw"
                && d?["VAULT_KUBERNETES_MOUNT"] == "kubernetes" && d?["VAULT_KUBERNETES_TOKEN_FILE"] == "/etc/s3gateway/keys/vault/sa-token"
                && d?["VAULT_TRANSIT_MOUNT"] == "kv/transit" && d?["VAULT_NAMESPACE"] == "team-a"
                && d?["VAULT_CACERT"] == "/etc/s3gateway/keys/vault/ca.crt" && d?["VAULT_TOKEN_FILE"] == nil
                && token == ["path": "vault/sa-token", "audience": "vault", "expirationSeconds": 1200]
                // The token is projected, not the automounted one.
                && B.child(s, .deployment)?[path: "spec", "template", "spec", "automountServiceAccountToken"] == false
        }),
        ("bucket policy from a ConfigMap, reloaded without a roll", ["rawKey": ["secretRef": ["name": "k", "key": "key"]],
                                                                     "policyConfigMapRef": ["name": "policy"]], { s in
            sources(s) == ["secret k/key → raw/key", "configMap policy/policy.json → policy/policy.json"]
                && data(s)?["ENCRYPTION_POLICY_FILE"] == "/etc/s3gateway/keys/policy/policy.json"
                // A ConfigMap is no Secret use (the kubelet reports a missing one on the pod).
                && !Builders.secretUses(s.spec).contains { $0.ref.name == "policy" }
        }),
        ("several providers: keyProvider picks, cache tuning", ["keyProvider": "vault-transit", "vault": vaultToken,
                                                                 "passwordSecretRef": ["name": "e", "key": "password"],
                                                                 "keyCacheTTL": "0", "keyCacheSize": 50, "intermediateKeyLifetime": "1h",
                                                                 "keyProviderTimeout": "2s"], { s in
            let d = data(s)
            return d?["ENCRYPTION_KEY_PROVIDER"] == "vault-transit" && d?["KEY_CACHE_TTL"] == "0" && d?["KEY_CACHE_SIZE"] == "50"
                && d?["KEY_INTERMEDIATE_LIFETIME"] == "1h" && d?["KEY_PROVIDER_TIMEOUT"] == "2s"
                && B.env(s)["ENCRYPTION_PASSWORD"] != nil
        }),
    ]

    @Test(arguments: cases.indices)
    func everyKeyOptionReachesThePods(_ i: Int) {
        let (name, encryption, check) = Self.cases[i]
        let s = Self.snapshot(encryption)
        #expect(check(s), "\(name)")
        #expect(Self.consistent(s), "\(name): a setting is not a GatewaySetting or does not reach the container")
    }

    @Test func keyManagerEgressUsesItsOwnCIDRs() {
        let s = Self.snapshot(["kmip": Self.kmip]) { $0["networkPolicy"] = ["keyManagerCIDRs": ["10.1.0.0/16"], "backendCIDRs": ["10.2.0.0/16"]] }
        let egress = B.child(s, .networkPolicy)?[path: "spec", "egress"]?.array ?? []
        #expect(egress.contains { $0["to"] == [["ipBlock": ["cidr": "10.1.0.0/16"]]] && $0["ports"] == [["protocol": "TCP", "port": 5697]] })
        #expect(egress.contains { $0["to"] == [["ipBlock": ["cidr": "10.2.0.0/16"]]] && $0["ports"] == [["protocol": "TCP", "port": 443]] })
        // Without a key manager: no extra rule.
        #expect(B.child(B.snapshot(), .networkPolicy)?[path: "spec", "egress"]?.array?.count == 2)
    }

    @Test func keySecretsMustExistAndOnlyTheGatewaysOwnReloadsSkipTheRoll() throws {
        var spec = APITypesTests.minimalSpec
        spec["encryption"] = ["keyProvider": "kmip", "kmip": Self.kmip, "vault": Self.vaultToken]
        let h = ReconcilerTests.Harness(spec: spec)
        h.client.seed(.encryptionGateways, [h.gateways.get(h.key)!])
        _ = h.run()
        #expect(h.condition("Degraded")?["reason"] == "SecretNotFound")
        #expect(h.condition("Degraded")?["message"]?.string?.contains("kmip-client (spec.encryption.kmip.clientCertSecretName)") == true)
        h.addSecret("kmip-client", ["tls.crt", "tls.key"])
        h.addSecret("kmip-ca", ["ca.pem"])
        h.addSecret("vault", ["token"])
        let resource = GatewayResource.parse(h.gateways.get(h.key)!).resource
        let before = try #require(try? h.reconciler.secretHash(resource).get())
        h.addSecret("vault", ["token"], value: "bmV3LXRva2Vu")
        #expect((try? h.reconciler.secretHash(resource).get()) == before, "the gateway re-reads the Vault token file")
        h.addSecret("kmip-client", ["tls.crt", "tls.key"], value: "bmV3LWNlcnQ=")
        #expect((try? h.reconciler.secretHash(resource).get()) != before, "the KMIP client certificate is loaded at start")
        h.syncCaches()
        _ = h.run()
        #expect(h.condition("Degraded")?["status"] == "False")
        #expect(h.client.writes.contains("apply deployments ns/gw"))
    }

    /// (case, encryption block, expected problem)
    static let invalid: [(String, JSONValue, String)] = [
        ("no key at all", [:], "configure a key: rawKey, passwordSecretRef, kmip, awsKMS or vault"),
        ("two providers, none chosen", ["kmip": kmip, "awsKMS": awsKMS], "keyProvider is required when several providers are configured"),
        ("chosen provider without settings", ["keyProvider": "kmip", "awsKMS": awsKMS], "keyProvider names a provider without settings"),
        ("unknown provider", ["keyProvider": "gpg", "awsKMS": awsKMS], "spec.encryption.keyProvider: must be one of"),
        ("previous passwords without a password", ["rawKey": ["secretRef": ["name": "k", "key": "key"]],
                                                  "previousPasswordsSecretRef": ["name": "e", "key": "old"]], "previousPasswordsSecretRef needs passwordSecretRef"),
        ("vault with two auth methods", ["vault": ["address": "https://v:8200", "transitKey": "k",
                                                   "auth": ["tokenSecretRef": ["name": "v", "key": "t"], "kubernetes": ["role": "r"]]]],
         "set exactly one of tokenSecretRef and kubernetes"),
        ("vault without auth", ["vault": ["address": "https://v:8200", "transitKey": "k", "auth": [:]]],
         "set exactly one of tokenSecretRef and kubernetes"),
        ("kmip endpoint with a scheme", ["kmip": ["endpoint": "https://kmip:5696", "keyID": "u", "clientCertSecretName": "c"]],
         "spec.encryption.kmip.endpoint"),
        ("cache TTL not a duration", ["awsKMS": awsKMS, "keyCacheTTL": "5 minutes"], "spec.encryption.keyCacheTTL"),
        ("projected token too short-lived", ["vault": ["address": "https://v:8200", "transitKey": "k",
                                                       "auth": ["kubernetes": ["role": "r", "tokenExpirationSeconds": 60]]]],
         "must be at least 600"),
    ]

    @Test(arguments: invalid.indices)
    func invalidKeySettingsAreReportedByField(_ i: Int) {
        let (name, encryption, expected) = Self.invalid[i]
        var spec = APITypesTests.minimalSpec
        spec["encryption"] = encryption
        let problems = EncryptionGatewaySpec.decode(spec, path: "spec").problems
        #expect(problems.contains { $0.contains(expected) }, "\(name): \(problems)")
    }
}
