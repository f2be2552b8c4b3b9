import COpenSSL
import Shared

/// Looks up the secret key of an access key id. One static pair today (GATEWAY_ACCESS_KEY/SECRET).
protocol CredentialProvider: Sendable {
    func secretKey(forAccessKey accessKey: String) -> String?
}

/// A single configured key pair.
struct StaticCredentials: CredentialProvider {
    var accessKey: String
    var secretKey: String

    func secretKey(forAccessKey accessKey: String) -> String? {
        // Access key ids are not secret; the comparison need not be constant-time.
        accessKey == self.accessKey ? secretKey : nil
    }
}

/// What the client declared about its body in `x-amz-content-sha256`.
enum PayloadMode: Sendable, Equatable {
    /// A hex SHA-256 of the body, which must be checked against the body as it streams.
    case signedHash([UInt8])
    /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature.
    case unsigned
    /// `STREAMING-*` (aws-chunked): the value names the chunk signing mode.
    case streaming(String)

    static func parse(_ value: String) -> PayloadMode? {
        if value == SigV4.unsignedPayload { return .unsigned }
        if value.hasPrefix("STREAMING-") { return .streaming(value) }
        if value.utf8.count == 64, let bytes = Encoding.fromHex(value) { return .signedHash(bytes) }
        return nil
    }
}

/// The outcome of a successful verification: who signed, and what the signature commits to.
/// The seed signature and signing key are what an aws-chunked decoder needs to verify chunk signatures.
struct VerifiedRequest: Sendable {
    var accessKey: String
    var scope: SigV4Scope
    /// The request time as `yyyyMMdd'T'HHmmss'Z'` (from x-amz-date, or the Date header converted).
    var amzDate: String
    var payload: PayloadMode
    /// The `x-amz-content-sha256` value exactly as sent.
    var payloadHashHeader: String
    var seedSignature: String
    var signingKey: [UInt8]
}

/// Verifies SigV4 `Authorization` headers of client requests. Pure: the current time is a parameter.
struct SigV4Verifier: Sendable {
    var credentials: any CredentialProvider
    /// Largest accepted distance between the request time and `now` (S3 uses 15 minutes).
    var maxClockSkewSeconds: Int64 = 15 * 60
    var keyCache: SigningKeyCache = SigningKeyCache()

    init(credentials: any CredentialProvider, maxClockSkewSeconds: Int64 = 15 * 60, keyCache: SigningKeyCache = SigningKeyCache()) {
        self.credentials = credentials
        self.maxClockSkewSeconds = maxClockSkewSeconds
        self.keyCache = keyCache
    }

