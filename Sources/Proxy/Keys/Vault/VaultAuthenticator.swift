import Foundation
import Shared
import Synchronization

/// How the gateway authenticates to Vault/OpenBao.
public enum VaultAuth: Sendable, Equatable {
    /// A token given directly (`VAULT_TOKEN`); renewed while renewable.
    case token(String)
    /// A token read from a file (`VAULT_TOKEN_FILE`, e.g. written by a Vault Agent sidecar);
    /// re-read every minute and after a 403, renewed while renewable.
    case tokenFile(String)
    /// Kubernetes auth: the pod's (projected) ServiceAccount token is exchanged for a Vault token at
    /// `auth/<mount>/login` with `role`; re-read and logged in again before the Vault token's
    /// maximum TTL and after a 403.
    case kubernetes(role: String, jwtFile: String, mount: String)

    var name: String {
        switch self {
        case .token: return "token"
        case .tokenFile: return "token-file"
        case .kubernetes: return "kubernetes"
        }
    }
}

/// Holds the current Vault token: logs in, renews it before it expires (at two thirds of its lease, on
/// a background thread, so an idle gateway keeps a valid token), and gets a new one when Vault answers
/// 403 to a token that should be valid (revoked early, expired while the pod was paused). A peer
/// gateway shipped an hour of 403s by trusting a token's nominal TTL; here a 403 always leads to one
/// fresh login (or token-file read) and one retry.
final class VaultAuthenticator: Sendable {
    struct Token: Equatable {
        var value: String
        var renewable: Bool
        /// Lease in seconds; 0 = no expiry (root or periodic tokens report their period).
        var lease: Int
        /// When it was obtained or last renewed.
        var refreshed: ContinuousClock.Instant
    }

    private let auth: VaultAuth
    private let address: String
    private let namespace: String?
    private let http: KeyManagerHTTP
    private let state = Mutex<Token?>(nil)
    /// Serialises logins so a burst of 403s gives one login, not one per request.
    private let loginLock = Mutex<Void>(())
    private let counters = Mutex<(logins: Int, renewals: Int, failures: Int)>((0, 0, 0))
    private let logger: Logger?

    init(auth: VaultAuth, address: String, namespace: String?, http: KeyManagerHTTP, logger: Logger?) {
        self.auth = auth
        self.address = address
        self.namespace = namespace
        self.http = http
        self.logger = logger
    }

    var logins: Int { counters.withLock { $0.logins } }
    var renewals: Int { counters.withLock { $0.renewals } }

    /// The token to use now; logs in first when there is none.
    func token() throws(KeyProviderError) -> String {
        if let token = state.withLock({ $0?.value }) { return token }
        return try refresh(replacing: nil)
    }

    /// Vault refused `rejected` with 403: obtain a new token unless another thread already did.
    func tokenRejected(_ rejected: String) throws(KeyProviderError) -> String {
        try refresh(replacing: rejected)
    }

    private func refresh(replacing rejected: String?) throws(KeyProviderError) -> String {
        try loginLock.withLock { _ throws(KeyProviderError) -> String in
            if let current = state.withLock({ $0?.value }), current != rejected { return current }
            let fresh = try login()
            state.withLock { $0 = fresh }
            if let rejected, fresh.value == rejected {
                // A static token Vault refuses stays refused: report it rather than loop.
                throw KeyProviderError(.denied, "Vault refuses the configured token (403) and no other token is available; check \(settingName) and the token's policies")
            }
            return fresh.value
        }
    }

    private var settingName: String {
        switch auth {
        case .token: return "VAULT_TOKEN"
        case .tokenFile: return "VAULT_TOKEN_FILE"
        case .kubernetes: return "VAULT_KUBERNETES_ROLE"
        }
    }

