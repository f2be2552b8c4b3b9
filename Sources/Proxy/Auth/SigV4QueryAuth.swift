import Shared

/// SigV4 in the query string: presigned URLs (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
/// `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`), which plain HTTP clients such as curl can use.
extension RequestAuthenticator {
    /// The longest validity S3 accepts for a SigV4 presigned URL: seven days.
    static let maxPresignedExpiry: Int64 = 7 * 24 * 3600

    /// - Parameter query: the parsed query, nil when it does not parse.
    func verifySigV4Query(method: String, rawPath: String, query: [QueryParameter]?, headers: HTTPFields,
                          now: Int64) throws(AuthenticationFailure) -> VerifiedRequest {
        guard let query else { throw .malformed(S3Error.invalidURI()) }
        func single(_ name: String) throws(AuthenticationFailure) -> String {
            let values = query.filter { $0.name == name }
            guard values.count == 1 else {
                throw .malformed(S3Error.authorizationQueryParametersError(
                    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."))
            }
            return values[0].value
        }
        guard try single("X-Amz-Algorithm") == SigV4.algorithm else {
            throw .malformed(S3Error.authorizationQueryParametersError("X-Amz-Algorithm only supports \"\(SigV4.algorithm)\""))
        }
        let credentialText = try single("X-Amz-Credential")
        let amzDate = try single("X-Amz-Date")
        let expiresText = try single("X-Amz-Expires")
        let signedHeadersText = try single("X-Amz-SignedHeaders")
        let signatureText = try single("X-Amz-Signature")

        let accessKey: String, scope: SigV4Scope, signedHeaders: [String], signature: String
        do {
            (accessKey, scope) = try SigV4AuthorizationHeader.parseCredential(credentialText[...])
            signedHeaders = try SigV4AuthorizationHeader.parseSignedHeaders(signedHeadersText[...])
            signature = try SigV4AuthorizationHeader.parseSignature(signatureText[...])
        } catch {
            throw .malformed(S3Error.authorizationQueryParametersError(
                "Error parsing the X-Amz-Credential, X-Amz-SignedHeaders or X-Amz-Signature parameter: \(error.message)"))
        }
        guard signedHeaders.contains("host") else {
            throw .malformed(S3Error.authorizationQueryParametersError("X-Amz-SignedHeaders must include host"), accessKey: accessKey)
        }
        guard let requestTime = SigV4Time.parseAmzDate(amzDate) else {
            throw .malformed(S3Error.authorizationQueryParametersError(
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""), accessKey: accessKey)
        }
        guard amzDate.utf8.prefix(8).elementsEqual(scope.date.utf8) else {
            throw .malformed(S3Error.authorizationQueryParametersError(
                "Error parsing the X-Amz-Credential parameter; the credential date \(scope.date) does not match X-Amz-Date"), accessKey: accessKey)
        }
        guard expiresText.utf8.count <= 7, expiresText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let expires = Int64(expiresText) else {
            throw .malformed(S3Error.authorizationQueryParametersError("X-Amz-Expires should be a number"), accessKey: accessKey)
        }
        guard expires >= 1, expires <= Self.maxPresignedExpiry else {
            throw .malformed(S3Error.authorizationQueryParametersError(
                "X-Amz-Expires must be less than a week (in seconds) that is 604800"), accessKey: accessKey)
        }
        try checkRegion(scope.region, accessKey: accessKey) {
            S3Error.authorizationQueryParametersError("Error parsing the X-Amz-Credential parameter; \($0)")
        }
        // Signed in the future beyond the allowed skew: not valid yet. Past its expiry: expired.
        guard requestTime - now <= maxClockSkewSeconds else {
            throw AuthenticationFailure(reason: .clockSkew, error: S3Error.accessDenied("Request is not valid yet"), accessKey: accessKey)
        }
        guard now <= requestTime + expires else {
            throw AuthenticationFailure(reason: .expired, error: S3Error.requestExpired(), accessKey: accessKey)
        }
        // Signed aws-chunked modes need a seed signature from a header-signed request: PayloadDeclaration refuses them.
        let payload = try optionalPayloadMode(headers)
        let credential = try credential(accessKey)

        var canonical = SigV4CanonicalRequest(method: method)
        guard canonical.appendURI(rawPath: rawPath) else { throw .malformed(S3Error.invalidURI(), accessKey: accessKey) }
        canonical.appendQuery(query, omitting: "X-Amz-Signature")
        if let missing = canonical.appendHeaders(signed: signedHeaders, from: headers) {
            throw AuthenticationFailure(reason: .signatureMismatch, error: S3Error.signatureDoesNotMatch(
                "The signed header '\(missing)' is not present in the request."), accessKey: accessKey)
        }
        canonical.appendPayloadHash(headers["x-amz-content-sha256"] ?? SigV4.unsignedPayload)
        let stringToSign = SigV4.stringToSign(amzDate: amzDate, scope: scope, canonicalRequestHash: canonical.hash)
        let (expected, _) = stringToSign.withUnsafeBytes {
            SigningKeyCache.sign($0, accessKey: accessKey, secret: credential.secretKey, scope: scope)
        }
        guard SigV4.signatureMatches(signature, expected: expected) else {
            throw .signatureMismatch(canonical, stringToSign: stringToSign, accessKey: accessKey)
        }
        return VerifiedRequest(credential: credential, scheme: .sigV4Query, payload: payload,
                               payloadHashHeader: headers["x-amz-content-sha256"] ?? "", chunkChain: nil)
    }
}
