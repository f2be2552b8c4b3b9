import Foundation

/// The environment contract between the operator and the proxy: every setting
/// the proxy reads, by the variable name the operator sets. Renaming one here
/// breaks both builds instead of a cluster.
public enum GatewaySetting: String, CaseIterable, Sendable {
    case listenAddress = "LISTEN_ADDR"
    case encryptionPassword = "ENCRYPTION_PASSWORD"
    case encryptionPreviousPasswords = "ENCRYPTION_PREVIOUS_PASSWORDS"
    case encryptionChunkSize = "ENCRYPTION_CHUNK_SIZE"
    case encryptionCipher = "ENCRYPTION_CIPHER"
    case encryptionAllowPlaintextReads = "ENCRYPTION_ALLOW_PLAINTEXT_READS"
    // Key providers (docs/keys.md).
    case encryptionKeyProvider = "ENCRYPTION_KEY_PROVIDER"
    case encryptionKeyFile = "ENCRYPTION_KEY_FILE"
    case encryptionPreviousKeyFiles = "ENCRYPTION_PREVIOUS_KEY_FILES"
    case encryptionPasswordSalt = "ENCRYPTION_PASSWORD_SALT"
    case encryptionPolicyFile = "ENCRYPTION_POLICY_FILE"
    case keyCacheTTL = "KEY_CACHE_TTL"
    case keyCacheSize = "KEY_CACHE_SIZE"
    case keyIntermediateLifetime = "KEY_INTERMEDIATE_LIFETIME"
    case keyProviderTimeout = "KEY_PROVIDER_TIMEOUT"
    case kmipEndpoint = "KMIP_ENDPOINT"
    case kmipKeyID = "KMIP_KEY_ID"
    case kmipCAFile = "KMIP_CA_FILE"
    case kmipClientCertFile = "KMIP_CLIENT_CERT_FILE"
    case kmipClientKeyFile = "KMIP_CLIENT_KEY_FILE"
    case kmipServerName = "KMIP_SERVER_NAME"
    case awsKMSKeyID = "AWS_KMS_KEY_ID"
    case awsKMSRegion = "AWS_KMS_REGION"
    case awsKMSEndpoint = "AWS_KMS_ENDPOINT"
    case awsKMSAccessKeyID = "AWS_KMS_ACCESS_KEY_ID"
    case awsKMSSecretAccessKey = "AWS_KMS_SECRET_ACCESS_KEY"
    case awsKMSSessionToken = "AWS_KMS_SESSION_TOKEN"
    case awsKMSCAFile = "AWS_KMS_CA_FILE"
    case vaultAddress = "VAULT_ADDR"
    case vaultTransitKey = "VAULT_TRANSIT_KEY"
    case vaultTransitMount = "VAULT_TRANSIT_MOUNT"
    case vaultNamespace = "VAULT_NAMESPACE"
    case vaultCACert = "VAULT_CACERT"
    case vaultAuthMethod = "VAULT_AUTH_METHOD"
    case vaultToken = "VAULT_TOKEN"
    case vaultTokenFile = "VAULT_TOKEN_FILE"
    case vaultKubernetesRole = "VAULT_KUBERNETES_ROLE"
    case vaultKubernetesTokenFile = "VAULT_KUBERNETES_TOKEN_FILE"
    case vaultKubernetesMount = "VAULT_KUBERNETES_MOUNT"
    case backendEndpoint = "BACKEND_ENDPOINT"
    case backendRegion = "BACKEND_REGION"
    case backendAccessKey = "BACKEND_ACCESS_KEY"
    case backendSecretKey = "BACKEND_SECRET_KEY"
    case backendCAFile = "BACKEND_CA_FILE"
    case backendTLSInsecureSkipVerify = "BACKEND_TLS_INSECURE_SKIP_VERIFY"
    case backendUploadChecksum = "BACKEND_UPLOAD_CHECKSUM"
    case gatewayAccessKey = "GATEWAY_ACCESS_KEY"
    case gatewaySecretKey = "GATEWAY_SECRET_KEY"
    case gatewayCredentialsFile = "GATEWAY_CREDENTIALS_FILE"
    case gatewayRegions = "GATEWAY_REGIONS"
    case anonymousAccess = "ANONYMOUS_ACCESS"
    case gatewayDomains = "GATEWAY_DOMAINS"
    case passthrough = "GATEWAY_PASSTHROUGH"
    case logLevel = "LOG_LEVEL"
    case maxConnections = "MAX_CONNECTIONS"
    case requestTimeout = "REQUEST_TIMEOUT"
    case shutdownGracePeriod = "SHUTDOWN_GRACE_PERIOD"
    case tlsCertFile = "TLS_CERT_FILE"
    case tlsKeyFile = "TLS_KEY_FILE"
    case probeAddress = "PROBE_ADDR"
    case authTimeout = "AUTH_TIMEOUT"
    case maxUnauthenticatedConnections = "MAX_UNAUTHENTICATED_CONNECTIONS"

