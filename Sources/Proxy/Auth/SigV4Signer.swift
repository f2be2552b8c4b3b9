import Shared

/// Signs outgoing requests to the backend with SigV4. Pure: the time is a parameter.
struct SigV4Signer: Sendable {
    var accessKey: String
    var secretKey: String
    var region: String
    var service: String = "s3"

    init(accessKey: String, secretKey: String, region: String, service: String = "s3") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.service = service
    }

    /// The same signer (region, service) for another key pair.
    func with(accessKey: String, secretKey: String) -> SigV4Signer {
        SigV4Signer(accessKey: accessKey, secretKey: secretKey, region: region, service: service)
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
    ///   - sendHost: the returned headers start with `Host: host`, for a client that sends it explicitly (the
    ///     backend client: so the Host the backend sees is byte-for-byte the one signed). Put first here, in the one
    ///     allocation, rather than inserted by the caller (a second allocation and a move of every field).
    func sign(method: String, canonicalURI: String, canonicalQuery: String, host: String,
              headers: [(name: String, value: String)], payloadHash: String, now: Int64,
              sendHost: Bool = false) -> [(name: String, value: String)] {
        let amzDate = SigV4Time.formatAmzDate(now)
        let scope = SigV4Scope(date: String(decoding: amzDate.utf8.prefix(8), as: UTF8.self), region: region, service: service)
        // Room for Host and the three headers added below in the one allocation.
        var out: [(name: String, value: String)] = []
        out.reserveCapacity(headers.count + 4)
        if sendHost { out.append((name: "Host", value: host)) }
        let firstField = out.count  // host is signed from `host` below, not from `out`
        for field in headers where !Self.isSetBySigner(field.name) { out.append(field) }
        out.append((name: "x-amz-date", value: amzDate))
        out.append((name: "x-amz-content-sha256", value: payloadHash))

        // Every field sent is signed, and host: lower-case names, sorted, several values of one name in the order
        // they are sent (the position breaks ties). One list, no lookups of each name among all fields.
        var signed: [(name: String, value: String, position: Int)] = []
        signed.reserveCapacity(out.count + 1)
        signed.append((name: "host", value: host, position: -1))
        for position in firstField..<out.count {
            signed.append((name: out[position].name.asciiLowercased(), value: out[position].value, position: position))
        }
        signed.sort { $0.name != $1.name ? $0.name < $1.name : $0.position < $1.position }
        var canonical = SigV4CanonicalRequest(method: method)
        canonical.appendCanonical(canonicalURI)
        canonical.appendCanonical(canonicalQuery)
        let signedHeaders = canonical.appendHeaders(sorted: signed)
        canonical.appendPayloadHash(payloadHash)
        let signature = SigV4.withStringToSign(amzDate: amzDate, scope: scope, canonicalRequestHash: canonical.hash) {
            SigningKeyCache.sign($0, accessKey: accessKey, secret: secretKey, scope: scope).signature
        }
        out.append((name: "Authorization", value: Self.authorization(accessKey: accessKey, scope: scope,
                                                                      signedHeaders: signedHeaders, signature: signature)))
        return out
    }

    /// `AWS4-HMAC-SHA256 Credential=<key>/<scope>, SignedHeaders=<a;b;c>, Signature=<hex>`, written straight into
    /// the string's storage (its length is known from the parts): no byte array in between (issue 12).
    static func authorization(accessKey: String, scope: SigV4Scope, signedHeaders: [String], signature: Bytes32) -> String {
        var count = SigV4.algorithm.utf8.count + 12 + accessKey.utf8.count + 1 + scope.byteCount + 16 + 12 + 64
        for name in signedHeaders { count += name.utf8.count + 1 }
        count -= signedHeaders.isEmpty ? 0 : 1
        return String(unsafeUninitializedCapacity: count) { buffer in
            var out = SigV4ByteWriter(UnsafeMutableRawBufferPointer(buffer))
            out.write("AWS4-HMAC-SHA256 Credential=" as StaticString)
            out.write(accessKey)
            out.write(UInt8(ascii: "/"))
            scope.write(to: &out)
            out.write(", SignedHeaders=" as StaticString)
            for (i, name) in signedHeaders.enumerated() {
                if i > 0 { out.write(UInt8(ascii: ";")) }
                out.write(name)
            }
            out.write(", Signature=" as StaticString)
            out.writeHex(signature)
            return out.count
        }
    }

    /// Headers the signer sets itself (or the HTTP client does, for `host`), whatever the caller passed.
    private static func isSetBySigner(_ name: String) -> Bool {
        name.caseInsensitiveEquals("host") || name.caseInsensitiveEquals("x-amz-date")
            || name.caseInsensitiveEquals("x-amz-content-sha256") || name.caseInsensitiveEquals("authorization")
    }
}
