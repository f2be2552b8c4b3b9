import Shared

/// The ETags clients see (issue 7 §3): **the MD5 of the plaintext, or visibly not an MD5**.
///
/// The backend's ETag of an encrypted object is the MD5 of its ciphertext, which looks like an MD5 and
/// is not the one clients compare with (s3cmd, rclone). The gateway shows the plaintext MD5 when the
/// object's metadata carries it authenticated (format 2, checked by `dataKey(of:)`), and otherwise the
/// backend's ETag with `-1` appended: S3's own sign that an ETag is not an MD5 (multipart ETags end in
/// `-N`), which makes s3cmd and rclone fall back to HEAD (and so to the plaintext MD5) instead of
/// reporting a mismatch. Listings cannot tell encrypted entries from plain ones, so every listed ETag
/// that looks like an MD5 gets the same form; conditions accept both forms of an object.
enum ClientETag {
    /// `"<md5>"` of a plaintext digest.
    static func md5(_ digest: [UInt8]) -> String {
        // Written in place, one allocation: every GET and HEAD of an object with an ETag record makes this (issue 12).
        String(unsafeUninitializedCapacity: digest.count * 2 + 2) { out in
            out[0] = UInt8(ascii: "\"")
            for (i, byte) in digest.enumerated() {
                out[1 + 2 * i] = hexDigit(byte >> 4)
                out[2 + 2 * i] = hexDigit(byte & 0x0f)
            }
            out[digest.count * 2 + 1] = UInt8(ascii: "\"")
            return digest.count * 2 + 2
        }
    }

    @inline(__always)
    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v &+ UInt8(ascii: "0") : v &+ (UInt8(ascii: "a") &- 10) }

    /// The backend's ETag in a form that is visibly not an MD5: unchanged when it already contains `-`
    /// (multipart), else `-1` appended inside the quotes.
    static func opaque(_ backendETag: String?) -> String {
        // Trimmed by hand: Foundation's CharacterSet trimming showed up in every encrypted GET's profile.
        var tag = Substring(backendETag ?? "")
        while let first = tag.first, first == " " || first == "\t" { tag = tag.dropFirst() }
        while let last = tag.last, last == " " || last == "\t" { tag = tag.dropLast() }
        if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
        if tag.count >= 2, tag.hasPrefix("\""), tag.hasSuffix("\"") { tag = tag.dropFirst().dropLast() }
        // Byte search: `contains(_: String)` goes through Foundation's string search.
        if tag.utf8.contains(UInt8(ascii: "-")) { return "\"\(tag)\"" }
        return "\"\(tag)-1\""
    }

    /// The ETag of an encrypted object whose metadata was verified: the authenticated plaintext MD5, else opaque.
    static func encrypted(_ metadata: EncryptionMetadata, backendETag: String?) -> String {
        if let md5 = metadata.authenticatedMD5 { return self.md5(md5) }
        return opaque(backendETag)
    }

    /// Whether an UploadPart's ETag is the part's plaintext MD5 (`true`) or, like ListParts shows the part,
    /// `opaque` of the backend's part ETag (`false`) — decided from what the client committed the body to.
    ///
    /// A client that sent `Content-MD5` (rclone, minio-go) or no checksum at all (s3cmd compares every part's
    /// ETag with its MD5) gets the plaintext MD5. A client that chose a flexible checksum instead — a value in
    /// an `x-amz-checksum-*` header or announced in `x-amz-trailer`, what the AWS SDKs and CLI send by default —
    /// has its body verified by that checksum and never compares part ETags with an MD5 (S3 answers parts under
    /// SSE-KMS/SSE-C with non-MD5 ETags too), so the gateway skips the MD5, which costs more CPU than sealing.
    /// Only an algorithm (`x-amz-sdk-checksum-algorithm` without a value) is no check the client chose: MD5.
    /// Completing never depends on it: CompleteMultipartUpload uses the backend's listed parts.
    static func partETagIsPlaintextMD5(contentMD5: Bool, checksum: PayloadDeclaration.Checksum) -> Bool {
        if contentMD5 { return true }
        switch checksum {
        case .header, .trailer: return false
        case .none, .compute: return true
        }
    }

    /// Every ETag a client may have been shown for the object: HEAD/GET's `primary` and the listing's form.
    static func seen(primary: String, backendETag: String?) -> [String] {
        let listed = opaque(backendETag)
        return listed == primary ? [primary] : [primary, listed]
    }
}