    /// The command-line flag for the same setting: `BACKEND_ENDPOINT` → `--backend-endpoint`.
    public var flag: String { "--" + rawValue.lowercased().replacingOccurrences(of: "_", with: "-") }

    /// Secrets are never printed, logged or echoed back in error messages.
    public var isSecret: Bool {
        switch self {
        case .encryptionPassword, .encryptionPreviousPasswords, .backendSecretKey, .gatewaySecretKey,
             .awsKMSSecretAccessKey, .awsKMSSessionToken, .vaultToken: return true
        default: return false
        }
    }

    public var summary: String {
        switch self {
        case .listenAddress: return "address to listen on, e.g. :8080, 127.0.0.1:9000, [::1]:8080 (default :8080)"
        case .encryptionPassword: return "password: the key-encryption key is derived from it; prefer raw or a key manager (secret)"
        case .encryptionPreviousPasswords: return "comma-separated older passwords, still accepted for reading objects (secret)"
        case .encryptionChunkSize: return "plaintext bytes per encrypted chunk of new objects, 4096 to 16777216 (default 65536)"
        case .encryptionCipher: return "content cipher of new objects: aes-256-gcm or chacha20-poly1305 (default aes-256-gcm)"
        case .encryptionAllowPlaintextReads: return "false refuses objects stored without gateway encryption instead of serving them as stored; true only while migrating (default true)"
        case .encryptionKeyProvider: return "provider of the default key: raw, password, kmip, aws-kms or vault-transit (default: raw with ENCRYPTION_KEY_FILE, password with ENCRYPTION_PASSWORD)"
        case .encryptionKeyFile: return "raw: file holding the active 256-bit key as 64 hex digits or base64 (a mounted Secret)"
        case .encryptionPreviousKeyFiles: return "raw: comma-separated files with older keys, still accepted for reading"
        case .encryptionPasswordSalt: return "password: per-deployment scrypt salt, at least 16 characters"
        case .encryptionPolicyFile: return "JSON file of per-bucket rules (encrypt with a named key, or plain); reloaded when it changes"
        case .keyCacheTTL: return "how long keys unwrapped by a key manager, and object metadata already verified, are cached, e.g. 5m; 0 disables both (default 5m)"
        case .keyCacheSize: return "unwrapped keys cached at most (default 10000; verified object metadata: at most 4096)"
        case .keyIntermediateLifetime: return "how long one intermediate key serves a bucket's new objects, e.g. 15m; 0: one per object (default 15m)"
        case .keyProviderTimeout: return "deadline of one key-manager call (default 5s)"
        case .kmipEndpoint: return "kmip: host:port of the KMIP server (port 5696 by default)"
        case .kmipKeyID: return "kmip: unique identifier of the active AES-256 key"
        case .kmipCAFile: return "kmip: PEM bundle that signed the server's certificate"
        case .kmipClientCertFile: return "kmip: client certificate (PEM) for mutual TLS"
        case .kmipClientKeyFile: return "kmip: client private key (PEM) for mutual TLS"
        case .kmipServerName: return "kmip: name to verify the server certificate against (default: the endpoint's host)"
        case .awsKMSKeyID: return "aws-kms: key id, key ARN or alias/NAME of the active key"
        case .awsKMSRegion: return "aws-kms: region (default AWS_REGION, else us-east-1)"
        case .awsKMSEndpoint: return "aws-kms: endpoint URL (default https://kms.<region>.amazonaws.com)"
        case .awsKMSAccessKeyID: return "aws-kms: access key id (default AWS_ACCESS_KEY_ID)"
        case .awsKMSSecretAccessKey: return "aws-kms: secret access key (default AWS_SECRET_ACCESS_KEY) (secret)"
        case .awsKMSSessionToken: return "aws-kms: session token for temporary credentials (secret)"
        case .awsKMSCAFile: return "aws-kms: PEM bundle for the endpoint (default: system CAs)"
        case .vaultAddress: return "vault-transit: Vault or OpenBao address, e.g. https://vault.example.com:8200"
        case .vaultTransitKey: return "vault-transit: name of the Transit key"
        case .vaultTransitMount: return "vault-transit: mount path of the Transit engine (default transit)"
        case .vaultNamespace: return "vault-transit: namespace (Vault Enterprise, OpenBao)"
        case .vaultCACert: return "vault-transit: PEM bundle for Vault's certificate (default: system CAs)"
        case .vaultAuthMethod: return "vault-transit: token or kubernetes (default kubernetes when VAULT_KUBERNETES_ROLE is set)"
        case .vaultToken: return "vault-transit: token (secret)"
        case .vaultTokenFile: return "vault-transit: file holding the token, re-read every minute and after a 403"
        case .vaultKubernetesRole: return "vault-transit: role of Vault's Kubernetes auth"
        case .vaultKubernetesTokenFile: return "vault-transit: service-account token file (default /var/run/secrets/kubernetes.io/serviceaccount/token)"
        case .vaultKubernetesMount: return "vault-transit: mount path of the Kubernetes auth method (default kubernetes)"
        case .backendEndpoint: return "URL of the S3 backend, e.g. https://s3.us-east-1.amazonaws.com (required)"
        case .backendRegion: return "region used to sign backend requests (default us-east-1)"
        case .backendAccessKey: return "access key for the backend (required)"
        case .backendSecretKey: return "secret key for the backend (required, secret)"
        case .backendCAFile: return "PEM bundle to verify the backend's TLS certificate (default: system CAs)"
        case .backendTLSInsecureSkipVerify: return "true skips backend TLS verification; test backends only (default false)"
        case .backendUploadChecksum: return "crc32: streamed uploads and parts carry a CRC32 trailer the backend verifies (AWS object-lock buckets require a checksum); off: none (Ceph RGW Pacific refuses the framing); auto: crc32 for *.amazonaws.com endpoints, else off (default auto)"
        case .gatewayAccessKey: return "access key clients sign requests with (required unless GATEWAY_CREDENTIALS_FILE is set)"
        case .gatewaySecretKey: return "secret key clients sign requests with (required with GATEWAY_ACCESS_KEY, secret)"
        case .gatewayCredentialsFile: return "JSON file of client credentials (per-credential buckets, read-only, backend keys), reloaded when it changes; see docs/authentication.md"
        case .gatewayRegions: return "comma-separated regions clients may sign for (default: BACKEND_REGION)"
        case .anonymousAccess: return "deny (default) refuses unsigned requests; forward sends them unsigned so the backend's public ACLs decide"
        case .gatewayDomains: return "comma-separated base domains for virtual-host-style buckets, e.g. s3.example.com"
        case .passthrough: return "true stores objects unencrypted (benchmarks, migration) (default false)"
        case .logLevel: return "debug, info, warn or error (default info)"
        case .maxConnections: return "concurrent client connections; more get 503 SlowDown (default 1024)"
        case .requestTimeout: return "idle timeout of a client or backend transfer, e.g. 60s, 5m (default 60s)"
        case .shutdownGracePeriod: return "time in-flight requests get to finish on SIGTERM (default 30s)"
        case .tlsCertFile: return "PEM certificate chain (leaf first) to serve HTTPS; reloaded when the file changes (needs TLS_KEY_FILE)"
        case .tlsKeyFile: return "PEM private key of TLS_CERT_FILE (unencrypted); reloaded when the file changes"
        case .probeAddress: return "extra plain-HTTP listener for /health, /ready and /metrics only, e.g. :8081; /metrics then leaves the main listener (default: none)"
        case .authTimeout: return "a connection must complete an authenticated request within this time, e.g. 10s (default 10s)"
        case .maxUnauthenticatedConnections: return "connections not yet authenticated, a part of MAX_CONNECTIONS (default a quarter of it)"
        }
    }
}

