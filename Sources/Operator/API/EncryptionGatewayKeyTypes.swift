/// Where the gateways' key-encryption keys come from (`spec.encryption`: a raw key, a password, a KMIP server,
/// AWS KMS or Vault/OpenBao Transit), the per-bucket policy and the key cache. docs/keys.md describes the
/// providers; the builders turn these fields into the gateway's `ENCRYPTION_KEY_*`, `KMIP_*`, `AWS_KMS_*`, `VAULT_*`
/// and `KEY_*` settings, with every referenced Secret and the policy ConfigMap mounted under `/etc/s3gateway/keys`.

/// A key of a ConfigMap in the resource's namespace.
struct ConfigMapKeyRef: APIObject {
    var name = ""
    var key = "policy.json"

    static var description: String { "A key of a ConfigMap in the same namespace." }
    static var fields: [Field<Self>] {
        [
            Field("name", \.name, "Name of the ConfigMap.", required: true) { $0.minLength = 1; $0.maxLength = 253 },
            Field("key", \.key, "Key within the ConfigMap's data.") { $0.minLength = 1; $0.maxLength = 253 },
        ]
    }
}

/// `raw`: 256-bit keys held in Secrets.
struct RawKeySpec: APIObject {
    var secretRef = SecretKeyRef()
    var previousSecretRefs: [SecretKeyRef] = []

    static var description: String { "A 256-bit key-encryption key held in a Secret (provider raw, no key derivation)." }
    static var fields: [Field<Self>] {
        [
            Field("secretRef", \.secretRef, "The active key: 64 hex digits or base64 of 32 bytes (`openssl rand -hex 32`); mounted as a file (ENCRYPTION_KEY_FILE). A change rolls the pods.", required: true),
            Field("previousSecretRefs", \.previousSecretRefs, "Older raw keys still accepted for reading (ENCRYPTION_PREVIOUS_KEY_FILES).") {
                $0.maxItems = 16 },
        ]
    }
}

/// `kmip`: a key held in a KMIP 1.x server, reached over mutual TLS.
struct KMIPSpec: APIObject {
    var endpoint = ""
    var keyID = ""
    var serverName = ""
    var clientCertSecretName = ""
    var caSecretRef: SecretKeyRef?

    static var description: String { "A KMIP server holding the AES-256 key-encryption key (KMIP 1.x over mutual TLS)." }
    static var fields: [Field<Self>] {
        [
            Field("endpoint", \.endpoint, "host:port of the KMIP server; port 5696 when omitted (KMIP_ENDPOINT).", required: true) {
                $0.pattern = #"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$"#; $0.maxLength = 261 },
            Field("keyID", \.keyID, "Unique identifier of the active AES-256 key in the server (KMIP_KEY_ID).", required: true) {
                $0.minLength = 1; $0.maxLength = 256 },
            Field("serverName", \.serverName, "Name to verify the server's certificate against; empty: the endpoint's host (KMIP_SERVER_NAME).") {
                $0.maxLength = 253 },
            Field("clientCertSecretName", \.clientCertSecretName, "kubernetes.io/tls Secret (tls.crt, tls.key) with the gateway's client certificate, mounted into the pods (KMIP_CLIENT_CERT_FILE, KMIP_CLIENT_KEY_FILE). A change rolls the pods.", required: true) {
                $0.minLength = 1; $0.maxLength = 253 },
            Field("caSecretRef", \.caSecretRef, "PEM bundle that signed the server's certificate (KMIP_CA_FILE). Unset: the system CAs."),
        ]
    }
}

/// `aws-kms`: a key in AWS KMS (or a KMS-compatible endpoint).
struct AWSKMSSpec: APIObject {
    var keyID = ""
    var region = ""
    var endpoint = ""
    var credentialsSecretRef = CredentialsSecretRef()
    var caSecretRef: SecretKeyRef?

