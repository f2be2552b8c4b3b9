import Foundation
import Shared

/// AWS Signature Version 2 as S3 defines it (HMAC-SHA1 over a canonical string), for s3cmd, awscli v1's
/// `aws s3 presign`, boto3's default presigned URLs and older tools. Pure.
///
///     StringToSign = Method \n Content-MD5 \n Content-Type \n Date \n CanonicalizedAmzHeaders CanonicalizedResource
///
/// `Date` is the `Date` header, empty when `x-amz-date` is sent (it is then one of the amz headers), or the
/// `Expires` value of a presigned URL.
enum SigV2 {
    /// Query parameters that belong to the canonical resource (S3's sub-resources and response overrides);
    /// every other parameter is left out of the signature.
    static let subresources: Set<String> = [
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "encryption", "inventory",
        "legal-hold", "lifecycle", "location", "logging", "metrics", "notification", "object-lock", "partNumber",
        "policy", "publicAccessBlock", "replication", "requestPayment", "restore", "retention", "select",
        "select-type", "storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
        "versions", "website",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires",
    ]

    /// The canonical resource: `/bucket` for virtual-host requests, then the path as sent, then the
    /// sub-resources present, sorted by name, as `name` or `name=value`.
    /// - Parameter decodedValues: values percent-decoded (S3's definition, botocore) or as sent (s3cmd encodes them).
    static func canonicalResource(rawPath: String, rawQuery: String?, virtualHostBucket: String?, decodedValues: Bool) -> String? {
        var resource = (virtualHostBucket.map { "/" + $0 } ?? "") + rawPath
        var parameters: [(name: String, value: String?)] = []
        for segment in (rawQuery ?? "").split(separator: "&", omittingEmptySubsequences: true) {
            let parts = segment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = URIEncoding.decode(parts[0]) else { return nil }
            guard subresources.contains(name) else { continue }
            var value: String?
            if parts.count == 2 {
                if decodedValues {
                    guard let decoded = URIEncoding.decode(parts[1]) else { return nil }
                    value = decoded
                } else {
                    value = String(parts[1])
                }
            }
            parameters.append((name, value))
        }
        if !parameters.isEmpty {
            parameters.sort { $0.name < $1.name }
            resource += "?" + parameters.map { p in p.value.map { "\(p.name)=\($0)" } ?? p.name }.joined(separator: "&")
        }
        return resource
    }

    /// `x-amz-*` headers: names lower-cased, values trimmed, repeated headers joined with `,`, sorted by name,
    /// each `name:value\n`.
    static func canonicalAmzHeaders(_ headers: HTTPFields, excluding excluded: String? = nil) -> String {
        var merged: [String: [String]] = [:]
        for field in headers {
            let name = field.name.lowercased()
            guard name.hasPrefix("x-amz-"), name != excluded else { continue }
            merged[name, default: []].append(field.value.trimmingCharacters(in: .whitespaces))
        }
        return merged.keys.sorted().map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
    }

    /// - Parameter dateInAmzHeaders: false when `date` is the `x-amz-date` value moved to the Date line (the form
    ///   of S3's own documented example), so that header is not listed a second time.
    static func stringToSign(method: String, headers: HTTPFields, date: String, resource: String,
                             dateInAmzHeaders: Bool = true) -> String {
        method + "\n"
            + (headers["Content-MD5"]?.trimmingCharacters(in: .whitespaces) ?? "") + "\n"
            + (headers["Content-Type"]?.trimmingCharacters(in: .whitespaces) ?? "") + "\n"
            + date + "\n"
            + canonicalAmzHeaders(headers, excluding: dateInAmzHeaders ? nil : "x-amz-date")
            + resource
    }

    /// base64(HMAC-SHA1(secret, stringToSign)).
    static func signature(secret: String, stringToSign: String) -> String {
        Data(HMAC.sha1(key: Array(secret.utf8), string: stringToSign)).base64EncodedString()
    }

    /// The `Date` forms SigV2 clients send: RFC 1123 with `GMT` (botocore) or a numeric `+0000` zone (s3cmd).
    static func parseDate(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let t = SigV4Time.parseHTTPDate(trimmed) { return t }
        for suffix in [" +0000", " -0000", " UTC", " Z"] where trimmed.hasSuffix(suffix) {
            return SigV4Time.parseHTTPDate(String(trimmed.dropLast(suffix.count)) + " GMT")
        }
        return nil
    }
}