/// A configuration value that cannot be used. The message names the variable
/// (and flag) and says what is expected, never echoing a secret.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let setting: String
    public let message: String

    public init(_ setting: GatewaySetting, _ message: String) {
        self.setting = setting.rawValue
        self.message = message
    }

    public init(setting: String, message: String) {
        self.setting = setting
        self.message = message
    }

    public var description: String { "invalid configuration: \(setting): \(message)" }
}

/// Everything the proxy needs to start, validated.
public struct GatewayConfiguration: Sendable {
    public var listenAddress = GatewayConfiguration.defaultListenAddress
    /// `:8080`, every interface.
    public static let defaultListenAddress = ListenAddress(host: "", port: 8080)
    public var encryptionPassword: String?
    /// Older passwords whose keys still unwrap existing objects (never used for new writes).
    public var encryptionPreviousPasswords: [String] = []
    /// Plaintext bytes per chunk for new objects (docs/FORMAT.md §5).
    public var encryptionChunkSize = GatewayConfiguration.defaultChunkSize
    /// Content cipher for new objects, as named in object metadata (`AES-256-GCM`, `CHACHA20-POLY1305`).
    public var encryptionCipher: AEADAlgorithm = .aes256GCM
    /// Serve objects that have no gateway metadata as stored (migration). False refuses them, so that
    /// someone with write access to the backend cannot plant a plain object for clients to read.
    public var encryptionAllowPlaintextReads = true

