import Shared

/// Signs outgoing requests to the backend with SigV4. Pure: the time is a parameter.
struct SigV4Signer: Sendable {
    var accessKey: String
    var secretKey: String
    var region: String
    var service: String = "s3"
    var keyCache: SigningKeyCache = SigningKeyCache()

    init(accessKey: String, secretKey: String, region: String, service: String = "s3", keyCache: SigningKeyCache = SigningKeyCache()) {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.service = service
        self.keyCache = keyCache
    }

    /// The same signer (region, service, key cache) for another key pair.
    func with(accessKey: String, secretKey: String) -> SigV4Signer {
        SigV4Signer(accessKey: accessKey, secretKey: secretKey, region: region, service: service, keyCache: keyCache)
    }

    /// Signs a request and returns the headers to send: `headers` followed by `x-amz-date`,
    /// `x-amz-content-sha256` and `Authorization`. Every header in `headers` is signed, plus `host`,
    /// which is not returned because the HTTP client sends it (it must equal `host`).
    /// - Parameters:
    ///   - canonicalURI: the encoded path exactly as it appears in the URL (S3: encoded once).
    ///   - canonicalQuery: `QueryString.canonical` of the parameters the URL carries.
    ///   - host: `host[:port]` as the HTTP client will send it (default ports omitted).
    ///   - payloadHash: hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    ///   - now: Unix seconds.
    func sign(method: String, canonicalURI: String, canonicalQuery: String, host: String,
              headers: [(name: String, value: String)], payloadHash: String, now: Int64) -> [(name: String, value: String)] {
        let amzDate = SigV4Time.formatAmzDate(now)
        let scope = SigV4Scope(date: String(amzDate.prefix(8)), region: region, service: service)
        var out = headers.filter {
            let n = $0.name.lowercased()
            return n != "host" && n != "x-amz-date" && n != "x-amz-content-sha256" && n != "authorization"
        }
        out.append((name: "x-amz-date", value: amzDate))
        out.append((name: "x-amz-content-sha256", value: payloadHash))

        var fields = HTTPFields(out)
        fields.add("host", host)
        let signedHeaders = Array(Set(fields.map { $0.name.lowercased() })).sorted()
        let canonicalHeaders: String
        switch SigV4.canonicalHeaders(signedHeaders: signedHeaders, headers: fields) {
        case .success(let block): canonicalHeaders = block
        case .failure: preconditionFailure("every signed header name comes from the fields themselves")
        }
        let canonicalRequest = SigV4.canonicalRequest(
            method: method, canonicalURI: canonicalURI, canonicalQuery: canonicalQuery,
            canonicalHeaders: canonicalHeaders, signedHeaders: signedHeaders, payloadHash: payloadHash)
        let stringToSign = SigV4.stringToSign(amzDate: amzDate, scope: scope, canonicalRequest: canonicalRequest)
        let signature = SigV4.signature(signingKey: keyCache.key(secret: secretKey, scope: scope), stringToSign: stringToSign)
        out.append((name: "Authorization",
                    value: "\(SigV4.algorithm) Credential=\(accessKey)/\(scope.string), SignedHeaders=\(signedHeaders.joined(separator: ";")), Signature=\(signature)"))
        return out
    }
}
