import Foundation
import Shared

/// The key-provider part of the gateway pods (`spec.encryption`, API/EncryptionGatewayKeyTypes.swift): which
/// settings go to the ConfigMap, which come from Secret keys, and the one projected volume under
/// `/etc/s3gateway/keys` that holds every key-related file (raw keys, KMIP client certificate, CA bundles, the
/// Vault token or service-account token, the bucket policy).
extension Builders {
    static let keysDirectory = "/etc/s3gateway/keys"
    static let keysVolumeName = "keys"

    /// One file of the keys volume.
    struct KeyFile: Sendable, Equatable {
        enum Source: Sendable, Equatable {
            case secret(SecretKeyRef)
            case configMap(ConfigMapKeyRef)
            case serviceAccountToken(audience: String, expirationSeconds: Int)
        }
        var source: Source
        /// Path inside the volume.
        var path: String
        /// The spec field it comes from (for messages).
        var field: String
        /// Whether a change must roll the pods (false for files the gateway re-reads by itself).
        var rollsPods = true

        var fullPath: String { keysDirectory + "/" + path }
    }

    /// Every file the key settings need, in a stable order.
    static func keyFiles(_ e: EncryptionSpec) -> [KeyFile] {
        var files: [KeyFile] = []
        if let raw = e.rawKey {
            files.append(KeyFile(source: .secret(raw.secretRef), path: "raw/key", field: "spec.encryption.rawKey.secretRef"))
            for (i, ref) in raw.previousSecretRefs.enumerated() {
                files.append(KeyFile(source: .secret(ref), path: "raw/previous-\(i)",
                                     field: "spec.encryption.rawKey.previousSecretRefs[\(i)]"))
            }
        }
        if let kmip = e.kmip {
            let field = "spec.encryption.kmip.clientCertSecretName"
            files.append(KeyFile(source: .secret(SecretKeyRef(name: kmip.clientCertSecretName, key: "tls.crt")),
                                 path: "kmip/tls.crt", field: field))
            files.append(KeyFile(source: .secret(SecretKeyRef(name: kmip.clientCertSecretName, key: "tls.key")),
                                 path: "kmip/tls.key", field: field))
            if let ca = kmip.caSecretRef {
                files.append(KeyFile(source: .secret(ca), path: "kmip/ca.crt", field: "spec.encryption.kmip.caSecretRef"))
            }
        }
        if let ca = e.awsKMS?.caSecretRef {
            files.append(KeyFile(source: .secret(ca), path: "aws-kms/ca.crt", field: "spec.encryption.awsKMS.caSecretRef"))
        }
        if let vault = e.vault {
            if let ca = vault.caSecretRef {
                files.append(KeyFile(source: .secret(ca), path: "vault/ca.crt", field: "spec.encryption.vault.caSecretRef"))
            }
            if let token = vault.auth.tokenSecretRef {
                // Re-read by the gateway every minute and after a 403: a new token needs no restart.
                files.append(KeyFile(source: .secret(token), path: "vault/token", field: "spec.encryption.vault.auth.tokenSecretRef",
                                     rollsPods: false))
            }
            if let k8s = vault.auth.kubernetes {
                files.append(KeyFile(source: .serviceAccountToken(audience: k8s.audience, expirationSeconds: k8s.tokenExpirationSeconds),
                                     path: "vault/sa-token", field: "spec.encryption.vault.auth.kubernetes", rollsPods: false))
            }
        }
        if let policy = e.policyConfigMapRef {
            files.append(KeyFile(source: .configMap(policy), path: "policy/policy.json", field: "spec.encryption.policyConfigMapRef",
                                 rollsPods: false))
        }
        return files
    }

    /// Whether a key manager (whose keys are cached and whose intermediate keys live for a while) is configured.
    static func usesKeyManager(_ e: EncryptionSpec) -> Bool {
        e.kmip != nil || e.awsKMS != nil || e.vault != nil
    }

    /// The non-secret key settings (ConfigMap data).
    static func keyConfigData(_ e: EncryptionSpec) -> [GatewaySetting: String] {
        var d: [GatewaySetting: String] = [:]
        let files = keyFiles(e)
        func path(_ p: String) -> String? { files.first { $0.path == p }?.fullPath }
        if !e.keyProvider.isEmpty { d[.encryptionKeyProvider] = e.keyProvider }
        if e.rawKey != nil {
            d[.encryptionKeyFile] = path("raw/key")
            let previous = files.filter { $0.path.hasPrefix("raw/previous-") }.map(\.fullPath)
            if !previous.isEmpty { d[.encryptionPreviousKeyFiles] = previous.joined(separator: ",") }
        }
        if let kmip = e.kmip {
            d[.kmipEndpoint] = kmip.endpoint
            d[.kmipKeyID] = kmip.keyID
            if !kmip.serverName.isEmpty { d[.kmipServerName] = kmip.serverName }
            d[.kmipClientCertFile] = path("kmip/tls.crt")
            d[.kmipClientKeyFile] = path("kmip/tls.key")
            if let ca = path("kmip/ca.crt") { d[.kmipCAFile] = ca }
        }
        if let kms = e.awsKMS {
            d[.awsKMSKeyID] = kms.keyID
            if !kms.region.isEmpty { d[.awsKMSRegion] = kms.region }
            if !kms.endpoint.isEmpty { d[.awsKMSEndpoint] = kms.endpoint }
            if let ca = path("aws-kms/ca.crt") { d[.awsKMSCAFile] = ca }
        }
        if let vault = e.vault {
            d[.vaultAddress] = vault.address
            d[.vaultTransitKey] = vault.transitKey
            d[.vaultTransitMount] = vault.transitMount
            if !vault.namespace.isEmpty { d[.vaultNamespace] = vault.namespace }
            if let ca = path("vault/ca.crt") { d[.vaultCACert] = ca }
            if let k8s = vault.auth.kubernetes {
                d[.vaultAuthMethod] = "kubernetes"
                d[.vaultKubernetesRole] = k8s.role
                d[.vaultKubernetesMount] = k8s.mount
                d[.vaultKubernetesTokenFile] = path("vault/sa-token")
            } else {
                d[.vaultAuthMethod] = "token"
                d[.vaultTokenFile] = path("vault/token")
            }
        }
        if let policy = path("policy/policy.json") { d[.encryptionPolicyFile] = policy }
        if usesKeyManager(e) {
            d[.keyCacheTTL] = e.keyCacheTTL
            d[.keyCacheSize] = String(e.keyCacheSize)
            d[.keyIntermediateLifetime] = e.intermediateKeyLifetime
            d[.keyProviderTimeout] = e.keyProviderTimeout
        }
        return d
    }