    public static let defaultChunkSize = 65536
    /// The format's chunk-size bounds (docs/FORMAT.md §3).
    public static let chunkSizeRange = 4096...16_777_216
    public var backendEndpoint: URL
    public var backendRegion = "us-east-1"
    public var backendAccessKey: String
    public var backendSecretKey: String
    public var backendCAFile: String?
    public var backendTLSInsecureSkipVerify = false
    /// `BACKEND_UPLOAD_CHECKSUM`, as given; `sendsBackendUploadChecksums` is the decision.
    public var backendUploadChecksum = BackendUploadChecksum.auto
    /// Whether streamed uploads and parts carry a CRC32 trailer for the backend to verify.
    public var sendsBackendUploadChecksums: Bool { backendUploadChecksum.isOn(for: backendEndpoint) }
    /// The single client key pair; nil when only `GATEWAY_CREDENTIALS_FILE` supplies credentials.
    public var gatewayAccessKey: String?
    public var gatewaySecretKey: String?
    public var gatewayCredentialsFile: String?
    /// Regions a client's SigV4 credential scope may name; default `[backendRegion]`.
    public var gatewayRegions: [String] = []
    /// `ANONYMOUS_ACCESS=forward`: unsigned requests go to the backend unsigned (default: refused).
    public var anonymousForward = false
    public var gatewayDomains: [String] = []
    public var passthrough = false
    public var logLevel = LogLevel.info
    public var maxConnections = 1024
    public var requestTimeout: Duration = .seconds(60)
    public var shutdownGracePeriod: Duration = .seconds(30)
    /// HTTPS on the listener when both are set (checked at start-up by loading them).
    public var tlsCertFile: String?
    public var tlsKeyFile: String?
    /// Every setting given (flags over environment), for the parts validated elsewhere: the key
    /// providers (`KeySettings` in the proxy), which need types this module does not have.
    public var settingValues: [GatewaySetting: String] = [:]
    /// `PROBE_ADDR`: a second, plain-HTTP listener for the probe and metrics endpoints.
    public var probeAddress: ListenAddress?
    /// `AUTH_TIMEOUT`: time a connection gets to complete an authenticated request.
    public var authTimeout: Duration = .seconds(10)
    /// `MAX_UNAUTHENTICATED_CONNECTIONS`; nil means a quarter of `maxConnections` (at least 1).
    public var maxUnauthenticatedConnectionsSetting: Int?

    /// The unauthenticated budget in effect.
    public var maxUnauthenticatedConnections: Int {
        min(maxConnections, maxUnauthenticatedConnectionsSetting ?? max(1, maxConnections / 4))
    }