    static var description: String { "An AWS KMS key wrapping the gateway's intermediate keys (Encrypt/Decrypt, encryption context bound to the bucket)." }
    static var fields: [Field<Self>] {
        [
            Field("keyID", \.keyID, "Key id, key ARN or alias/NAME of the active key (AWS_KMS_KEY_ID).", required: true) {
                $0.minLength = 1; $0.maxLength = 2048 },
            Field("region", \.region, "Region of the key; empty: us-east-1 (AWS_KMS_REGION).") { $0.pattern = #"^$|^[a-z0-9-]+$"# },
            Field("endpoint", \.endpoint, "Endpoint URL; empty: https://kms.<region>.amazonaws.com (AWS_KMS_ENDPOINT).") {
                $0.pattern = #"^$|^https?://[^\s/?#@]+(/[^\s?#]*)?$"#; $0.maxLength = 2048 },
            Field("credentialsSecretRef", \.credentialsSecretRef, "Access key pair allowed kms:Encrypt, kms:Decrypt and kms:DescribeKey on the key (AWS_KMS_ACCESS_KEY_ID, AWS_KMS_SECRET_ACCESS_KEY).", required: true),
            Field("caSecretRef", \.caSecretRef, "PEM bundle verifying the endpoint's certificate (AWS_KMS_CA_FILE). Unset: the system CAs."),
        ]
    }
}

/// How the gateway logs in to Vault: a token from a Secret, or Kubernetes auth with the pod's service account.
struct VaultAuthSpec: APIObject {
    var tokenSecretRef: SecretKeyRef?
    var kubernetes: VaultKubernetesAuthSpec?

    static var description: String { "Vault authentication: exactly one of tokenSecretRef and kubernetes." }
    static var fields: [Field<Self>] {
        [
            Field("tokenSecretRef", \.tokenSecretRef, "A Vault token, mounted as a file the gateway re-reads every minute and after a 403 (VAULT_TOKEN_FILE); replacing it needs no restart."),
            Field("kubernetes", \.kubernetes, "Vault's Kubernetes auth with a projected token of the pods' ServiceAccount (spec.serviceAccountName) (VAULT_KUBERNETES_ROLE)."),
        ]
    }
    static var rules: [Rule<Self>] {
        [Rule(cel: "has(self.tokenSecretRef) != has(self.kubernetes)", message: "set exactly one of tokenSecretRef and kubernetes") {
            ($0.tokenSecretRef != nil) != ($0.kubernetes != nil) }]
    }
}

struct VaultKubernetesAuthSpec: APIObject {
    var role = ""
    var mount = "kubernetes"
    var audience = ""
    var tokenExpirationSeconds = 3600

    static var description: String { "Vault's Kubernetes auth method." }
    static var fields: [Field<Self>] {
        [
            Field("role", \.role, "Role of the Kubernetes auth method bound to the pods' ServiceAccount (VAULT_KUBERNETES_ROLE).", required: true) {
                $0.minLength = 1; $0.maxLength = 253 },
            Field("mount", \.mount, "Mount path of the Kubernetes auth method (VAULT_KUBERNETES_MOUNT).") {
                $0.pattern = #"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"# },
            Field("audience", \.audience, "Audience of the projected service-account token (the role's `audience`); empty: the API server's.") {
                $0.maxLength = 253 },
            Field("tokenExpirationSeconds", \.tokenExpirationSeconds, "Lifetime of the projected token; the kubelet refreshes it and the gateway reads it at each login.") {
                $0.minimum = 600; $0.maximum = 86400 },
        ]
    }
}

/// `vault-transit`: a Transit key of Vault or OpenBao.
struct VaultSpec: APIObject {
    var address = ""
    var transitKey = ""
    var transitMount = "transit"
    var namespace = ""
    var caSecretRef: SecretKeyRef?
    var auth = VaultAuthSpec()

    static var description: String { "A Vault or OpenBao Transit key wrapping the gateway's intermediate keys (encrypt/decrypt/rewrap)." }
    static var fields: [Field<Self>] {
        [
            Field("address", \.address, "Vault address, e.g. https://vault.vault.svc:8200 (VAULT_ADDR).", required: true) {
                $0.pattern = #"^https?://[^\s/?#@]+(/[^\s?#]*)?$"#; $0.maxLength = 2048 },
            Field("transitKey", \.transitKey, "Name of the Transit key (VAULT_TRANSIT_KEY).", required: true) {
                $0.pattern = #"^[A-Za-z0-9_.-]+$"#; $0.maxLength = 128 },
            Field("transitMount", \.transitMount, "Mount path of the Transit engine (VAULT_TRANSIT_MOUNT).") {
                $0.pattern = #"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"# },
            Field("namespace", \.namespace, "Vault Enterprise / OpenBao namespace (VAULT_NAMESPACE).") { $0.maxLength = 253 },
            Field("caSecretRef", \.caSecretRef, "PEM bundle verifying Vault's certificate (VAULT_CACERT). Unset: the system CAs."),
            Field("auth", \.auth, "How the gateway logs in.", required: true),
        ]
    }
}

/// The key-provider fields of `EncryptionSpec` and their rules (declared here to keep the shared file small).
extension EncryptionSpec {
    static let keyProviders = ["", "raw", "password", "kmip", "aws-kms", "vault-transit"]
    /// Durations that may be 0 (off).
    /// `0`/`0s` (off) or a duration the gateway accepts (`KeySettings`).
    static let durationOrZeroPattern = #"^(0|0s|[1-9][0-9]{0,5}(ms|s|m|h))$"#

    static var keyFields: [Field<Self>] {
        [
            Field("keyProvider", \.keyProvider, "Provider of the key that wraps new objects' data keys: raw, password, kmip, aws-kms or vault-transit (ENCRYPTION_KEY_PROVIDER). Empty: the only one configured. Objects are always read with the provider their metadata names, so several may be configured during a migration.") {
                $0.enumValues = keyProviders },
            Field("rawKey", \.rawKey, "A 256-bit key from a Secret (provider raw; preferred over a password)."),
            Field("passwordSaltSecretRef", \.passwordSaltSecretRef, "A per-deployment scrypt salt of at least 16 characters for the password provider (ENCRYPTION_PASSWORD_SALT)."),
            Field("kmip", \.kmip, "A KMIP server (provider kmip)."),
            Field("awsKMS", \.awsKMS, "An AWS KMS key (provider aws-kms)."),
            Field("vault", \.vault, "A Vault or OpenBao Transit key (provider vault-transit)."),
            Field("policyConfigMapRef", \.policyConfigMapRef, "Per-bucket policy (JSON, docs/keys.md): encrypt with a named key or store plain; mounted from the ConfigMap (ENCRYPTION_POLICY_FILE) and reloaded by the gateways when it changes, without a restart."),
            Field("keyCacheTTL", \.keyCacheTTL, "How long keys a key manager unwrapped stay cached, e.g. 5m; 0 disables the cache (KEY_CACHE_TTL). Also bounds how long a revoked key keeps working.") {
                $0.pattern = durationOrZeroPattern },
            Field("keyCacheSize", \.keyCacheSize, "Unwrapped keys cached at most per pod (KEY_CACHE_SIZE).") { $0.minimum = 0; $0.maximum = 10_000_000 },
            Field("intermediateKeyLifetime", \.intermediateKeyLifetime, "How long one intermediate key wrapped by the key manager serves a bucket's new objects, e.g. 15m; 0: one per object, a key-manager call per PUT (KEY_INTERMEDIATE_LIFETIME).") {
                $0.pattern = durationOrZeroPattern },
            Field("keyProviderTimeout", \.keyProviderTimeout, "Deadline of one key-manager call (KEY_PROVIDER_TIMEOUT).") {
                $0.pattern = EncryptionGatewaySpec.positiveDurationPattern },
        ]
    }

    /// Which providers have settings (the password provider is configured by passwordSecretRef).
    var configuredKeyProviders: [String] {
        var out: [String] = []
        if rawKey != nil { out.append("raw") }
        if passwordSecretRef != nil { out.append("password") }
        if kmip != nil { out.append("kmip") }
        if awsKMS != nil { out.append("aws-kms") }
        if vault != nil { out.append("vault-transit") }
        return out
    }

    static var keyRules: [Rule<Self>] {
        let configured = "(has(self.rawKey) ? 1 : 0) + (has(self.passwordSecretRef) ? 1 : 0) + (has(self.kmip) ? 1 : 0) + (has(self.awsKMS) ? 1 : 0) + (has(self.vault) ? 1 : 0)"
        return [
            Rule(cel: "\(configured) > 0",
                 message: "configure a key: rawKey, passwordSecretRef, kmip, awsKMS or vault") { !$0.configuredKeyProviders.isEmpty },
            Rule(cel: "!has(self.keyProvider) || self.keyProvider != '' || \(configured) <= 1",
                 message: "keyProvider is required when several providers are configured (which one wraps new objects?)") {
                !$0.keyProvider.isEmpty || $0.configuredKeyProviders.count <= 1 },
            Rule(cel: "!has(self.keyProvider) || self.keyProvider == '' || (self.keyProvider == 'raw' && has(self.rawKey)) || (self.keyProvider == 'password' && has(self.passwordSecretRef)) || (self.keyProvider == 'kmip' && has(self.kmip)) || (self.keyProvider == 'aws-kms' && has(self.awsKMS)) || (self.keyProvider == 'vault-transit' && has(self.vault))",
                 message: "keyProvider names a provider without settings (raw needs rawKey, password passwordSecretRef, kmip kmip, aws-kms awsKMS, vault-transit vault)") {
                $0.keyProvider.isEmpty || $0.configuredKeyProviders.contains($0.keyProvider) },
            Rule(cel: "!has(self.previousPasswordsSecretRef) || has(self.passwordSecretRef)",
                 message: "previousPasswordsSecretRef needs passwordSecretRef (the active password)") {
                $0.previousPasswordsSecretRef == nil || $0.passwordSecretRef != nil },
            Rule(cel: "!has(self.passwordSaltSecretRef) || has(self.passwordSecretRef)",
                 message: "passwordSaltSecretRef needs passwordSecretRef") {
                $0.passwordSaltSecretRef == nil || $0.passwordSecretRef != nil },
        ]
    }
}