/// SigV2 header (`Authorization: AWS AccessKeyId:Signature`) and query-string (`AWSAccessKeyId`, `Expires`,
/// `Signature`) authentication.
extension RequestAuthenticator {
    func verifySigV2Header(_ authorization: String, method: String, rawPath: String, rawQuery: String?, headers: HTTPFields,
                           virtualHostBucket: String?, now: Int64) throws(AuthenticationFailure) -> VerifiedRequest {
        let rest = authorization.dropFirst("AWS ".count)
        guard authorization.utf8.count <= 512, let colon = rest.lastIndex(of: ":") else {
            throw .malformed(S3Error.authorizationHeaderMalformed("expected AWS AccessKeyId:Signature"))
        }
        let accessKey = String(rest[..<colon])
        let signature = String(rest[rest.index(after: colon)...])
        guard !accessKey.isEmpty, !signature.isEmpty else {
            throw .malformed(S3Error.authorizationHeaderMalformed("expected AWS AccessKeyId:Signature"))
        }
        // With x-amz-date the time is signed as that amz header and the Date line is empty; S3's documented example
        // instead moves the x-amz-date value to the Date line. Both sign the same time, so both are accepted.
        let dates: [(line: String, inAmzHeaders: Bool)]
        let requestTime: Int64
        if let xAmzDate = headers["x-amz-date"] {
            guard let t = SigV2.parseDate(xAmzDate) ?? SigV4Time.parseAmzDate(xAmzDate) else {
                throw .malformed(Self.invalidDate(), accessKey: accessKey)
            }
            dates = [("", true), (xAmzDate.trimmingCharacters(in: .whitespaces), false)]
            requestTime = t
        } else if let dateHeader = headers["Date"], let t = SigV2.parseDate(dateHeader) {
            dates = [(dateHeader.trimmingCharacters(in: .whitespaces), true)]
            requestTime = t
        } else {
            throw .malformed(Self.invalidDate(), accessKey: accessKey)
        }
        try checkSkew(requestTime, now: now, accessKey: accessKey)
        let credential = try credential(accessKey)
        try checkSigV2(signature, secret: credential.secretKey, method: method, headers: headers, dates: dates, rawPath: rawPath,
                       rawQuery: rawQuery, virtualHostBucket: virtualHostBucket, accessKey: accessKey)
        return VerifiedRequest(credential: credential, scheme: .sigV2Header, payload: try optionalPayloadMode(headers),
                               payloadHashHeader: headers["x-amz-content-sha256"] ?? "", chunkChain: nil)
    }

    func verifySigV2Query(method: String, rawPath: String, rawQuery: String?, headers: HTTPFields,
                          virtualHostBucket: String?, now: Int64) throws(AuthenticationFailure) -> VerifiedRequest {
        guard let query = QueryString.parse(rawQuery) else { throw .malformed(S3Error.invalidURI()) }
        func single(_ name: String) throws(AuthenticationFailure) -> String {
            let values = query.filter { $0.name == name }
            guard values.count == 1, !values[0].value.isEmpty else {
                throw .malformed(S3Error.accessDenied(
                    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"))
            }
            return values[0].value
        }
        let accessKey = try single("AWSAccessKeyId")
        let expiresText = try single("Expires")
        let signature = try single("Signature")
        guard expiresText.utf8.count <= 12, expiresText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let expires = Int64(expiresText) else {
            throw .malformed(S3Error.accessDenied("Invalid date (should be seconds since epoch): \(expiresText.prefix(16))"), accessKey: accessKey)
        }
        guard now <= expires else {
            throw AuthenticationFailure(reason: .expired, error: S3Error.requestExpired(), accessKey: accessKey)
        }
        let credential = try credential(accessKey)
        try checkSigV2(signature, secret: credential.secretKey, method: method, headers: headers, dates: [(expiresText, true)],
                       rawPath: rawPath, rawQuery: rawQuery, virtualHostBucket: virtualHostBucket, accessKey: accessKey)
        return VerifiedRequest(credential: credential, scheme: .sigV2Query, payload: try optionalPayloadMode(headers),
                               payloadHashHeader: headers["x-amz-content-sha256"] ?? "", chunkChain: nil)
    }

    /// Compares against the canonical resource with sub-resource values decoded (S3's definition) and as sent
    /// (s3cmd signs them encoded), and each accepted placement of the date: every candidate covers the same
    /// method, headers, time, resource and parameters, so none widens what is signed.
    private func checkSigV2(_ signature: String, secret: String, method: String, headers: HTTPFields,
                            dates: [(line: String, inAmzHeaders: Bool)], rawPath: String, rawQuery: String?,
                            virtualHostBucket: String?, accessKey: String) throws(AuthenticationFailure) {
        var candidates: [String] = []
        for decoded in [true, false] {
            guard let resource = SigV2.canonicalResource(rawPath: rawPath, rawQuery: rawQuery, virtualHostBucket: virtualHostBucket,
                                                         decodedValues: decoded) else {
                throw .malformed(S3Error.invalidURI(), accessKey: accessKey)
            }
            for date in dates {
                let stringToSign = SigV2.stringToSign(method: method, headers: headers, date: date.line, resource: resource,
                                                      dateInAmzHeaders: date.inAmzHeaders)
                if !candidates.contains(stringToSign) { candidates.append(stringToSign) }
            }
        }
        var matched = false
        for stringToSign in candidates where ConstantTime.equals(SigV2.signature(secret: secret, stringToSign: stringToSign), signature) {
            matched = true
        }
        guard matched else {
            throw AuthenticationFailure(reason: .signatureMismatch, error: S3Error.signatureDoesNotMatch(
                logDetail: "string to sign:\n\(candidates[0])"), accessKey: accessKey)
        }
    }
}
