import Foundation
import Shared

/// The outcome of evaluating a request's conditional headers against an object.
enum ConditionalOutcome: Equatable {
    case proceed
    /// 304 Not Modified (GET/HEAD).
    case notModified
    /// 412 Precondition Failed.
    case preconditionFailed
}

/// Evaluates `If-Match`, `If-None-Match`, `If-Modified-Since` and `If-Unmodified-Since` (RFC 9110 §13.2.2)
/// in the gateway, against the ETag and Last-Modified the client sees. The backend cannot do it for
/// encrypted objects: its ETag is the MD5 of the ciphertext.
enum ConditionalRequest {
    static let headerNames = ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since"]
    static let copySourceHeaderNames = ["x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match",
                                        "x-amz-copy-source-if-modified-since", "x-amz-copy-source-if-unmodified-since"]

    /// - Parameters:
    ///   - etags: the ETags clients may know the object by (`ClientETag.seen`), quoted; any of them matches.
    ///     Computed only when an ETag condition is present (most requests carry none).
    ///   - lastModified: the object's `Last-Modified` header value.
    static func evaluate(headers: HTTPFields, etags: @autoclosure () -> [String], lastModified: String?) -> ConditionalOutcome {
        // One pass over the headers settles the common case (no `If-*` header at all), not four lookups.
        guard hasConditional(headers) else { return .proceed }
        return evaluate(ifMatch: headers["If-Match"], ifNoneMatch: headers["If-None-Match"],
                 ifModifiedSince: headers["If-Modified-Since"], ifUnmodifiedSince: headers["If-Unmodified-Since"],
                 etags: etags(), lastModified: lastModified, failureIsNotModified: true)
    }

    /// The `x-amz-copy-source-if-*` headers of CopyObject: every failure is 412.
    static func evaluateCopySource(headers: HTTPFields, etags: @autoclosure () -> [String], lastModified: String?) -> ConditionalOutcome {
        guard headers.contains(where: { $0.name.caseInsensitiveHasPrefix("x-amz-copy-source-if-") }) else { return .proceed }
        return evaluate(ifMatch: headers["x-amz-copy-source-if-match"], ifNoneMatch: headers["x-amz-copy-source-if-none-match"],
                 ifModifiedSince: headers["x-amz-copy-source-if-modified-since"],
                 ifUnmodifiedSince: headers["x-amz-copy-source-if-unmodified-since"],
                 etags: etags(), lastModified: lastModified, failureIsNotModified: false)
    }

    /// Whether any header name starts with `If-` (any case): the first byte rules out nearly every name.
    static func hasConditional(_ headers: HTTPFields) -> Bool {
        headers.contains { field in
            guard let first = field.name.utf8.first, first | 0x20 == UInt8(ascii: "i") else { return false }
            return field.name.caseInsensitiveHasPrefix("if-")
        }
    }

    static func evaluate(ifMatch: String?, ifNoneMatch: String?, ifModifiedSince: String?, ifUnmodifiedSince: String?,
                         etags: @autoclosure () -> [String], lastModified: String?, failureIsNotModified: Bool) -> ConditionalOutcome {
        // Nothing to evaluate: the common case costs four header lookups and no ETag or date work.
        guard ifMatch != nil || ifNoneMatch != nil || ifModifiedSince != nil || ifUnmodifiedSince != nil else { return .proceed }
        // Last-Modified is parsed only when a date condition needs it (most requests carry none).
        var modified: Date? {
            guard ifModifiedSince != nil || ifUnmodifiedSince != nil else { return nil }
            return lastModified.flatMap(parseHTTPDate)
        }
        let etags = (ifMatch != nil || ifNoneMatch != nil) ? etags() : []
        if let ifMatch {
            if !matches(ifMatch, etags: etags) { return .preconditionFailed }
        } else if let ifUnmodifiedSince, let since = parseHTTPDate(ifUnmodifiedSince), let modified, modified > since {
            return .preconditionFailed
        }
        if let ifNoneMatch {
            if matches(ifNoneMatch, etags: etags) { return failureIsNotModified ? .notModified : .preconditionFailed }
        } else if let ifModifiedSince, let since = parseHTTPDate(ifModifiedSince), let modified, modified <= since {
            return failureIsNotModified ? .notModified : .preconditionFailed
        }
        return .proceed
    }

    static func matches(_ list: String, etags: [String]) -> Bool {
        etags.contains { matches(list, etag: $0) }
    }

    /// Weak comparison of a list of entity tags (`*`, `"a", W/"b"`, or an unquoted tag as some clients send).
    static func matches(_ list: String, etag: String) -> Bool {
        let target = normalize(etag)
        for item in list.split(separator: ",") {
            let tag = item.trimmingCharacters(in: .whitespaces)
            if tag == "*" { return true }
            if normalize(tag) == target { return true }
        }
        return false
    }

    private static func normalize(_ tag: String) -> String {
        var t = Substring(tag.trimmingCharacters(in: .whitespaces))
        if t.hasPrefix("W/") { t = t.dropFirst(2) }
        if t.hasPrefix("\""), t.hasSuffix("\""), t.count >= 2 { t = t.dropFirst().dropLast() }
        return String(t)
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 and asctime, to whole seconds
    /// (`HTTPDate`: fixed formats, no DateFormatter per request).
    static func parseHTTPDate(_ text: String) -> Date? {
        HTTPDate.parse(text).map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }
}
