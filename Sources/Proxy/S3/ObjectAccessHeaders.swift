import Shared

/// The client's headers that a backend needs for any read of the object a request names: the SSE-C key (S3 and
/// Ceph RGW refuse to read an object stored under SSE-C without it, a HEAD included), the requester-pays
/// acknowledgement and the expected bucket owner. The client's own GET or HEAD forwards them with everything else;
/// the reads the gateway makes on its own (part headers of multipart objects, a copy's source, the self-copy that
/// records an ETag, the HEAD before a conditional write or a screening) carry these, so that they succeed, and
/// fail, exactly as the client's would.
enum ObjectAccessHeaders {
    static let sseCustomerNames = ["x-amz-server-side-encryption-customer-algorithm",
                                   "x-amz-server-side-encryption-customer-key",
                                   "x-amz-server-side-encryption-customer-key-MD5"]
    static let copySourceSSECustomerNames = sseCustomerNames.map { "x-amz-copy-source-" + $0.dropFirst("x-amz-".count) }

    /// For reads of the object the request names (its bucket and key).
    static func object(_ headers: HTTPFields) -> HTTPFields {
        var out = HTTPFields()
        for name in sseCustomerNames + ["x-amz-request-payer", "x-amz-expected-bucket-owner"] {
            if let value = headers[name] { out.set(name, value) }
        }
        return out
    }

    /// For reads of a copy's source: its SSE-C key and expected owner come under the copy-source names, and a read
    /// of the source sends them under the plain ones.
    static func copySource(_ headers: HTTPFields) -> HTTPFields {
        var out = HTTPFields()
        for (source, plain) in zip(copySourceSSECustomerNames, sseCustomerNames) {
            if let value = headers[source] { out.set(plain, value) }
        }
        if let value = headers["x-amz-request-payer"] { out.set("x-amz-request-payer", value) }
        if let value = headers["x-amz-source-expected-bucket-owner"] { out.set("x-amz-expected-bucket-owner", value) }
        return out
    }

    /// An upload's SSE-C key, named as the source of a copy of the uploaded object onto itself.
    static func selfCopySource(_ headers: HTTPFields) -> HTTPFields {
        var out = HTTPFields()
        for (plain, source) in zip(sseCustomerNames, copySourceSSECustomerNames) {
            if let value = headers[plain] { out.set(source, value) }
        }
        return out
    }
}