    /// Logs in (Kubernetes) or reads the token (file, static) and looks up its lease.
    private func login() throws(KeyProviderError) -> Token {
        switch auth {
        case .token(let value):
            return try lookup(value)
        case .tokenFile(let path):
            return try lookup(Self.readTrimmed(path, what: "VAULT_TOKEN_FILE"))
        case .kubernetes(let role, let jwtFile, let mount):
            let jwt = try Self.readTrimmed(jwtFile, what: "the Kubernetes service account token")
            let answer = try http.send(method: "POST", url: "\(address)/v1/auth/\(mount)/login", headers: baseHeaders(),
                                       body: KeyManagerHTTP.jsonBody(["role": role, "jwt": jwt]), what: "Vault Kubernetes login")
            guard answer.status == 200 else {
                counters.withLock { $0.failures += 1 }
                throw VaultTransitKeyProvider.error("Kubernetes login (role \(role))", answer)
            }
            guard let authBlock = answer.json?["auth"] as? [String: Any], let token = authBlock["client_token"] as? String, !token.isEmpty else {
                throw KeyProviderError(.protocolError, "Vault Kubernetes login answered without auth.client_token")
            }
            counters.withLock { $0.logins += 1 }
            logger?.info("vault login", ["method": "kubernetes", "role": .string(role),
                                         "lease_seconds": .int(authBlock["lease_duration"] as? Int ?? 0)])
            return Token(value: token, renewable: authBlock["renewable"] as? Bool ?? false,
                         lease: authBlock["lease_duration"] as? Int ?? 0, refreshed: .now)
        }
    }

    private func lookup(_ token: String) throws(KeyProviderError) -> Token {
        var headers = baseHeaders()
        headers.append((name: "X-Vault-Token", value: token))
        let answer = try http.send(method: "GET", url: "\(address)/v1/auth/token/lookup-self", headers: headers, body: nil,
                                   what: "Vault token lookup")
        guard answer.status == 200, let data = answer.json?["data"] as? [String: Any] else {
            // A token without lookup-self permission still works for transit: use it without a known lease.
            if answer.status == 403 { return Token(value: token, renewable: false, lease: 0, refreshed: .now) }
            throw VaultTransitKeyProvider.error("token lookup", answer)
        }
        counters.withLock { $0.logins += 1 }
        return Token(value: token, renewable: data["renewable"] as? Bool ?? false, lease: data["ttl"] as? Int ?? 0, refreshed: .now)
    }

    /// Called about once a second by the renewal thread: renews at two thirds of the lease; re-logs in
    /// (Kubernetes) when renewal is refused or the lease can no longer be extended; re-reads a token
    /// file every minute.
    func maintain(now: ContinuousClock.Instant = .now) {
        guard let current = state.withLock({ $0 }) else { return }
        let age = now - current.refreshed
        if case .tokenFile = auth, age >= .seconds(60) {
            if let fresh = try? login() { state.withLock { if $0?.value == current.value { $0 = fresh } } }
            return
        }
        guard current.lease > 0, age >= .seconds(current.lease) * 2 / 3 else { return }
        if current.renewable, let renewed = try? renew(current) {
            // Renewal no longer extends the lease (maximum TTL reached): log in again while the token still works.
            if renewed.lease >= max(current.lease / 2, 2) || !isKubernetes {
                state.withLock { if $0?.value == current.value { $0 = renewed } }
                return
            }
        }
        if isKubernetes {
            _ = try? refresh(replacing: current.value)
        }
    }

    private var isKubernetes: Bool { if case .kubernetes = auth { return true }; return false }

    private func renew(_ token: Token) throws(KeyProviderError) -> Token {
        var headers = baseHeaders()
        headers.append((name: "X-Vault-Token", value: token.value))
        let answer = try http.send(method: "POST", url: "\(address)/v1/auth/token/renew-self", headers: headers,
                                   body: KeyManagerHTTP.jsonBody([:]), what: "Vault token renewal")
        guard answer.status == 200, let authBlock = answer.json?["auth"] as? [String: Any] else {
            counters.withLock { $0.failures += 1 }
            logger?.warn("vault token renewal failed", ["status": .int(answer.status)])
            throw VaultTransitKeyProvider.error("token renewal", answer)
        }
        counters.withLock { $0.renewals += 1 }
        return Token(value: token.value, renewable: authBlock["renewable"] as? Bool ?? false,
                     lease: authBlock["lease_duration"] as? Int ?? 0, refreshed: .now)
    }

    func baseHeaders() -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [(name: "Content-Type", value: "application/json")]
        if let namespace { headers.append((name: "X-Vault-Namespace", value: namespace)) }
        return headers
    }

    static func readTrimmed(_ path: String, what: String) throws(KeyProviderError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KeyProviderError(.misconfigured, "cannot read \(what) from \(JSON.quote(path))")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw KeyProviderError(.misconfigured, "\(what) file \(JSON.quote(path)) is empty") }
        return text
    }
}
