import Foundation
import Testing
@testable import Proxy
@testable import Shared
import TestSupport

@Suite struct KeySettingsTests {
    /// Each test's own key files, removed when the test's suite instance goes.
    let directory = TempDir(prefix: "key-settings")
    let keyFile: String
    let oldKeyFile: String

    init() {
        keyFile = directory.write("key", String(repeating: "ab", count: 32) + "\n")
        oldKeyFile = directory.write("old-key", Data(Array(repeating: UInt8(3), count: 32)).base64EncodedString())
    }

    func file(_ name: String, _ text: String) -> String {
        directory.write(name, text)
    }

    func parse(_ env: [String: String]) throws(ConfigurationError) -> KeySettings {
        try KeySettings.parse({ env[$0.rawValue].flatMap { $0.isEmpty ? nil : $0 } }, environment: env)
    }

    func error(_ env: [String: String]) -> ConfigurationError? {
        do {
            _ = try parse(env)
            return nil
        } catch {
            return error
        }
    }

    @Test func theOnlyConfiguredProviderIsTheDefault() throws {
        #expect(try parse(["ENCRYPTION_KEY_FILE": keyFile]).defaultProvider == .raw)
        #expect(try parse(["ENCRYPTION_PASSWORD": "correct horse battery staple"]).defaultProvider == .password)
        let vault = try parse(["VAULT_ADDR": "https://vault:8200", "VAULT_TRANSIT_KEY": "s3eg", "VAULT_TOKEN": "t"])
        #expect(vault.defaultProvider == .vaultTransit)
        #expect(vault.defaultKey == KeySpec(provider: .vaultTransit, name: "s3eg"))
        #expect(vault.vault?.auth == .token("t"))
        let both = ["ENCRYPTION_KEY_FILE": keyFile, "ENCRYPTION_PASSWORD": "correct horse battery staple"]
        #expect(error(both)?.setting == "ENCRYPTION_KEY_PROVIDER")
        var chosen = both
        chosen["ENCRYPTION_KEY_PROVIDER"] = "password"
        #expect(try parse(chosen).configuredProviders == [.raw, .password])
        #expect(error([:])?.setting == "ENCRYPTION_KEY_PROVIDER")
        #expect(error(["ENCRYPTION_KEY_PROVIDER": "kmip"])?.setting == "KMIP_ENDPOINT")
        #expect(error(["ENCRYPTION_KEY_PROVIDER": "gpg", "ENCRYPTION_KEY_FILE": keyFile])?.setting == "ENCRYPTION_KEY_PROVIDER")
    }

