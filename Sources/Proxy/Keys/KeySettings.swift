import Foundation
import Shared

/// The key-provider part of the environment contract (docs/keys.md), validated. The same settings
/// serve the gateway and the offline `rotate`/`decrypt` commands.
public struct KeySettings: Sendable {
    /// The provider of the `default` key (new objects of buckets the policy does not send elsewhere).
    public var defaultProvider: KeyProviderKind
    public var keyFile: String?
    public var previousKeyFiles: [String] = []
    public var password: String?
    public var previousPasswords: [String] = []
    /// Per-deployment scrypt salt for `password` keys (UTF-8 bytes of the value).
    public var passwordSalt: String?
    public var kmip: KMIPSettings?
    public var awsKMS: AWSKMSSettings?
    public var vault: VaultSettings?
    public var policyFile: String?
    public var tuning = KeyService.Tuning()
    public var providerTimeout: Duration = .seconds(5)

    /// Reads the settings. `value` gives a setting's non-empty value (flags over environment);
    /// `environment` supplies the standard AWS credential variables as a fallback for AWS KMS.
    public static func parse(_ value: (GatewaySetting) -> String?, environment: [String: String]) throws(ConfigurationError) -> KeySettings {
        func required(_ s: GatewaySetting, for what: String) throws(ConfigurationError) -> String {
            guard let v = value(s) else { throw ConfigurationError(s, "is required for \(what)") }
            return v
        }
        func readableFile(_ s: GatewaySetting, _ path: String) throws(ConfigurationError) -> String {
            guard FileManager.default.isReadableFile(atPath: path) else { throw ConfigurationError(s, "cannot read \(JSON.quote(path))") }
            return path
        }
        func duration(_ s: GatewaySetting, default d: Duration, allowZero: Bool) throws(ConfigurationError) -> Duration {
            guard let text = value(s) else { return d }
            if allowZero && (text == "0" || text == "0s") { return .zero }
            return try GatewayConfiguration.duration(text, s)
        }

        let password = value(.encryptionPassword)
        let keyFile = value(.encryptionKeyFile)
        var explicit: KeyProviderKind?
        if let name = value(.encryptionKeyProvider) {
            guard let kind = KeyProviderKind(rawValue: name.lowercased()) else {
                throw ConfigurationError(.encryptionKeyProvider, "must be one of \(KeyProviderKind.allCases.map(\.rawValue).joined(separator: ", ")), got \(JSON.quote(name))")
            }
            explicit = kind
        }
        let provider = explicit ?? .raw  // the real default is settled below, once every provider block is read
        var settings = KeySettings(defaultProvider: provider)

        if let keyFile { settings.keyFile = try readableFile(.encryptionKeyFile, keyFile) }
        if let list = value(.encryptionPreviousKeyFiles) {
            settings.previousKeyFiles = try list.split(separator: ",", omittingEmptySubsequences: false).map { part throws(ConfigurationError) -> String in
                let path = part.trimmingCharacters(in: .whitespaces)
                guard !path.isEmpty else { throw ConfigurationError(.encryptionPreviousKeyFiles, "has an empty entry; separate file names with single commas") }
                return try readableFile(.encryptionPreviousKeyFiles, path)
            }
        }
        if let password {
            guard password.utf8.count >= 16 else { throw ConfigurationError(.encryptionPassword, "must be at least 16 characters long") }
            settings.password = password
        }
        settings.previousPasswords = try GatewayConfiguration.previousPasswords(value(.encryptionPreviousPasswords))
        if let salt = value(.encryptionPasswordSalt) {
            guard salt.utf8.count >= 16 else {
                throw ConfigurationError(.encryptionPasswordSalt, "must be at least 16 characters (e.g. `openssl rand -hex 16`)")
            }
            settings.passwordSalt = salt
        }
        if settings.keyFile == nil && !settings.previousKeyFiles.isEmpty {
            throw ConfigurationError(.encryptionPreviousKeyFiles, "needs ENCRYPTION_KEY_FILE (the active raw key)")
        }
        if settings.password == nil && !settings.previousPasswords.isEmpty {
            throw ConfigurationError(.encryptionPreviousPasswords, "needs ENCRYPTION_PASSWORD (the active password)")
        }

        // KMIP: configured when KMIP_ENDPOINT is set.
        if let endpoint = value(.kmipEndpoint) {
            let (host, port) = try hostPort(endpoint, defaultPort: 5696, setting: .kmipEndpoint)
            settings.kmip = KMIPSettings(
                host: host, port: port, keyID: try required(.kmipKeyID, for: "KMIP"),
                caFile: try value(.kmipCAFile).map { p throws(ConfigurationError) in try readableFile(.kmipCAFile, p) },
                certificateFile: try readableFile(.kmipClientCertFile, required(.kmipClientCertFile, for: "KMIP (mutual TLS)")),
                keyFile: try readableFile(.kmipClientKeyFile, required(.kmipClientKeyFile, for: "KMIP (mutual TLS)")),
                serverName: value(.kmipServerName))
        }

        // AWS KMS: configured when AWS_KMS_KEY_ID is set.
        if let keyID = value(.awsKMSKeyID) {
            let region = value(.awsKMSRegion) ?? environment["AWS_REGION"].flatMap { $0.isEmpty ? nil : $0 } ?? "us-east-1"
            let access = value(.awsKMSAccessKeyID) ?? environment["AWS_ACCESS_KEY_ID"].flatMap { $0.isEmpty ? nil : $0 }
            let secret = value(.awsKMSSecretAccessKey) ?? environment["AWS_SECRET_ACCESS_KEY"].flatMap { $0.isEmpty ? nil : $0 }
            guard let access, let secret else {
                throw ConfigurationError(.awsKMSAccessKeyID, "and AWS_KMS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) are required for AWS KMS")
            }
            let token = value(.awsKMSSessionToken) ?? environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            settings.awsKMS = AWSKMSSettings(keyID: keyID, region: region, endpoint: value(.awsKMSEndpoint), accessKeyID: access,
                                             secretAccessKey: secret, sessionToken: token,
                                             caFile: try value(.awsKMSCAFile).map { p throws(ConfigurationError) in try readableFile(.awsKMSCAFile, p) })
        }

        // Vault Transit: configured when VAULT_ADDR is set.
        if let address = value(.vaultAddress) {
            let method = value(.vaultAuthMethod)?.lowercased() ?? (value(.vaultKubernetesRole) != nil ? "kubernetes" : "token")
            let auth: VaultAuth
            switch method {
            case "token":
                if let file = value(.vaultTokenFile) {
                    auth = .tokenFile(try readableFile(.vaultTokenFile, file))
                } else if let token = value(.vaultToken) {
                    auth = .token(token)
                } else {
                    throw ConfigurationError(.vaultToken, "or VAULT_TOKEN_FILE is required for Vault token auth (or set VAULT_KUBERNETES_ROLE for Kubernetes auth)")
                }
            case "kubernetes":
                auth = .kubernetes(role: try required(.vaultKubernetesRole, for: "Vault Kubernetes auth"),
                                   jwtFile: value(.vaultKubernetesTokenFile) ?? "/var/run/secrets/kubernetes.io/serviceaccount/token",
                                   mount: value(.vaultKubernetesMount) ?? "kubernetes")
            default:
                throw ConfigurationError(.vaultAuthMethod, "must be token or kubernetes, got \(JSON.quote(method))")
            }
            settings.vault = VaultSettings(address: address, mount: value(.vaultTransitMount) ?? "transit",
                                           keyName: try required(.vaultTransitKey, for: "Vault Transit"),
                                           namespace: value(.vaultNamespace),
                                           caFile: try value(.vaultCACert).map { p throws(ConfigurationError) in try readableFile(.vaultCACert, p) },
                                           auth: auth)
        }

        let configured = settings.configuredProviders
        if let explicit {
            guard configured.contains(explicit) else {
                switch explicit {
                case .raw: throw ConfigurationError(.encryptionKeyFile, "is required for ENCRYPTION_KEY_PROVIDER=raw (a file holding 32 bytes as 64 hex digits or base64; `openssl rand -hex 32`)")
                case .password: throw ConfigurationError(.encryptionPassword, "is required for ENCRYPTION_KEY_PROVIDER=password")
                case .kmip: throw ConfigurationError(.kmipEndpoint, "is required for ENCRYPTION_KEY_PROVIDER=kmip (host:port of the KMIP server)")
                case .awsKMS: throw ConfigurationError(.awsKMSKeyID, "is required for ENCRYPTION_KEY_PROVIDER=aws-kms (key id, key ARN or alias/NAME)")
                case .vaultTransit: throw ConfigurationError(.vaultAddress, "is required for ENCRYPTION_KEY_PROVIDER=vault-transit (https://vault.example.com:8200)")
                }
            }
        } else if configured.count == 1, let only = configured.first {
            settings.defaultProvider = only
        } else if configured.isEmpty {
            throw ConfigurationError(.encryptionKeyProvider, "no key is configured: set ENCRYPTION_KEY_FILE (a raw key), a key manager (KMIP_ENDPOINT, AWS_KMS_KEY_ID or VAULT_ADDR) or ENCRYPTION_PASSWORD, or GATEWAY_PASSTHROUGH=true")
        } else {
            throw ConfigurationError(.encryptionKeyProvider, "is required when several providers are configured (\(configured.map(\.rawValue).sorted().joined(separator: ", "))): which one wraps new objects?")
        }

        if let policy = value(.encryptionPolicyFile) { settings.policyFile = try readableFile(.encryptionPolicyFile, policy) }
        settings.tuning.cacheTTL = try duration(.keyCacheTTL, default: .seconds(300), allowZero: true)
        settings.tuning.intermediateLifetime = try duration(.keyIntermediateLifetime, default: .seconds(900), allowZero: true)
        settings.providerTimeout = try duration(.keyProviderTimeout, default: .seconds(5), allowZero: false)
        if let text = value(.keyCacheSize) {
            guard let n = Int(text), n >= 0, n <= 10_000_000 else {
                throw ConfigurationError(.keyCacheSize, "must be a whole number from 0 to 10000000, got \(JSON.quote(text))")
            }
            settings.tuning.cacheCapacity = n
        }
        return settings
    }

