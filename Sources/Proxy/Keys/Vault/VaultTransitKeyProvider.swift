import Foundation
import Shared
import Synchronization

/// Settings of the `vault-transit` provider.
public struct VaultSettings: Sendable, Equatable {
    /// `https://vault.example.com:8200` (no path).
    public var address: String
    /// Transit mount path, default `transit`.
    public var mount: String
    /// The Transit key new intermediate keys are encrypted with.
    public var keyName: String
    public var namespace: String?
    public var caFile: String?
    public var auth: VaultAuth

    public init(address: String, mount: String = "transit", keyName: String, namespace: String? = nil,
                caFile: String? = nil, auth: VaultAuth) {
        self.address = address.hasSuffix("/") ? String(address.dropLast()) : address
        self.mount = mount.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.keyName = keyName
        self.namespace = namespace
        self.caFile = caFile
        self.auth = auth
    }
}

/// Vault/OpenBao Transit (`/v1/<mount>/encrypt|decrypt|rewrap/<key>`). Ciphertexts are stored without
/// their `vault:vN:` prefix: the key id records `<key>:v<N>`, so `rotate` can tell which objects a
/// Transit key rotation left behind and `rewrap` them in Vault without the gateway seeing the key.
/// The derivation `context` (the bucket, or bucket and object key) is sent with every call: a key
/// created with `derived=true` binds each intermediate key to it; other keys ignore it.
public final class VaultTransitKeyProvider: RemoteKeyProvider {
    public let kind = KeyProviderKind.vaultTransit
    public var defaultKeyName: String { settings.keyName }
    let settings: VaultSettings
    private let http: KeyManagerHTTP
    let authenticator: VaultAuthenticator
    /// Latest version of each key, learnt from encrypt answers and key reads.
    private let latest = Mutex<[String: (version: Int, learnt: ContinuousClock.Instant)]>([:])

    public init(settings: VaultSettings, timeout: Duration = .seconds(5), logger: Logger? = nil) throws(KeyProviderError) {
        guard let url = URL(string: settings.address), let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http",
              url.host != nil, url.path.isEmpty || url.path == "/", url.query == nil else {
            throw KeyProviderError(.misconfigured, "VAULT_ADDR must be an https:// URL without a path, got \(JSON.quote(settings.address))")
        }
        guard !settings.keyName.isEmpty, !settings.keyName.contains("/") else {
            throw KeyProviderError(.misconfigured, "VAULT_TRANSIT_KEY must be a Transit key name, got \(JSON.quote(settings.keyName))")
        }
        self.settings = settings
        var configuration = HTTPClientConfiguration()
        configuration.caFile = settings.caFile
        configuration.connectTimeout = timeout
        self.http = KeyManagerHTTP(client: HTTPClient(configuration: configuration), timeout: timeout)
        self.authenticator = VaultAuthenticator(auth: settings.auth, address: settings.address, namespace: settings.namespace,
                                                http: http, logger: logger)
        Self.startMaintenance(for: authenticator)
    }

    /// Renews the token in the background while the provider lives.
    private static func startMaintenance(for authenticator: VaultAuthenticator) {
        let thread = Thread { [weak authenticator] in
            while let live = authenticator {
                live.maintain()
                Thread.sleep(forTimeInterval: 1)
            }
        }
        thread.name = "vault-token-renewal"
        thread.start()
    }