    @Test func providerBlocksValidateTheirSettings() throws {
        let kmipBase = ["KMIP_ENDPOINT": "kmip.example.com", "KMIP_KEY_ID": "42", "KMIP_CLIENT_CERT_FILE": keyFile,
                        "KMIP_CLIENT_KEY_FILE": keyFile]
        let kmip = try parse(kmipBase).kmip
        #expect(kmip?.host == "kmip.example.com" && kmip?.port == 5696 && kmip?.keyID == "42")
        var v6 = kmipBase
        v6["KMIP_ENDPOINT"] = "[::1]:15696"
        #expect(try parse(v6).kmip?.host == "::1")
        for (name, value) in [("KMIP_ENDPOINT", "host:99999"), ("KMIP_ENDPOINT", "https://host/"), ("KMIP_CLIENT_CERT_FILE", "/nonexistent")] {
            var env = kmipBase
            env[name] = value
            #expect(error(env)?.setting == name, "\(name)=\(value)")
        }
        var noKey = kmipBase
        noKey["KMIP_KEY_ID"] = nil
        #expect(error(noKey)?.setting == "KMIP_KEY_ID")

        let kms = try parse(["AWS_KMS_KEY_ID": "alias/s3", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_REGION": "eu-west-1"]).awsKMS
        #expect(kms?.accessKeyID == "AK" && kms?.region == "eu-west-1" && kms?.endpoint == "https://kms.eu-west-1.amazonaws.com")
        #expect(error(["AWS_KMS_KEY_ID": "alias/s3"])?.setting == "AWS_KMS_ACCESS_KEY_ID")

        let k8s = try parse(["VAULT_ADDR": "https://v", "VAULT_TRANSIT_KEY": "k", "VAULT_KUBERNETES_ROLE": "gw"]).vault?.auth
        #expect(k8s == .kubernetes(role: "gw", jwtFile: "/var/run/secrets/kubernetes.io/serviceaccount/token", mount: "kubernetes"))
        #expect(error(["VAULT_ADDR": "https://v", "VAULT_TRANSIT_KEY": "k"])?.setting == "VAULT_TOKEN")
        #expect(error(["VAULT_ADDR": "https://v", "VAULT_TRANSIT_KEY": "k", "VAULT_TOKEN": "t", "VAULT_AUTH_METHOD": "ldap"])?.setting == "VAULT_AUTH_METHOD")
    }

    @Test func tuningAndLocalKeys() throws {
        var env = ["ENCRYPTION_KEY_FILE": keyFile, "ENCRYPTION_PREVIOUS_KEY_FILES": "\(oldKeyFile), \(keyFile)",
                   "KEY_CACHE_TTL": "0", "KEY_INTERMEDIATE_LIFETIME": "1h", "KEY_CACHE_SIZE": "5", "KEY_PROVIDER_TIMEOUT": "2s"]
        let settings = try parse(env)
        #expect(settings.tuning.cacheTTL == .zero && settings.tuning.intermediateLifetime == .seconds(3600))
        #expect(settings.tuning.cacheCapacity == 5 && settings.providerTimeout == .seconds(2))
        let keys = try settings.makeKeyService()
        #expect(keys.local[.raw]?.keys.count == 2)
        #expect(keys.local[.raw]?.active.bytes == Array(repeating: 0xAB, count: 32))
        env["KEY_PROVIDER_TIMEOUT"] = "0"
        #expect(error(env)?.setting == "KEY_PROVIDER_TIMEOUT")
        env["KEY_PROVIDER_TIMEOUT"] = nil
        env["ENCRYPTION_PREVIOUS_KEY_FILES"] = "\(oldKeyFile),,x"
        #expect(error(env)?.setting == "ENCRYPTION_PREVIOUS_KEY_FILES")
        #expect(error(["ENCRYPTION_PASSWORD": "correct horse battery staple", "ENCRYPTION_PASSWORD_SALT": "short"])?.setting == "ENCRYPTION_PASSWORD_SALT")
        // A key file with something else than a key: refused at start-up, its content never echoed.
        let bad = file("bad-key", "hunter2-is-not-a-key")
        do {
            _ = try parse(["ENCRYPTION_KEY_FILE": bad]).makeKeyService()
            Issue.record("accepted a bad key file")
        } catch {
            #expect(error.setting == "ENCRYPTION_KEY_FILE")
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test func thePolicyFileIsValidatedAgainstTheConfiguredProviders() throws {
        let policy = file("policy.json", "{\"keys\": {\"v\": {\"provider\": \"vault-transit\", \"key\": \"tenant\"}}, \"buckets\": [{\"match\": \"t-*\", \"action\": \"encrypt\", \"key\": \"v\"}]}")
        do {
            _ = try parse(["ENCRYPTION_KEY_FILE": keyFile, "ENCRYPTION_POLICY_FILE": policy]).makeKeyService()
            Issue.record("accepted a policy naming an unconfigured provider")
        } catch {
            #expect(error.setting == "ENCRYPTION_POLICY_FILE")
            #expect(error.message.contains("vault-transit"))
        }
        let keys = try parse(["ENCRYPTION_KEY_FILE": keyFile, "ENCRYPTION_KEY_PROVIDER": "raw", "ENCRYPTION_POLICY_FILE": policy,
                              "VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TRANSIT_KEY": "s3eg", "VAULT_TOKEN": "t"]).makeKeyService()
        #expect(keys.decision(bucket: "t-1") == .encrypt(KeySpec(provider: .vaultTransit, name: "tenant"), keyName: "v"))
        #expect(keys.decision(bucket: "other") == .encrypt(KeySpec(provider: .raw), keyName: "default"))
    }
}