    static func hostPort(_ text: String, defaultPort: Int, setting: GatewaySetting) throws(ConfigurationError) -> (String, Int) {
        var host = text
        var port = defaultPort
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ConfigurationError(setting, "must be host:port, got \(JSON.quote(text))") }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else {
                    throw ConfigurationError(setting, "must be host:port, got \(JSON.quote(text))")
                }
                port = p
            }
        } else if let colon = text.lastIndex(of: ":") {
            guard let p = Int(text[text.index(after: colon)...]), (1...65535).contains(p) else {
                throw ConfigurationError(setting, "must be host:port, got \(JSON.quote(text))")
            }
            host = String(text[..<colon])
            port = p
        }
        guard !host.isEmpty, !host.contains("/") else { throw ConfigurationError(setting, "must be host:port, got \(JSON.quote(text))") }
        return (host, port)
    }

    /// Every provider with settings.
    public var configuredProviders: Set<KeyProviderKind> {
        var out: Set<KeyProviderKind> = []
        if keyFile != nil { out.insert(.raw) }
        if password != nil { out.insert(.password) }
        if kmip != nil { out.insert(.kmip) }
        if awsKMS != nil { out.insert(.awsKMS) }
        if vault != nil { out.insert(.vaultTransit) }
        return out
    }

    public var defaultKey: KeySpec {
        switch defaultProvider {
        case .raw, .password: return KeySpec(provider: defaultProvider)
        case .kmip: return KeySpec(provider: .kmip, name: kmip?.keyID ?? "")
        case .awsKMS: return KeySpec(provider: .awsKMS, name: awsKMS?.keyID ?? "")
        case .vaultTransit: return KeySpec(provider: .vaultTransit, name: vault?.keyName ?? "")
        }
    }

    /// Reads key files, derives password keys (scrypt, ~100 ms each), connects the remote providers
    /// (lazily: no call is made here) and loads the policy file. Errors name the setting (exit 2).
    public func makeKeyService(logger: Logger? = nil, observer: any KeyServiceObserver = NoKeyServiceObserver()) throws(ConfigurationError) -> KeyService {
        var local: [LocalKeyring] = []
        if let keyFile {
            do {
                let active = try LocalKey.raw(RawKeyFile.read(path: keyFile))
                var previous: [LocalKey] = []
                for path in previousKeyFiles { previous.append(try LocalKey.raw(RawKeyFile.read(path: path))) }
                local.append(try LocalKeyring(active: active, previous: previous))
            } catch {
                throw ConfigurationError(.encryptionKeyFile, error.message)
            }
        }
        if let password {
            do {
                let salt = passwordSalt.map { Array($0.utf8) }
                let active = try LocalKey.password(password, salt: salt)
                var previous: [LocalKey] = []
                // With a deployment salt, the unsalted keys stay readable: objects written before the salt was set.
                if salt != nil { previous.append(try LocalKey.password(password)) }
                for old in previousPasswords {
                    if salt != nil { previous.append(try LocalKey.password(old, salt: salt)) }
                    previous.append(try LocalKey.password(old))
                }
                local.append(try LocalKeyring(active: active, previous: previous))
            } catch {
                throw ConfigurationError(.encryptionPreviousPasswords, error.message)
            }
        }
        var remote: [any RemoteKeyProvider] = []
        do throws(KeyProviderError) {
            if let kmip { remote.append(try KMIPKeyProvider(settings: kmip, timeout: providerTimeout)) }
        } catch {
            throw ConfigurationError(.kmipEndpoint, error.message)
        }
        do throws(KeyProviderError) {
            if let awsKMS { remote.append(try AWSKMSKeyProvider(settings: awsKMS, timeout: providerTimeout)) }
        } catch {
            throw ConfigurationError(.awsKMSEndpoint, error.message)
        }
        do throws(KeyProviderError) {
            if let vault { remote.append(try VaultTransitKeyProvider(settings: vault, timeout: providerTimeout, logger: logger)) }
        } catch {
            throw ConfigurationError(.vaultAddress, error.message)
        }
        let policy: BucketPolicy
        if let policyFile {
            guard let data = FileManager.default.contents(atPath: policyFile) else {
                throw ConfigurationError(.encryptionPolicyFile, "cannot read \(JSON.quote(policyFile))")
            }
            do {
                policy = try BucketPolicy.parse(Array(data), defaultKey: defaultKey, configured: configuredProviders)
            } catch {
                throw ConfigurationError(.encryptionPolicyFile, "\(policyFile): \(error.message)")
            }
        } else {
            policy = BucketPolicy(defaultKey: defaultKey)
        }
        do {
            return try KeyService(local: local, remote: remote, policy: policy, tuning: tuning, observer: observer)
        } catch {
            throw ConfigurationError(.encryptionKeyProvider, error.message)
        }
    }
}
