import Foundation
import Shared
import Synchronization

/// Settings of the `kmip` provider.
public struct KMIPSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Unique Identifier of the active AES-256 key (Cryptographic Usage Mask Encrypt|Decrypt, state Active).
    public var keyID: String
    /// CA bundle that signed the server's certificate.
    public var caFile: String?
    /// Client certificate and key (PEM) for mutual TLS; KMIP servers identify clients by them.
    public var certificateFile: String
    public var keyFile: String
    /// Name to verify the server certificate against (default: `host`).
    public var serverName: String?

    public init(host: String, port: Int = 5696, keyID: String, caFile: String?, certificateFile: String, keyFile: String,
                serverName: String? = nil) {
        self.host = host
        self.port = port
        self.keyID = keyID
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }
}

/// One established connection to a KMIP server that carries request/response messages.
protocol KMIPConnection: AnyObject {
    func write(_ bytes: [UInt8], timeout: Duration) throws(KeyProviderError)
    /// Reads exactly `count` bytes.
    func read(count: Int, timeout: Duration) throws(KeyProviderError) -> [UInt8]
    func close()
}

/// A KMIP 1.4 server (PyKMIP, Thales/Entrust/Fortanix HSM front ends...) over mutual TLS. Intermediate
/// keys are encrypted server-side with AES-256-GCM (`Encrypt`/`Decrypt` with our own 12-byte nonce,
/// the wrap context as Authenticated Encryption Additional Data and a 16-byte tag), so the key never
/// leaves the server. Stored ciphertext: `nonce (12) || encrypted key || tag (16)`.
public final class KMIPKeyProvider: RemoteKeyProvider {
    public let kind = KeyProviderKind.kmip
    public var defaultKeyName: String { settings.keyID }
    let settings: KMIPSettings
    private let timeout: Duration
    private let dial: @Sendable () throws(KeyProviderError) -> KMIPConnection
    /// Idle connections kept for reuse (KMIP servers keep a session open for many requests).
    private let idle = Mutex<[KMIPConnectionBox]>([])
    static let maxIdleConnections = 4
    static let limits: TTLV.Limits = {
        var limits = TTLV.Limits()
        limits.maxMessageSize = 64 << 10
        limits.maxItems = 256
        return limits
    }()

    init(settings: KMIPSettings, timeout: Duration, dial: @escaping @Sendable () throws(KeyProviderError) -> KMIPConnection) {
        self.settings = settings
        self.timeout = timeout
        self.dial = dial
    }

