/// A failure of the encryption format or engine. The code says what kind of failure it was so
/// that the HTTP layer, logs and metrics can tell tampering from malformed input and from
/// configuration problems; the message says what to do about it.
public struct EncryptionError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// A tag did not verify: the stored ciphertext, its metadata or its bucket/key binding was modified.
        case tamperDetected
        /// The stream ended before its final chunk (cut at a chunk boundary or mid-chunk).
        case truncated
        /// Bytes follow the final chunk.
        case trailingData
        /// `x-amz-meta-s3eg-version` names a format this gateway does not know.
        case unsupportedVersion
        /// The object was wrapped with a key id that is not configured.
        case unknownKeyID
        /// The gateway metadata is missing a field or has a value outside its grammar.
        case malformedMetadata
        /// A ciphertext length or header that no writer of this format produces.
        case malformedCiphertext
        /// A body to seal was longer or shorter than its declared length.
        case lengthMismatch
        /// A caller passed a value outside the format's limits (chunk size, part number, range).
        case invalidParameter
        /// OpenSSL failed in a way that is not the data's fault.
        case internalFailure
        /// The key manager that holds the object's key cannot be reached now (retry later: 503).
        case keyUnavailable
        /// The key manager refused the object's key: disabled, revoked, deleted or not permitted (403).
        case keyAccessDenied
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