    public func wrap(_ secret: [UInt8], keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8]) {
        let data = try transit("encrypt", key: keyName, [
            "plaintext": Data(secret).base64EncodedString(),
            "context": Data(context.canonicalBytes).base64EncodedString(),
        ])
        guard let text = data["ciphertext"] as? String, let (version, bytes) = Self.parseCiphertext(text) else {
            throw KeyProviderError(.protocolError, "Vault encrypt answered without a vault:vN: ciphertext")
        }
        noteLatest(keyName, version)
        return (Self.keyID(name: keyName, version: version), bytes)
    }

    public func unwrap(_ ciphertext: [UInt8], keyID: String, context: KeyManagerContext) throws(KeyProviderError) -> [UInt8] {
        let (name, version) = try Self.parseKeyID(keyID)
        let data = try transit("decrypt", key: name, [
            "ciphertext": Self.ciphertextText(version: version, bytes: ciphertext),
            "context": Data(context.canonicalBytes).base64EncodedString(),
        ])
        guard let text = data["plaintext"] as? String, let plaintext = Data(base64Encoded: text) else {
            throw KeyProviderError(.protocolError, "Vault decrypt answered without plaintext")
        }
        return Array(plaintext)
    }

    public func rewrap(_ ciphertext: [UInt8], keyID: String, keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8]) {
        let (name, version) = try Self.parseKeyID(keyID)
        guard name == keyName else {
            // Another Transit key: Vault's rewrap stays within one key.
            let secret = try unwrap(ciphertext, keyID: keyID, context: context)
            return try wrap(secret, keyName: keyName, context: context)
        }
        let data = try transit("rewrap", key: name, [
            "ciphertext": Self.ciphertextText(version: version, bytes: ciphertext),
            "context": Data(context.canonicalBytes).base64EncodedString(),
        ])
        guard let text = data["ciphertext"] as? String, let (newVersion, bytes) = Self.parseCiphertext(text) else {
            throw KeyProviderError(.protocolError, "Vault rewrap answered without a vault:vN: ciphertext")
        }
        noteLatest(name, newVersion)
        return (Self.keyID(name: name, version: newVersion), bytes)
    }

    public func isCurrent(keyID: String, keyName: String) throws(KeyProviderError) -> Bool {
        let (name, version) = try Self.parseKeyID(keyID)
        guard name == keyName else { return false }
        return version >= (try latestVersion(keyName))
    }

    public func checkHealth(keyName: String) throws(KeyProviderError) {
        _ = try readKey(keyName)
    }

    /// The key's latest version (re-read at most every 30 s).
    func latestVersion(_ keyName: String) throws(KeyProviderError) -> Int {
        if let known = latest.withLock({ $0[keyName] }), ContinuousClock.now - known.learnt < .seconds(30) { return known.version }
        return try readKey(keyName)
    }

    @discardableResult
    private func readKey(_ keyName: String) throws(KeyProviderError) -> Int {
        let data = try call(method: "GET", path: "\(settings.mount)/keys/\(keyName)", body: nil, what: "read key \(keyName)")
        guard let version = data["latest_version"] as? Int else {
            throw KeyProviderError(.protocolError, "Vault key \(keyName) read answered without latest_version")
        }
        if data["supports_encryption"] as? Bool == false {
            throw KeyProviderError(.denied, "Vault Transit key \(keyName) does not support encryption")
        }
        noteLatest(keyName, version)
        return version
    }

    private func noteLatest(_ keyName: String, _ version: Int) {
        latest.withLock { table in
            if let known = table[keyName], known.version > version, ContinuousClock.now - known.learnt < .seconds(30) { return }
            table[keyName] = (version, .now)
        }
    }

    private func transit(_ operation: String, key: String, _ body: [String: Any]) throws(KeyProviderError) -> [String: Any] {
        try call(method: "POST", path: "\(settings.mount)/\(operation)/\(key)", body: KeyManagerHTTP.jsonBody(body),
                 what: "\(operation) with key \(key)")
    }

    /// One authenticated call; a 403 gets one fresh token and one retry.
    private func call(method: String, path: String, body: [UInt8]?, what: String) throws(KeyProviderError) -> [String: Any] {
        var token = try authenticator.token()
        var retried = false
        while true {
            var headers = authenticator.baseHeaders()
            headers.append((name: "X-Vault-Token", value: token))
            let answer = try http.send(method: method, url: "\(settings.address)/v1/\(path)", headers: headers, body: body,
                                       what: "Vault \(what) at \(settings.address)")
            if answer.status == 200 {
                guard let data = answer.json?["data"] as? [String: Any] else {
                    throw KeyProviderError(.protocolError, "Vault \(what) answered without data")
                }
                return data
            }
            if answer.status == 403, !retried {
                retried = true
                token = try authenticator.tokenRejected(token)
                continue
            }
            throw Self.error(what, answer)
        }
    }

    /// Maps a Vault error answer (`{"errors": ["..."]}`) to a provider error.
    static func error(_ what: String, _ answer: KeyManagerHTTP.Answer) -> KeyProviderError {
        let errors = (answer.json?["errors"] as? [Any])?.compactMap { $0 as? String } ?? []
        let message = errors.isEmpty ? KeyManagerHTTP.excerpt(answer.rawBody) : errors.joined(separator: "; ")
        let text = "Vault \(what) failed (HTTP \(answer.status)): \(message)"
        let lower = message.lowercased()
        switch answer.status {
        case 403, 404: return KeyProviderError(.denied, text)
        case 429, 500...599: return KeyProviderError(.unavailable, text)
        case 400:
            if lower.contains("message authentication failed") || lower.contains("invalid ciphertext") {
                return KeyProviderError(.invalidCiphertext, text)
            }
            if lower.contains("not found") || lower.contains("disallowed by policy") || lower.contains("too old") {
                return KeyProviderError(.denied, text)
            }
            return KeyProviderError(.protocolError, text)
        default: return KeyProviderError(.protocolError, text)
        }
    }

    // MARK: Ciphertext and key id forms

    static func keyID(name: String, version: Int) -> String { "\(name):v\(version)" }

    static func parseKeyID(_ keyID: String) throws(KeyProviderError) -> (name: String, version: Int) {
        guard let marker = keyID.range(of: ":v", options: .backwards),
              let version = Int(keyID[marker.upperBound...]), version >= 1, marker.lowerBound > keyID.startIndex else {
            throw KeyProviderError(.misconfigured, "Vault key id \(JSON.quote(String(keyID.prefix(64)))) is not of the form <key>:v<version>")
        }
        return (String(keyID[..<marker.lowerBound]), version)
    }

    /// `vault:v<N>:<base64>` → (N, bytes).
    static func parseCiphertext(_ text: String) -> (Int, [UInt8])? {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "vault", parts[1].hasPrefix("v"), let version = Int(parts[1].dropFirst()), version >= 1,
              let bytes = Data(base64Encoded: String(parts[2])), !bytes.isEmpty else { return nil }
        return (version, Array(bytes))
    }

    static func ciphertextText(version: Int, bytes: [UInt8]) -> String {
        "vault:v\(version):\(Data(bytes).base64EncodedString())"
    }
}