    public func wrap(_ secret: [UInt8], keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8]) {
        let nonce = SecureRandom.bytes(KMIPMessage.gcmNonceSize)
        let payload = try perform(KMIPMessage.encrypt(uid: keyName, plaintext: secret, nonce: nonce, aad: context.canonicalBytes),
                                  .encrypt, key: keyName)
        let result: (ciphertext: [UInt8], tag: [UInt8])
        do { result = try KMIPMessage.encryptResult(payload) } catch { throw KeyProviderError(.protocolError, "KMIP Encrypt: \(error)") }
        guard result.ciphertext.count == secret.count else {
            throw KeyProviderError(.protocolError, "KMIP Encrypt returned \(result.ciphertext.count) bytes for \(secret.count) (not AES-GCM?)")
        }
        return (keyName, nonce + result.ciphertext + result.tag)
    }

    public func unwrap(_ ciphertext: [UInt8], keyID: String, context: KeyManagerContext) throws(KeyProviderError) -> [UInt8] {
        let nonceSize = KMIPMessage.gcmNonceSize, tagSize = KMIPMessage.gcmTagSize
        guard ciphertext.count > nonceSize + tagSize else {
            throw KeyProviderError(.invalidCiphertext, "KMIP-wrapped key of \(ciphertext.count) bytes is too short")
        }
        let nonce = Array(ciphertext[..<nonceSize])
        let body = Array(ciphertext[nonceSize..<(ciphertext.count - tagSize)])
        let tag = Array(ciphertext[(ciphertext.count - tagSize)...])
        let payload: TTLV?
        do {
            payload = try perform(KMIPMessage.decrypt(uid: keyID, ciphertext: body, nonce: nonce, aad: context.canonicalBytes, tag: tag),
                                  .decrypt, key: keyID)
        } catch where error.code == .unavailable && error.message.contains(Self.generalFailureMarker) {
            // A failed tag check comes back as General Failure from some servers (PyKMIP) instead of Cryptographic
            // Failure. If the key itself is usable, the ciphertext (or its context) is what failed.
            if (try? checkHealth(keyName: keyID)) != nil {
                throw KeyProviderError(.invalidCiphertext, "\(error.message) (the key is active: the wrapped key or its context does not verify)")
            }
            throw error
        }
        do { return try KMIPMessage.decryptResult(payload) } catch { throw KeyProviderError(.protocolError, "KMIP Decrypt: \(error)") }
    }

    /// KMIP has no key versions: a rotated key (ReKey) is a new Unique Identifier.
    public func isCurrent(keyID: String, keyName: String) throws(KeyProviderError) -> Bool { keyID == keyName }

    public func checkHealth(keyName: String) throws(KeyProviderError) {
        let payload = try perform(KMIPMessage.getState(uid: keyName), .getAttributes, key: keyName)
        let state: KMIPState
        do { state = try KMIPMessage.stateResult(payload) } catch { throw KeyProviderError(.protocolError, "KMIP Get Attributes: \(error)") }
        guard state == .active else {
            throw KeyProviderError(.denied, "KMIP key \(keyName) is \(state.name), not Active")
        }
    }

    /// Sends one request and returns the success payload; maps failures.
    private func perform(_ request: TTLV, _ operation: KMIPOperation, key: String) throws(KeyProviderError) -> TTLV? {
        let response = try exchange(request.encoded(), what: "\(operation.name) with key \(key)")
        let outcome: KMIPMessage.Outcome
        do {
            outcome = try KMIPMessage.outcome(of: TTLV.decode(response, limits: Self.limits), for: operation)
        } catch {
            throw KeyProviderError(.protocolError, "KMIP \(operation.name) at \(settings.host):\(settings.port): \(error)")
        }
        switch outcome {
        case .success(let payload): return payload
        case .failure(let reason, let message):
            throw Self.error(operation: operation, key: key, reason: reason, message: message)
        }
    }

    static let generalFailureMarker = "generalFailure"

    static func error(operation: KMIPOperation, key: String, reason: UInt32?, message: String) -> KeyProviderError {
        let known = reason.flatMap(KMIPResultReason.init(rawValue:))
        let text = "KMIP \(operation.name) with key \(key) failed: \(known.map { "\($0)" } ?? reason.map { "reason \($0)" } ?? "no reason"): \(message)"
        switch known {
        case .permissionDenied, .itemNotFound, .authenticationNotSuccessful, .objectArchived, .illegalOperation:
            return KeyProviderError(.denied, text)
        case .cryptographicFailure where operation == .decrypt:
            return KeyProviderError(.invalidCiphertext, text)
        case .generalFailure:
            return KeyProviderError(.unavailable, text)
        default:
            return KeyProviderError(.protocolError, text)
        }
    }

    /// One request/response on a pooled connection; a reused connection that fails gets one retry
    /// on a fresh one (the server may have closed it while idle). Encrypt and Decrypt are safe to repeat.
    private func exchange(_ request: [UInt8], what: String) throws(KeyProviderError) -> [UInt8] {
        var attempt = 0
        while true {
            attempt += 1
            let pooled = idle.withLock { $0.popLast() }
            let connection: KMIPConnection
            if let pooled { connection = pooled.connection } else {
                do { connection = try dial() } catch {
                    throw KeyProviderError(.unavailable, "KMIP server \(settings.host):\(settings.port): \(error.message)")
                }
            }
            do throws(KeyProviderError) {
                try connection.write(request, timeout: timeout)
                let header = try connection.read(count: 8, timeout: timeout)
                let size: Int
                do { size = try TTLV.messageSize(header: header, limits: Self.limits) } catch {
                    connection.close()
                    throw KeyProviderError(.protocolError, "KMIP \(what): \(error)")
                }
                let rest = try connection.read(count: size - 8, timeout: timeout)
                let keep = idle.withLock { list -> Bool in
                    guard list.count < Self.maxIdleConnections else { return false }
                    list.append(KMIPConnectionBox(connection))
                    return true
                }
                if !keep { connection.close() }
                return header + rest
            } catch {
                connection.close()
                if error.code == .protocolError { throw error }
                if pooled != nil && attempt == 1 { continue }
                throw KeyProviderError(.unavailable, "KMIP server \(settings.host):\(settings.port), \(what): \(error.message)")
            }
        }
    }
}

/// Lets connections (not Sendable themselves: one user at a time) sit in the shared idle list.
private final class KMIPConnectionBox: @unchecked Sendable {
    let connection: KMIPConnection
    init(_ connection: KMIPConnection) { self.connection = connection }
}
