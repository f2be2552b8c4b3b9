import Foundation
import Shared
import Synchronization

/// Settings of the `aws-kms` provider.
public struct AWSKMSSettings: Sendable, Equatable {
    /// The key new intermediate keys are encrypted with: key id, key ARN, alias name or alias ARN.
    public var keyID: String
    public var region: String
    /// `https://kms.<region>.amazonaws.com` unless set (VPC endpoints, FIPS endpoints, test servers).
    public var endpoint: String
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    public var caFile: String?

    public init(keyID: String, region: String, endpoint: String? = nil, accessKeyID: String, secretAccessKey: String,
                sessionToken: String? = nil, caFile: String? = nil) {
        self.keyID = keyID
        self.region = region
        self.endpoint = endpoint ?? "https://kms.\(region).amazonaws.com"
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.caFile = caFile
    }
}

/// AWS KMS through its JSON API (`TrentService.Encrypt`/`Decrypt`/`DescribeKey`), signed with SigV4
/// for the `kms` service. The encryption context binds every intermediate key to its bucket (and
/// object, for per-object keys); KMS checks it on Decrypt and records it in CloudTrail.
public final class AWSKMSKeyProvider: RemoteKeyProvider {
    public let kind = KeyProviderKind.awsKMS
    public var defaultKeyName: String { settings.keyID }
    let settings: AWSKMSSettings
    private let http: KeyManagerHTTP
    private let signer: SigV4Signer
    private let host: String
    private let clock: @Sendable () -> Int64
    /// The key ARN each configured key name (alias, id) resolved to, learnt from Encrypt/DescribeKey.
    private let resolved = Mutex<[String: String]>([:])

    public init(settings: AWSKMSSettings, timeout: Duration = .seconds(5),
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) throws(KeyProviderError) {
        guard let url = URL(string: settings.endpoint), let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let hostName = url.host, !hostName.isEmpty, url.path.isEmpty || url.path == "/", url.query == nil else {
            throw KeyProviderError(.misconfigured, "AWS_KMS_ENDPOINT must be an https:// URL without a path, got \(JSON.quote(settings.endpoint))")
        }
        var host = hostName.contains(":") ? "[\(hostName)]" : hostName
        if let port = url.port, !((scheme == "https" && port == 443) || (scheme == "http" && port == 80)) { host += ":\(port)" }
        self.host = host
        self.settings = settings
        var configuration = HTTPClientConfiguration()
        configuration.caFile = settings.caFile
        configuration.connectTimeout = timeout
        self.http = KeyManagerHTTP(client: HTTPClient(configuration: configuration), timeout: timeout)
        self.signer = SigV4Signer(accessKey: settings.accessKeyID, secretKey: settings.secretAccessKey,
                                  region: settings.region, service: "kms")
        self.clock = clock
    }

    public func wrap(_ secret: [UInt8], keyName: String, context: KeyManagerContext) throws(KeyProviderError) -> (keyID: String, ciphertext: [UInt8]) {
        let answer = try call("Encrypt", [
            "KeyId": keyName,
            "Plaintext": Data(secret).base64EncodedString(),
            "EncryptionContext": Self.contextObject(context),
        ])
        guard let blobText = answer["CiphertextBlob"] as? String, let blob = Data(base64Encoded: blobText), !blob.isEmpty,
              let arn = answer["KeyId"] as? String, !arn.isEmpty else {
            throw KeyProviderError(.protocolError, "AWS KMS Encrypt answered without CiphertextBlob/KeyId")
        }
        resolved.withLock { $0[keyName] = arn }
        return (arn, Array(blob))
    }

    public func unwrap(_ ciphertext: [UInt8], keyID: String, context: KeyManagerContext) throws(KeyProviderError) -> [UInt8] {
        let answer = try call("Decrypt", [
            "KeyId": keyID,
            "CiphertextBlob": Data(ciphertext).base64EncodedString(),
            "EncryptionContext": Self.contextObject(context),
        ])
        guard let text = answer["Plaintext"] as? String, let plaintext = Data(base64Encoded: text) else {
            throw KeyProviderError(.protocolError, "AWS KMS Decrypt answered without Plaintext")
        }
        return Array(plaintext)
    }