    /// Verifies one request.
    /// - Parameters:
    ///   - rawPath / rawQuery: the request target as received, still percent-encoded.
    ///   - now: Unix seconds.
    func verify(method: String, rawPath: String, rawQuery: String?, headers: HTTPFields, now: Int64) throws(S3Error) -> VerifiedRequest {
        let authorizations = headers.values("Authorization")
        guard let authorization = authorizations.first else {
            throw Self.missingAuthorizationError(rawQuery: rawQuery)
        }
        guard authorizations.count == 1 else {
            throw S3Error.authorizationHeaderMalformed("more than one Authorization header")
        }
        if authorization.hasPrefix("AWS ") {
            throw S3Error.accessDenied("AWS Signature Version 2 is not supported yet; sign requests with Signature Version 4.")
        }
        let auth = try SigV4AuthorizationHeader.parse(authorization)

        guard auth.signedHeaders.contains("host") else {
            throw S3Error.authorizationHeaderMalformed("the host header must be signed")
        }
        let amzDate: String
        let requestTime: Int64
        if let xAmzDate = headers["x-amz-date"] {
            guard auth.signedHeaders.contains("x-amz-date") else {
                throw S3Error.authorizationHeaderMalformed("the x-amz-date header must be signed")
            }
            guard let t = SigV4Time.parseAmzDate(xAmzDate) else {
                throw S3Error.accessDenied("AWS authentication requires a valid Date or x-amz-date header")
            }
            amzDate = xAmzDate
            requestTime = t
        } else if let date = headers["date"] {
            guard auth.signedHeaders.contains("date") else {
                throw S3Error.authorizationHeaderMalformed("the date header must be signed")
            }
            guard let t = SigV4Time.parseHTTPDate(date) else {
                throw S3Error.accessDenied("AWS authentication requires a valid Date or x-amz-date header")
            }
            amzDate = SigV4Time.formatAmzDate(t)
            requestTime = t
        } else {
            throw S3Error.accessDenied("AWS authentication requires a valid Date or x-amz-date header")
        }
        guard auth.scope.date == String(amzDate.prefix(8)) else {
            throw S3Error.authorizationHeaderMalformed("the credential date \(auth.scope.date) does not match the request date \(amzDate.prefix(8))")
        }
        guard abs(now - requestTime) <= maxClockSkewSeconds else { throw S3Error.requestTimeTooSkewed() }

        guard let payloadHashHeader = headers["x-amz-content-sha256"] else {
            throw S3Error.missingSecurityHeader("x-amz-content-sha256")
        }
        guard let payload = PayloadMode.parse(payloadHashHeader) else {
            throw S3Error.invalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a hex SHA-256 value")
        }

        guard let secret = credentials.secretKey(forAccessKey: auth.accessKey) else {
            throw S3Error.invalidAccessKeyId()
        }

        guard let canonicalURI = SigV4.canonicalURI(rawPath: rawPath) else { throw S3Error.invalidURI() }
        guard let query = QueryString.parse(rawQuery) else { throw S3Error.invalidURI() }
        let canonicalHeaders: String
        switch SigV4.canonicalHeaders(signedHeaders: auth.signedHeaders, headers: headers) {
        case .success(let block): canonicalHeaders = block
        case .failure(let missing):
            throw S3Error.signatureDoesNotMatch("The signed header '\(missing.name)' is not present in the request.")
        }
        let canonicalRequest = SigV4.canonicalRequest(
            method: method, canonicalURI: canonicalURI, canonicalQuery: QueryString.canonical(query),
            canonicalHeaders: canonicalHeaders, signedHeaders: auth.signedHeaders, payloadHash: payloadHashHeader)
        let stringToSign = SigV4.stringToSign(amzDate: amzDate, scope: auth.scope, canonicalRequest: canonicalRequest)
        let signingKey = keyCache.key(secret: secret, scope: auth.scope)
        let expected = SigV4.signature(signingKey: signingKey, stringToSign: stringToSign)
        guard ConstantTime.equals(expected, auth.signature) else {
            throw S3Error.signatureDoesNotMatch(logDetail: "canonical request:\n\(canonicalRequest)\nstring to sign:\n\(stringToSign)")
        }
        return VerifiedRequest(accessKey: auth.accessKey, scope: auth.scope, amzDate: amzDate, payload: payload,
                               payloadHashHeader: payloadHashHeader, seedSignature: auth.signature, signingKey: signingKey)
    }

    private static func missingAuthorizationError(rawQuery: String?) -> S3Error {
        let names = Set((QueryString.parse(rawQuery) ?? []).map { $0.name.lowercased() })
        if names.contains("x-amz-signature") || names.contains("x-amz-credential") {
            return S3Error.accessDenied("Presigned URLs (query-string authentication) are not supported yet.")
        }
        if names.contains("signature") || names.contains("awsaccesskeyid") {
            return S3Error.accessDenied("AWS Signature Version 2 presigned URLs are not supported yet.")
        }
        return S3Error.accessDenied("Anonymous requests are not allowed; sign requests with AWS Signature Version 4.")
    }
}

/// Constant-time comparison through OpenSSL, so a signature check leaks no prefix length.
enum ConstantTime {
    static func equals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        if x.isEmpty { return true }
        return x.withUnsafeBytes { px in
            y.withUnsafeBytes { py in CRYPTO_memcmp(px.baseAddress, py.baseAddress, x.count) == 0 }
        }
    }

    static func equals(_ x: [UInt8], _ y: [UInt8]) -> Bool {
        guard x.count == y.count else { return false }
        if x.isEmpty { return true }
        return x.withUnsafeBytes { px in
            y.withUnsafeBytes { py in CRYPTO_memcmp(px.baseAddress, py.baseAddress, x.count) == 0 }
        }
    }
}