    /// Reads settings from flags (which win) and the environment.
    /// `arguments` excludes the program name and subcommand.
    public static func load(environment: [String: String], arguments: [String]) throws(ConfigurationError) -> GatewayConfiguration {
        let values = try merge(environment: environment, arguments: arguments)
        func value(_ s: GatewaySetting) -> String? {
            guard let v = values[s], !v.isEmpty else { return nil }
            return v
        }
        func required(_ s: GatewaySetting) throws(ConfigurationError) -> String {
            guard let v = value(s) else { throw ConfigurationError(s, "is required (set \(s.rawValue) or \(s.flag))") }
            return v
        }

        let endpointText = try required(.backendEndpoint)
        guard let endpoint = URL(string: endpointText), let scheme = endpoint.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = endpoint.host, !host.isEmpty,
              endpoint.query == nil, endpoint.user == nil, endpoint.password == nil
        else {
            // User information in the URL is a credential: never echo it (BACKEND_ACCESS_KEY/SECRET_KEY carry keys).
            let hint = endpointText.contains("@") ? " (credentials belong in BACKEND_ACCESS_KEY/BACKEND_SECRET_KEY, not in the URL)" : ""
            throw ConfigurationError(.backendEndpoint, "must be an http:// or https:// URL like https://s3.amazonaws.com, got \(JSON.quote(redactedURL(endpointText)))\(hint)")
        }
        let credentialsFile = value(.gatewayCredentialsFile)
        let accessKey = value(.gatewayAccessKey), secretKey = value(.gatewaySecretKey)
        if credentialsFile == nil || accessKey != nil || secretKey != nil {
            // One pair from the environment: both halves, unless a credentials file supplies every credential.
            _ = try required(.gatewayAccessKey)
            _ = try required(.gatewaySecretKey)
        }
        var config = GatewayConfiguration(
            backendEndpoint: endpoint,
            backendAccessKey: try required(.backendAccessKey),
            backendSecretKey: try required(.backendSecretKey),
            gatewayAccessKey: accessKey,
            gatewaySecretKey: secretKey)
        if let path = credentialsFile {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw ConfigurationError(.gatewayCredentialsFile, "cannot read \(JSON.quote(path))")
            }
            config.gatewayCredentialsFile = path
        }
        if let text = value(.anonymousAccess) {
            switch text.lowercased() {
            case "deny": config.anonymousForward = false
            case "forward": config.anonymousForward = true
            default: throw ConfigurationError(.anonymousAccess, "must be deny or forward, got \(JSON.quote(text))")
            }
        }