    public func isCurrent(keyID: String, keyName: String) throws(KeyProviderError) -> Bool {
        if keyID == keyName { return true }
        return keyID == (try arn(of: keyName))
    }

    public func checkHealth(keyName: String) throws(KeyProviderError) {
        _ = try describe(keyName)
    }

    /// The key ARN of `keyName` (an alias resolves to its target key).
    func arn(of keyName: String) throws(KeyProviderError) -> String {
        if let known = resolved.withLock({ $0[keyName] }) { return known }
        return try describe(keyName)
    }

    @discardableResult
    private func describe(_ keyName: String) throws(KeyProviderError) -> String {
        let answer = try call("DescribeKey", ["KeyId": keyName])
        guard let metadata = answer["KeyMetadata"] as? [String: Any], let arn = metadata["Arn"] as? String else {
            throw KeyProviderError(.protocolError, "AWS KMS DescribeKey answered without KeyMetadata.Arn")
        }
        let state = metadata["KeyState"] as? String ?? "Unknown"
        guard state == "Enabled" else {
            throw KeyProviderError(.denied, "AWS KMS key \(arn) is \(state), not Enabled")
        }
        resolved.withLock { $0[keyName] = arn }
        return arn
    }

    static func contextObject(_ context: KeyManagerContext) -> [String: String] {
        Dictionary(uniqueKeysWithValues: context.pairs.map { ($0.name, $0.value) })
    }

    /// One signed `TrentService.<action>` call; the answer's JSON object, or a mapped error.
    func call(_ action: String, _ body: [String: Any]) throws(KeyProviderError) -> [String: Any] {
        let payload = KeyManagerHTTP.jsonBody(body)
        var headers: [(name: String, value: String)] = [
            (name: "content-type", value: "application/x-amz-json-1.1"),
            (name: "x-amz-target", value: "TrentService.\(action)"),
        ]
        if let token = settings.sessionToken { headers.append((name: "x-amz-security-token", value: token)) }
        let signed = signer.sign(method: "POST", canonicalURI: "/", canonicalQuery: "", host: host, headers: headers,
                                 payloadHash: Encoding.hex(Digest.hash(.sha256, payload)), now: clock())
        let url = settings.endpoint.hasSuffix("/") ? settings.endpoint : settings.endpoint + "/"
        let answer = try http.send(method: "POST", url: url, headers: signed, body: payload, what: "AWS KMS \(action) at \(settings.endpoint)")
        if answer.status == 200 { return answer.json ?? [:] }
        throw Self.error(action: action, status: answer.status, json: answer.json, body: answer.rawBody)
    }

    /// Maps a KMS error answer (`{"__type": "...#DisabledException", "message": "..."}`) to a provider error.
    static func error(action: String, status: Int, json: [String: Any]?, body: [UInt8]) -> KeyProviderError {
        let rawType = (json?["__type"] as? String) ?? ""
        let type = rawType.split(separator: "#").last.map(String.init) ?? rawType
        let message = (json?["message"] as? String) ?? (json?["Message"] as? String) ?? KeyManagerHTTP.excerpt(body)
        let text = "AWS KMS \(action) failed: \(type.isEmpty ? "HTTP \(status)" : type): \(message)"
        switch type {
        case "DisabledException", "KMSInvalidStateException", "NotFoundException", "AccessDeniedException",
             "InvalidKeyUsageException", "UnrecognizedClientException", "InvalidSignatureException",
             "ExpiredTokenException", "IncompleteSignature", "MissingAuthenticationToken", "InvalidClientTokenId":
            return KeyProviderError(.denied, text)
        case "InvalidCiphertextException", "IncorrectKeyException":
            return KeyProviderError(.invalidCiphertext, text)
        case "ThrottlingException", "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
             "LimitExceededException", "ServiceUnavailableException":
            return KeyProviderError(.unavailable, text)
        default:
            if status >= 500 || status == 429 { return KeyProviderError(.unavailable, text) }
            if status == 403 { return KeyProviderError(.denied, text) }
            return KeyProviderError(.protocolError, text)
        }
    }
}
