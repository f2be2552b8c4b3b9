import Shared

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

/// How a request proved who sent it.
enum AuthScheme: String, Sendable {
    case sigV4Header = "sigv4"
    case sigV4Query = "sigv4-presigned"
    case sigV2Header = "sigv2"
    case sigV2Query = "sigv2-presigned"
    case postPolicy = "post-policy"
    /// No credentials at all, accepted only with `ANONYMOUS_ACCESS=forward`.
    case anonymous

    /// The query parameters that carry this scheme's authentication (presigned URLs): not part of the S3
    /// request itself, so they are not forwarded.
    var queryParameters: Set<String> {
        switch self {
        case .sigV4Query:
            return ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                    "X-Amz-Signature", "X-Amz-Security-Token"]
        case .sigV2Query:
            return ["AWSAccessKeyId", "Expires", "Signature", "x-amz-security-token"]
        default:
            return []
        }
    }
}

/// How anonymous requests (no signature of any kind) are treated: `ANONYMOUS_ACCESS`.
enum AnonymousAccess: String, Sendable {
    /// Refused with AccessDenied (the default).
    case deny
    /// Forwarded unsigned, so the backend's own public-read ACLs and bucket policies decide.
    case forward
}

/// How the gateway signs what it sends to the backend on behalf of one client request.
enum BackendSigning: Sendable, Equatable {
    /// The gateway's own `BACKEND_ACCESS_KEY`/`BACKEND_SECRET_KEY`.
    case gateway
    /// The backend key pair mapped to the client's credential.
    case credential(BackendCredential)
    /// Not signed at all (anonymous requests with `ANONYMOUS_ACCESS=forward`).
    case anonymous
}

/// The outcome of a successful authentication: who signed, how, and what the signature commits the body to.
struct VerifiedRequest: Sendable {
    /// nil only for anonymous requests.
    var credential: Credential?
    var scheme: AuthScheme
    var payload: PayloadMode
    /// The `x-amz-content-sha256` value exactly as sent (empty when the scheme has none).
    var payloadHashHeader: String
    /// The chunk signature chain of a SigV4 header-signed request (what signed aws-chunked bodies verify against).
    var chunkChain: ChunkSignatureChain?

    var accessKey: String? { credential?.accessKey }

    var backendSigning: BackendSigning {
        guard let credential else { return .anonymous }
        return credential.backend.map { .credential($0) } ?? .gateway
    }
}

/// Why an authentication failed, as counted in `s3_gateway_auth_failures_total{reason}`.
enum AuthFailureReason: String, Sendable, CaseIterable {
    /// No credentials and anonymous access is refused.
    case anonymous
    /// Authorization header or query parameters unparsable, or an unsupported scheme.
    case malformed
    case unknownAccessKey = "unknown_access_key"
    case signatureMismatch = "signature_mismatch"
    /// A presigned URL or POST policy past its expiry.
    case expired
    case clockSkew = "clock_skew"
    case wrongRegion = "wrong_region"
    /// Authenticated, but the credential may not do this (bucket list, read-only).
    case accessDenied = "access_denied"
}

/// A refused request: the S3 error to answer and why, for metrics and logs (never with secrets).
struct AuthenticationFailure: Error, Sendable, CustomStringConvertible {
    var reason: AuthFailureReason
    var error: S3Error
    /// The access key the request named, if any (not secret; logged to help operators).
    var accessKey: String?

    var description: String { "authentication failed (\(reason.rawValue)): \(error)" }
}

/// Authenticates client requests as S3 does: SigV4 in the Authorization header or the query string
/// (presigned URLs), SigV2 in the Authorization header or the query string, or none at all when anonymous
/// access is forwarded. Pure: the current time is a parameter, credentials come from the provider.
struct RequestAuthenticator: Sendable {
    var credentials: any CredentialProvider
    /// Regions a SigV4 credential scope may name (`GATEWAY_REGIONS`, default `BACKEND_REGION`).
    var regions: Set<String>
    var anonymous: AnonymousAccess
    /// Largest accepted distance between the request time and `now` (S3 uses 15 minutes).
    var maxClockSkewSeconds: Int64

    init(credentials: any CredentialProvider, regions: Set<String>, anonymous: AnonymousAccess = .deny,
         maxClockSkewSeconds: Int64 = 15 * 60) {
        self.credentials = credentials
        self.regions = regions
        self.anonymous = anonymous
        self.maxClockSkewSeconds = maxClockSkewSeconds
    }