        if let text = value(.listenAddress) {
            do {
                config.listenAddress = try ListenAddress(parsing: text)
            } catch {
                throw ConfigurationError(.listenAddress, "\(error.message); use [host]:port like :8080 or 127.0.0.1:9000")
            }
        }
        config.passthrough = try bool(value(.passthrough), .passthrough) ?? false
        config.encryptionPassword = value(.encryptionPassword)
        if let password = config.encryptionPassword, password.utf8.count < 16 {
            throw ConfigurationError(.encryptionPassword, "must be at least 16 characters long")
        }
        config.encryptionPreviousPasswords = try previousPasswords(values[.encryptionPreviousPasswords])
        config.encryptionAllowPlaintextReads = try bool(value(.encryptionAllowPlaintextReads), .encryptionAllowPlaintextReads) ?? true
        if let text = value(.encryptionChunkSize) {
            guard text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), text.utf8.count <= 9, let n = Int(text),
                  chunkSizeRange.contains(n) else {
                throw ConfigurationError(.encryptionChunkSize, "must be a whole number of bytes from \(chunkSizeRange.lowerBound) to \(chunkSizeRange.upperBound), got \(JSON.quote(text))")
            }
            config.encryptionChunkSize = n
        }
        if let text = value(.encryptionCipher) {
            switch text.lowercased() {
            case "aes-256-gcm": config.encryptionCipher = .aes256GCM
            case "chacha20-poly1305": config.encryptionCipher = .chacha20Poly1305
            default:
                throw ConfigurationError(.encryptionCipher, "must be aes-256-gcm or chacha20-poly1305, got \(JSON.quote(text))")
            }
        }
        if let region = value(.backendRegion) {
            guard region.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) }) else {
                throw ConfigurationError(.backendRegion, "must look like us-east-1, got \(JSON.quote(region))")
            }
            config.backendRegion = region
        }
        config.gatewayRegions = [config.backendRegion]
        if let text = value(.gatewayRegions) {
            let regions = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !regions.isEmpty, regions.allSatisfy({ $0.utf8.allSatisfy { $0 == UInt8(ascii: "-") || ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) } }) else {
                throw ConfigurationError(.gatewayRegions, "must be a comma-separated list of regions like us-east-1,eu-west-1, got \(JSON.quote(text))")
            }
            config.gatewayRegions = regions
        }
        if let path = value(.backendCAFile) {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw ConfigurationError(.backendCAFile, "cannot read \(JSON.quote(path))")
            }
            config.backendCAFile = path
        }
        config.backendTLSInsecureSkipVerify = try bool(value(.backendTLSInsecureSkipVerify), .backendTLSInsecureSkipVerify) ?? false
        if let text = value(.backendUploadChecksum) {
            guard let parsed = BackendUploadChecksum(rawValue: text.lowercased()) else {
                throw ConfigurationError(.backendUploadChecksum, "must be auto, crc32 or off, got \(JSON.quote(text))")
            }
            config.backendUploadChecksum = parsed
        }
        if let domains = value(.gatewayDomains) {
            config.gatewayDomains = domains.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                .filter { !$0.isEmpty }
        }
        if let level = value(.logLevel) {
            guard let parsed = LogLevel(level) else {
                throw ConfigurationError(.logLevel, "must be debug, info, warn or error, got \(JSON.quote(level))")
            }
            config.logLevel = parsed
        }
        if let text = value(.maxConnections) {
            guard let n = Int(text), n >= 1, n <= 1_000_000 else {
                throw ConfigurationError(.maxConnections, "must be a whole number from 1 to 1000000, got \(JSON.quote(text))")
            }
            config.maxConnections = n
        }
        if let text = value(.requestTimeout) { config.requestTimeout = try duration(text, .requestTimeout) }
        if let text = value(.shutdownGracePeriod) { config.shutdownGracePeriod = try duration(text, .shutdownGracePeriod) }
        if let text = value(.probeAddress) {
            do {
                config.probeAddress = try ListenAddress(parsing: text)
            } catch {
                throw ConfigurationError(.probeAddress, "\(error.message); use [host]:port like :8081")
            }
        }
        if let text = value(.authTimeout) { config.authTimeout = try duration(text, .authTimeout) }
        if let text = value(.maxUnauthenticatedConnections) {
            guard let n = Int(text), n >= 1, n <= 1_000_000 else {
                throw ConfigurationError(.maxUnauthenticatedConnections, "must be a whole number from 1 to 1000000, got \(JSON.quote(text))")
            }
            config.maxUnauthenticatedConnectionsSetting = n
        }
        switch (value(.tlsCertFile), value(.tlsKeyFile)) {
        case (nil, nil): break
        case (let cert?, let key?):
            for (setting, path) in [(GatewaySetting.tlsCertFile, cert), (.tlsKeyFile, key)] {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw ConfigurationError(setting, "cannot read \(JSON.quote(path))")
                }
            }
            config.tlsCertFile = cert
            config.tlsKeyFile = key
        case (nil, _?): throw ConfigurationError(.tlsCertFile, "is required when TLS_KEY_FILE is set (HTTPS needs both)")
        case (_?, nil): throw ConfigurationError(.tlsKeyFile, "is required when TLS_CERT_FILE is set (HTTPS needs both)")
        }
        config.settingValues = values.filter { !$0.value.isEmpty }
        return config
    }

    /// Splits `ENCRYPTION_PREVIOUS_PASSWORDS` at every comma, without trimming: a password is used
    /// byte for byte, so it cannot contain a comma, and a password that did shows up as short pieces.
    /// Empty or short entries are refused, since they are almost always a mangled list.
    public static func previousPasswords(_ text: String?) throws(ConfigurationError) -> [String] {
        guard let text, !text.isEmpty else { return [] }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        for (index, password) in parts.enumerated() {
            guard !password.isEmpty else {
                throw ConfigurationError(.encryptionPreviousPasswords, "entry \(index + 1) is empty; separate passwords with single commas (a password cannot contain a comma)")
            }
            guard password.utf8.count >= 16 else {
                throw ConfigurationError(.encryptionPreviousPasswords, "entry \(index + 1) is shorter than 16 characters (a password cannot contain a comma: the list is split at every comma)")
            }
        }
        return parts
    }

    /// A URL with its user information (`user:password@`) replaced by `***@`.
    static func redactedURL(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return text.contains("@") ? "***" : text }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return text }
        return String(text[..<schemeEnd.upperBound]) + "***" + String(rest[at...])
    }

    /// Flags override the environment. Accepts `--flag value` and `--flag=value`.
    static func merge(environment: [String: String], arguments: [String]) throws(ConfigurationError) -> [GatewaySetting: String] {
        var values: [GatewaySetting: String] = [:]
        for setting in GatewaySetting.allCases {
            if let v = environment[setting.rawValue] { values[setting] = v }
        }
        let byFlag = Dictionary(uniqueKeysWithValues: GatewaySetting.allCases.map { ($0.flag, $0) })
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            let name: String
            var inline: String?
            if let eq = argument.firstIndex(of: "=") {
                name = String(argument[..<eq])
                inline = String(argument[argument.index(after: eq)...])
            } else {
                name = argument
            }
            guard let setting = byFlag[name] else {
                // Only the name: the value of a misspelt option (`--encryption-pasword=…`) may be a secret.
                throw ConfigurationError(setting: name, message: "unknown option (see --help)")
            }
            if let inline {
                values[setting] = inline
            } else {
                guard i + 1 < arguments.count else {
                    throw ConfigurationError(setting: name, message: "needs a value")
                }
                i += 1
                values[setting] = arguments[i]
            }
            i += 1
        }
        return values
    }

    static func bool(_ text: String?, _ setting: GatewaySetting) throws(ConfigurationError) -> Bool? {
        guard let text else { return nil }
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw ConfigurationError(setting, "must be true or false, got \(JSON.quote(text))")
        }
    }

    /// Parses `500ms`, `30s`, `5m`, `1h` or a plain number of seconds.
    public static func duration(_ text: String, _ setting: GatewaySetting) throws(ConfigurationError) -> Duration {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var number = Substring(text)
        var scale: Int64 = 1000
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let candidate = text.dropLast(suffix.count)
            if !candidate.isEmpty, candidate.allSatisfy(\.isNumber) {
                number = candidate
                scale = factor
                break
            }
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(number),
              n > 0, n <= 1_000_000 else {
            throw ConfigurationError(setting, "must be a positive duration like 500ms, 30s, 5m or 1h, got \(JSON.quote(text))")
        }
        return .milliseconds(n * scale)
    }

    /// `--help` text listing every setting.
    public static func helpText(program: String) -> String {
        var out = "usage: \(program) [options]\n\nEvery option can also be set by its environment variable.\n\n"
        for s in GatewaySetting.allCases {
            let left = "  \(s.flag) (\(s.rawValue))"
            out += left + "\n      " + s.summary + "\n"
        }
        return out
    }
}

/// `BACKEND_UPLOAD_CHECKSUM`: whether the backend gets a checksum it verifies with uploads whose bytes stream
/// through (PUTs over 1 MiB and parts; smaller PUTs are buffered and always carry the ciphertext's Content-MD5).
/// The checksum comes in an aws-chunked trailer, as the AWS SDKs send it by default: AWS verifies it, and its
/// object-lock buckets refuse uploads without a Content-MD5 or a checksum. Backends that do not know the framing
/// (Ceph RGW Pacific answers `XAmzContentSHA256Mismatch`) need it off.
public enum BackendUploadChecksum: String, Sendable, CaseIterable {
    /// `crc32` for AWS's own endpoints, `off` for any other.
    case auto
    case crc32
    case off

    public func isOn(for endpoint: URL) -> Bool {
        switch self {
        case .crc32: return true
        case .off: return false
        case .auto:
            guard let host = endpoint.host?.lowercased() else { return false }
            return host == "amazonaws.com" || host.hasSuffix(".amazonaws.com") || host.hasSuffix(".amazonaws.com.cn")
        }
    }
}
