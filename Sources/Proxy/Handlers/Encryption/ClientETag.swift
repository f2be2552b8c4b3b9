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
    static func md5(_ digest: [UInt8]) -> String { "\"\(Encoding.hex(digest))\"" }

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

    /// Every ETag a client may have been shown for the object: HEAD/GET's `primary` and the listing's form.
    static func seen(primary: String, backendETag: String?) -> [String] {
        let listed = opaque(backendETag)
        return listed == primary ? [primary] : [primary, listed]
    }
}
