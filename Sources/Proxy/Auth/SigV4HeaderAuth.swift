import Shared

/// SigV4 in the `Authorization` header, the way every current SDK signs.
extension RequestAuthenticator {
    /// - Parameter query: the parsed query, nil when it does not parse.
    func verifySigV4Header(_ authorization: String, method: String, rawPath: String, query: [QueryParameter]?,
                           headers: HTTPFields, now: Int64) throws(AuthenticationFailure) -> VerifiedRequest {
        let auth: SigV4AuthorizationHeader
        do {
            auth = try SigV4AuthorizationHeader.parse(authorization)
        } catch {
            throw .malformed(error)
        }
        // Until the credential is found the access key is the header's slice; a String of it only for an error.
        let key = auth.accessKey
        guard auth.signedHeaders.contains("host") else {
            throw .malformed(S3Error.authorizationHeaderMalformed("the host header must be signed"), accessKey: String(key))
        }
        let amzDate: String
        let requestTime: Int64
        if let xAmzDate = headers["x-amz-date"] {
            guard auth.signedHeaders.contains("x-amz-date") else {
                throw .malformed(S3Error.authorizationHeaderMalformed("the x-amz-date header must be signed"), accessKey: String(key))
            }
            guard let t = SigV4Time.parseAmzDate(xAmzDate) else { throw .malformed(Self.invalidDate(), accessKey: String(key)) }
            amzDate = xAmzDate
            requestTime = t
        } else if let date = headers["date"] {
            guard auth.signedHeaders.contains("date") else {
                throw .malformed(S3Error.authorizationHeaderMalformed("the date header must be signed"), accessKey: String(key))
            }
            guard let t = SigV4Time.parseHTTPDate(date) else { throw .malformed(Self.invalidDate(), accessKey: String(key)) }
            amzDate = SigV4Time.formatAmzDate(t)
            requestTime = t
        } else {
            throw .malformed(Self.invalidDate(), accessKey: String(key))
        }
        guard SigV4.datePrefixMatches(amzDate: amzDate, scopeDate: auth.scope.date) else {
            throw .malformed(S3Error.authorizationHeaderMalformed(
                "the credential date \(auth.scope.date) does not match the request date \(amzDate.prefix(8))"), accessKey: String(key))
        }
        try checkRegion(auth.scope.region, accessKey: String(key)) { S3Error.authorizationHeaderMalformed($0) }
        try checkSkew(requestTime, now: now, accessKey: String(key))

        guard let payloadHashHeader = headers["x-amz-content-sha256"] else {
            throw .malformed(S3Error.missingSecurityHeader("x-amz-content-sha256"), accessKey: String(key))
        }
        guard let payload = PayloadMode.parse(payloadHashHeader) else {
            throw .malformed(S3Error.invalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a hex SHA-256 value"),
                             accessKey: String(key))
        }
        let credential = try credential(key)
        // From here on the store's own String of the key (equal to the slice; no copy).
        let accessKey = credential.accessKey

        var canonical = SigV4CanonicalRequest(method: method)
        guard canonical.appendURI(rawPath: rawPath) else { throw .malformed(S3Error.invalidURI(), accessKey: accessKey) }
        guard let query else { throw .malformed(S3Error.invalidURI(), accessKey: accessKey) }
        canonical.appendQuery(query)
        if let missing = canonical.appendHeaders(signed: auth.signedHeaders, from: headers) {
            throw AuthenticationFailure(reason: .signatureMismatch, error: S3Error.signatureDoesNotMatch(
                "The signed header '\(missing)' is not present in the request."), accessKey: accessKey)
        }
        canonical.appendPayloadHash(payloadHashHeader)
        let canonicalHash = canonical.hash
        let (expected, signingKey) = SigV4.withStringToSign(amzDate: amzDate, scope: auth.scope, canonicalRequestHash: canonicalHash) {
            SigningKeyCache.sign($0, accessKey: accessKey, secret: credential.secretKey, scope: auth.scope)
        }
        guard expected == auth.signature else {  // Bytes32: constant-time
            let stringToSign = SigV4.stringToSign(amzDate: amzDate, scope: auth.scope, canonicalRequestHash: canonicalHash)
            throw .signatureMismatch(canonical, stringToSign: stringToSign, accessKey: accessKey)
        }
        let chain = ChunkSignatureChain(signingKey: signingKey, amzDate: amzDate, scope: auth.scope, seedSignature: auth.signature)
        return VerifiedRequest(credential: credential, scheme: .sigV4Header, payload: payload,
                               payloadHashHeader: payloadHashHeader, chunkChain: chain)
    }

    /// The scope's region must be one this gateway answers for, as S3 checks it against the bucket's region.
    /// `accessKey` is evaluated only for the failure (SigV4 header requests hold it as a slice of the header).
    func checkRegion(_ region: String, accessKey: @autoclosure () -> String, error: (String) -> S3Error) throws(AuthenticationFailure) {
        guard regions.contains(region) else {
            let expected = regions.sorted().map { "'\($0)'" }.joined(separator: " or ")
            throw AuthenticationFailure(reason: .wrongRegion, error: error("the region '\(region)' is wrong; expecting \(expected)"),
                                        accessKey: accessKey())
        }
    }

    static func invalidDate() -> S3Error {
        S3Error.accessDenied("AWS authentication requires a valid Date or x-amz-date header")
    }
}

extension AuthenticationFailure {
    /// SignatureDoesNotMatch, with what the gateway signed in the log detail (never in the answer).
    static func signatureMismatch(_ canonical: SigV4CanonicalRequest, stringToSign: [UInt8], accessKey: String) -> AuthenticationFailure {
        AuthenticationFailure(reason: .signatureMismatch, error: S3Error.signatureDoesNotMatch(
            logDetail: "canonical request:\n\(canonical.text)\nstring to sign:\n\(String(decoding: stringToSign, as: UTF8.self))"),
            accessKey: accessKey)
    }
}