    /// The key settings that come from Secret keys: variables, and the files of the keys volume (checked to exist
    /// and hashed like every other Secret use).
    static func keySecretUses(_ e: EncryptionSpec) -> [SecretUse] {
        var out: [SecretUse] = []
        if let password = e.passwordSecretRef {
            out.append(SecretUse(setting: .encryptionPassword, ref: password, field: "spec.encryption.passwordSecretRef"))
        }
        if let previous = e.previousPasswordsSecretRef {
            out.append(SecretUse(setting: .encryptionPreviousPasswords, ref: previous, field: "spec.encryption.previousPasswordsSecretRef"))
        }
        if let salt = e.passwordSaltSecretRef {
            out.append(SecretUse(setting: .encryptionPasswordSalt, ref: salt, field: "spec.encryption.passwordSaltSecretRef"))
        }
        if let kms = e.awsKMS {
            let c = kms.credentialsSecretRef
            out.append(SecretUse(setting: .awsKMSAccessKeyID, ref: SecretKeyRef(name: c.name, key: c.accessKeyIDKey),
                                 field: "spec.encryption.awsKMS.credentialsSecretRef"))
            out.append(SecretUse(setting: .awsKMSSecretAccessKey, ref: SecretKeyRef(name: c.name, key: c.secretAccessKeyKey),
                                 field: "spec.encryption.awsKMS.credentialsSecretRef"))
        }
        let settingOfFile: [String: GatewaySetting] = [
            "raw/key": .encryptionKeyFile, "kmip/tls.crt": .kmipClientCertFile, "kmip/tls.key": .kmipClientKeyFile,
            "kmip/ca.crt": .kmipCAFile, "aws-kms/ca.crt": .awsKMSCAFile, "vault/ca.crt": .vaultCACert, "vault/token": .vaultTokenFile,
        ]
        for file in keyFiles(e) {
            guard case .secret(let ref) = file.source else { continue }
            out.append(SecretUse(setting: settingOfFile[file.path] ?? .encryptionPreviousKeyFiles, ref: ref, field: file.field,
                                 rollsPods: file.rollsPods, mounted: true))
        }
        return out
    }

    /// The projected volume holding every key file and its mount; nil when no key file is needed.
    static func keysVolume(_ e: EncryptionSpec) -> (volume: JSONValue, mount: JSONValue)? {
        let files = keyFiles(e)
        guard !files.isEmpty else { return nil }
        // One source per file, in order: a Secret or ConfigMap may appear twice (e.g. tls.crt and tls.key).
        let sources: [JSONValue] = files.map { file in
            switch file.source {
            case .secret(let ref):
                return ["secret": ["name": .string(ref.name), "items": [["key": .string(ref.key), "path": .string(file.path)]]]]
            case .configMap(let ref):
                return ["configMap": ["name": .string(ref.name), "items": [["key": .string(ref.key), "path": .string(file.path)]]]]
            case .serviceAccountToken(let audience, let seconds):
                var token: [String: JSONValue] = ["path": .string(file.path), "expirationSeconds": .integer(Int64(seconds))]
                if !audience.isEmpty { token["audience"] = .string(audience) }
                return ["serviceAccountToken": .object(token)]
            }
        }
        // Readable by the gateway's group (fsGroup 65534) only.
        let volume: JSONValue = ["name": .string(keysVolumeName), "projected": ["defaultMode": 0o440, "sources": .array(sources)]]
        let mount: JSONValue = ["name": .string(keysVolumeName), "mountPath": .string(keysDirectory), "readOnly": true]
        return (volume, mount)
    }

    /// TCP ports of the configured key managers (for the NetworkPolicy's egress).
    static func keyManagerPorts(_ e: EncryptionSpec) -> [Int] {
        var ports: [Int] = []
        if let kmip = e.kmip {
            // host:port or [v6]:port; 5696 when no port is given.
            let afterHost = kmip.endpoint.hasPrefix("[") ? String(kmip.endpoint.drop { $0 != "]" }.dropFirst()) : kmip.endpoint
            if let colon = afterHost.lastIndex(of: ":"), let port = Int(afterHost[afterHost.index(after: colon)...]) {
                ports.append(port)
            } else {
                ports.append(5696)
            }
        }
        if let kms = e.awsKMS { ports.append(kms.endpoint.isEmpty ? 443 : port(ofURL: kms.endpoint)) }
        if let vault = e.vault { ports.append(port(ofURL: vault.address)) }
        var seen = Set<Int>()
        return ports.filter { seen.insert($0).inserted }
    }
}
