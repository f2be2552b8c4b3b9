import Shared
/// An S3 error the gateway itself produces, rendered as the S3 XML error document.
/// Backend errors are never wrapped in this type: they pass through unchanged.
struct S3Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// The S3 error code (`AccessDenied`, `SignatureDoesNotMatch`, ...).
    var code: String
    /// Human-readable message sent to the client. Never contains secrets, string-to-sign or canonical request.
    var message: String
    /// HTTP status of the response.
    var status: Int
    /// The resource the request addressed (raw path), filled in by the handler.
    var resource: String?
    /// Detail for logs only (e.g. the canonical request on a signature mismatch); never sent to the client.
    var logDetail: String?

    init(code: String, message: String, status: Int, resource: String? = nil, logDetail: String? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.resource = resource
        self.logDetail = logDetail
    }

    var description: String { "\(status) \(code): \(message)" }

    /// The `<Error>` document for this error and request.
    func xml(requestID: String) -> [UInt8] {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
        s += "<Code>\(S3XML.escape(code))</Code>"
        s += "<Message>\(S3XML.escape(message))</Message>"
        if let resource { s += "<Resource>\(S3XML.escape(resource))</Resource>" }
        s += "<RequestId>\(S3XML.escape(requestID))</RequestId>"
        s += "</Error>"
        return Array(s.utf8)
    }

    func withResource(_ resource: String) -> S3Error {
        var copy = self
        copy.resource = resource
        return copy
    }
}

extension S3Error {
    static func accessDenied(_ message: String = "Access Denied") -> S3Error {
        S3Error(code: "AccessDenied", message: message, status: 403)
    }
    static func invalidAccessKeyId() -> S3Error {
        S3Error(code: "InvalidAccessKeyId", message: "The AWS Access Key Id you provided does not exist in our records.", status: 403)
    }
    static func signatureDoesNotMatch(_ message: String = "The request signature we calculated does not match the signature you provided. Check your key and signing method.", logDetail: String? = nil) -> S3Error {
        S3Error(code: "SignatureDoesNotMatch", message: message, status: 403, logDetail: logDetail)
    }
    static func requestTimeTooSkewed() -> S3Error {
        S3Error(code: "RequestTimeTooSkewed", message: "The difference between the request time and the server's time is too large.", status: 403)
    }
    static func authorizationHeaderMalformed(_ message: String) -> S3Error {
        S3Error(code: "AuthorizationHeaderMalformed", message: "The authorization header is malformed; \(message)", status: 400)
    }
    static func missingSecurityHeader(_ header: String) -> S3Error {
        S3Error(code: "MissingSecurityHeader", message: "Your request is missing a required header: \(header).", status: 400)
    }
    static func contentSHA256Mismatch() -> S3Error {
        S3Error(code: "XAmzContentSHA256Mismatch", message: "The provided 'x-amz-content-sha256' header does not match what was computed.", status: 400)
    }
    static func badDigest() -> S3Error {
        S3Error(code: "BadDigest", message: "The Content-MD5 you specified did not match what we received.", status: 400)
    }
    static func invalidDigest() -> S3Error {
        S3Error(code: "InvalidDigest", message: "The Content-MD5 you specified is not valid.", status: 400)
    }
    static func incompleteBody() -> S3Error {
        S3Error(code: "IncompleteBody", message: "You did not provide the number of bytes specified by the Content-Length HTTP header.", status: 400)
    }
    static func entityTooLarge() -> S3Error {
        S3Error(code: "EntityTooLarge", message: "Your proposed upload exceeds the maximum allowed object size.", status: 400)
    }
    static func missingContentLength() -> S3Error {
        S3Error(code: "MissingContentLength", message: "You must provide the Content-Length HTTP header.", status: 411)
    }
    static func notImplemented(_ message: String = "A header you provided implies functionality that is not implemented.") -> S3Error {
        S3Error(code: "NotImplemented", message: message, status: 501)
    }
    static func serviceUnavailable(_ message: String = "The storage backend is unavailable. Please retry.") -> S3Error {
        S3Error(code: "ServiceUnavailable", message: message, status: 503)
    }
    static func slowDown() -> S3Error {
        S3Error(code: "SlowDown", message: "Please reduce your request rate.", status: 503)
    }
    static func internalError(_ message: String = "We encountered an internal error. Please try again.") -> S3Error {
        S3Error(code: "InternalError", message: message, status: 500)
    }
    static func methodNotAllowed(_ method: String) -> S3Error {
        S3Error(code: "MethodNotAllowed", message: "The specified method '\(method)' is not allowed against this resource.", status: 405)
    }
    static func invalidRequest(_ message: String) -> S3Error {
        S3Error(code: "InvalidRequest", message: message, status: 400)
    }
    /// A `partNumber` read beyond the object's parts.
    static func invalidPartNumber() -> S3Error {
        S3Error(code: "InvalidPartNumber", message: "The requested partnumber is not satisfiable", status: 416)
    }
    static func invalidArgument(_ message: String) -> S3Error {
        S3Error(code: "InvalidArgument", message: message, status: 400)
    }
    static func invalidBucketName(_ bucket: String) -> S3Error {
        S3Error(code: "InvalidBucketName", message: "The specified bucket is not valid: '\(bucket)'.", status: 400)
    }
    static func invalidURI(_ message: String = "Couldn't parse the specified URI.") -> S3Error {
        S3Error(code: "InvalidURI", message: message, status: 400)
    }
    static func keyTooLong() -> S3Error {
        S3Error(code: "KeyTooLongError", message: "Your key is too long (at most 1024 bytes).", status: 400)
    }
    static func requestTimeout() -> S3Error {
        S3Error(code: "RequestTimeout", message: "Your socket connection to the server was not read from or written to within the timeout period.", status: 400)
    }
}

/// XML text helpers for the documents the gateway writes itself.
enum S3XML {
    static func escape(_ text: String) -> String { XMLText.escape(text) }
}

/// Error documents relayed from the backend.
enum S3ErrorBody {
    /// Largest error document the gateway rewrites (S3's are a few hundred bytes).
    static let maxRewrittenSize = 64 << 10

    /// The backend's `<Error>` document with its `<RequestId>` replaced by the gateway's (or added), so a
    /// client sees one request id per error, the same in the `x-amz-request-id` header and in the body.
    /// Nil when `body` is not an S3 error document.
    static func withRequestID(_ body: [UInt8], _ requestID: String) -> [UInt8]? {
        guard body.count <= maxRewrittenSize, let text = String(validating: body, as: UTF8.self),
              let open = text.range(of: "<Error>") ?? text.range(of: "<Error "),
              let close = text.range(of: "</Error>", options: .backwards), open.upperBound <= close.lowerBound else { return nil }
        let id = "<RequestId>\(S3XML.escape(requestID))</RequestId>"
        if let start = text.range(of: "<RequestId>", range: open.upperBound..<close.lowerBound),
           let end = text.range(of: "</RequestId>", range: start.upperBound..<close.lowerBound) {
            return Array((String(text[..<start.lowerBound]) + id + String(text[end.upperBound...])).utf8)
        }
        return Array((String(text[..<close.lowerBound]) + id + String(text[close.lowerBound...])).utf8)
    }
}
