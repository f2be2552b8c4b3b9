import Shared

/// SigV4 in the `Authorization` header, the way every current SDK signs.
extension RequestAuthenticator {
    func verifySigV4Header(_ authorization: String, method: String, rawPath: String, rawQuery: String?,
                           headers: HTTPFields, now: Int64) throws(AuthenticationFailure) -> VerifiedRequest {
        let auth: SigV4AuthorizationHeader
        do {
            auth = try SigV4AuthorizationHeader.parse(authorization)
        } catch {
            throw .malformed(error)
        }
        let key = auth.accessKey
        guard auth.signedHeaders.contains("host") else {
            throw .malformed(S3Error.authorizationHeaderMalformed("the host header must be signed"), accessKey: key)
        }
        let amzDate: String
        let requestTime: Int64
        if let xAmzDate = headers["x-amz-date"] {
            guard auth.signedHeaders.contains("x-amz-date") else {
                throw .malformed(S3Error.authorizationHeaderMalformed("the x-amz-date header must be signed"), accessKey: key)
            }
            guard let t = SigV4Time.parseAmzDate(xAmzDate) else { throw .malformed(Self.invalidDate(), accessKey: key) }
            amzDate = xAmzDate
            requestTime = t
        } else if let date = headers["date"] {
            guard auth.signedHeaders.contains("date") else {
                throw .malformed(S3Error.authorizationHeaderMalformed("the date header must be signed"), accessKey: key)
            }
            guard let t = SigV4Time.parseHTTPDate(date) else { throw .malformed(Self.invalidDate(), accessKey: key) }
            amzDate = SigV4Time.formatAmzDate(t)
            requestTime = t
        } else {
            throw .malformed(Self.invalidDate(), accessKey: key)
        }
        guard auth.scope.date == String(amzDate.prefix(8)) else {
            throw .malformed(S3Error.authorizationHeaderMalformed(
                "the credential date \(auth.scope.date) does not match the request date \(amzDate.prefix(8))"), accessKey: key)
        }
        try checkRegion(auth.scope.region, accessKey: key) { S3Error.authorizationHeaderMalformed($0) }
        try checkSkew(requestTime, now: now, accessKey: key)

        guard let payloadHashHeader = headers["x-amz-content-sha256"] else {
            throw .malformed(S3Error.missingSecurityHeader("x-amz-content-sha256"), accessKey: key)
        }
        guard let payload = PayloadMode.parse(payloadHashHeader) else {
            throw .malformed(S3Error.invalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a hex SHA-256 value"),
                             accessKey: key)
        }
        let credential = try credential(key)

        guard let canonicalURI = SigV4.canonicalURI(rawPath: rawPath) else { throw .malformed(S3Error.invalidURI(), accessKey: key) }
        guard let query = QueryString.parse(rawQuery) else { throw .malformed(S3Error.invalidURI(), accessKey: key) }
        let canonicalHeaders: String
        switch SigV4.canonicalHeaders(signedHeaders: auth.signedHeaders, headers: headers) {
        case .success(let block): canonicalHeaders = block
        case .failure(let missing):
            throw AuthenticationFailure(reason: .signatureMismatch, error: S3Error.signatureDoesNotMatch(
                "The signed header '\(missing.name)' is not present in the request."), accessKey: key)
        }
        let canonicalRequest = SigV4.canonicalRequest(
            method: method, canonicalURI: canonicalURI, canonicalQuery: QueryString.canonical(query),
            canonicalHeaders: canonicalHeaders, signedHeaders: auth.signedHeaders, payloadHash: payloadHashHeader)
        let stringToSign = SigV4.stringToSign(amzDate: amzDate, scope: auth.scope, canonicalRequest: canonicalRequest)
        let signingKey = keyCache.key(secret: credential.secretKey, scope: auth.scope)
        let expected = SigV4.signature(signingKey: signingKey, stringToSign: stringToSign)
        guard ConstantTime.equals(expected, auth.signature) else {
            throw AuthenticationFailure(reason: .signatureMismatch, error: S3Error.signatureDoesNotMatch(
                logDetail: "canonical request:\n\(canonicalRequest)\nstring to sign:\n\(stringToSign)"), accessKey: key)
        }
        let chain = ChunkSignatureChain(signingKey: signingKey, amzDate: amzDate, scope: auth.scope, seedSignature: auth.signature)
        return VerifiedRequest(credential: credential, scheme: .sigV4Header, payload: payload,
                               payloadHashHeader: payloadHashHeader, chunkChain: chain)
    }

    /// The scope's region must be one this gateway answers for, as S3 checks it against the bucket's region.
    func checkRegion(_ region: String, accessKey: String, error: (String) -> S3Error) throws(AuthenticationFailure) {
        guard regions.contains(region) else {
            let expected = regions.sorted().map { "'\($0)'" }.joined(separator: " or ")
            throw AuthenticationFailure(reason: .wrongRegion, error: error("the region '\(region)' is wrong; expecting \(expected)"),
                                        accessKey: accessKey)
        }
    }

    static func invalidDate() -> S3Error {
        S3Error.accessDenied("AWS authentication requires a valid Date or x-amz-date header")
    }
}