    /// Authenticates one request.
    /// - Parameters:
    ///   - rawPath / rawQuery: the request target as received, still percent-encoded.
    ///   - virtualHostBucket: the bucket named by the Host header (virtual-host style), for SigV2's canonical resource.
    ///   - now: Unix seconds.
    func authenticate(method: String, rawPath: String, rawQuery: String?, headers: HTTPFields,
                      virtualHostBucket: String? = nil, now: Int64) throws(AuthenticationFailure) -> VerifiedRequest {
        var authorization: String?
        for field in headers.entries where field.name.utf8.count == 13 && field.name.caseInsensitiveEquals("authorization") {
            guard authorization == nil else {
                throw .malformed(S3Error.authorizationHeaderMalformed("more than one Authorization header"))
            }
            authorization = field.value
        }
        // Parsed once for every scheme; nil (a bad escape) is refused by the scheme that needs the query.
        let query = QueryString.parse(rawQuery)
        let sigV4Query = query?.contains { $0.name == "X-Amz-Algorithm" || $0.name == "X-Amz-Signature" || $0.name == "X-Amz-Credential" } ?? false
        let sigV2Query = query?.contains { $0.name == "Signature" || $0.name == "AWSAccessKeyId" } ?? false
        if (authorization == nil ? 0 : 1) + (sigV4Query ? 1 : 0) + (sigV2Query ? 1 : 0) > 1 {
            throw AuthenticationFailure(reason: .malformed, error: S3Error.invalidArgument(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified"))
        }
        if let authorization {
            if authorization.utf8.starts(with: "AWS ".utf8) {
                return try verifySigV2Header(authorization, method: method, rawPath: rawPath, rawQuery: rawQuery,
                                             headers: headers, virtualHostBucket: virtualHostBucket, now: now)
            }
            return try verifySigV4Header(authorization, method: method, rawPath: rawPath, query: query, headers: headers, now: now)
        }
        if sigV4Query {
            return try verifySigV4Query(method: method, rawPath: rawPath, query: query, headers: headers, now: now)
        }
        if sigV2Query {
            return try verifySigV2Query(method: method, rawPath: rawPath, rawQuery: rawQuery, headers: headers,
                                        virtualHostBucket: virtualHostBucket, now: now)
        }
        guard anonymous == .forward else {
            throw AuthenticationFailure(reason: .anonymous, error: S3Error.accessDenied(
                "Anonymous requests are not allowed; sign requests with AWS Signature Version 4 or 2."))
        }
        return VerifiedRequest(credential: nil, scheme: .anonymous, payload: try optionalPayloadMode(headers),
                               payloadHashHeader: headers["x-amz-content-sha256"] ?? "", chunkChain: nil)
    }

    /// The credential of `accessKey`, or `InvalidAccessKeyId`.
    func credential(_ accessKey: String) throws(AuthenticationFailure) -> Credential {
        try credential(accessKey[...])
    }

    /// The credential of `accessKey` (a slice of the Authorization header), or `InvalidAccessKeyId`.
    func credential(_ accessKey: Substring) throws(AuthenticationFailure) -> Credential {
        guard let credential = credentials.credential(forAccessKey: accessKey) else {
            throw AuthenticationFailure(reason: .unknownAccessKey, error: S3Error.invalidAccessKeyId(), accessKey: String(accessKey))
        }
        return credential
    }

    /// `x-amz-content-sha256` of schemes that do not require it (SigV2, presigned, anonymous): absent means unsigned.
    func optionalPayloadMode(_ headers: HTTPFields) throws(AuthenticationFailure) -> PayloadMode {
        guard let value = headers["x-amz-content-sha256"] else { return .unsigned }
        guard let mode = PayloadMode.parse(value) else {
            throw AuthenticationFailure(reason: .malformed, error: S3Error.invalidArgument(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a hex SHA-256 value"))
        }
        return mode
    }

    /// `accessKey` is evaluated only for the failure (SigV4 header requests hold it as a slice of the header).
    func checkSkew(_ requestTime: Int64, now: Int64, accessKey: @autoclosure () -> String) throws(AuthenticationFailure) {
        guard abs(now - requestTime) <= maxClockSkewSeconds else {
            throw AuthenticationFailure(reason: .clockSkew, error: S3Error.requestTimeTooSkewed(), accessKey: accessKey())
        }
    }
}

extension AuthenticationFailure {
    static func malformed(_ error: S3Error, accessKey: String? = nil) -> AuthenticationFailure {
        AuthenticationFailure(reason: .malformed, error: error, accessKey: accessKey)
    }
}

extension S3Error {
    static func authorizationQueryParametersError(_ message: String) -> S3Error {
        S3Error(code: "AuthorizationQueryParametersError", message: message, status: 400)
    }
    static func requestExpired() -> S3Error {
        S3Error(code: "AccessDenied", message: "Request has expired", status: 403)
    }
}
