/// Turns an API server error answer (HTTP status + `Status` body) into a `KubeError`.
enum KubeStatus {
    /// `body` is the raw response body (usually a `Status` object; may be empty or not JSON for proxies' errors).
    /// `retryAfterHeader` is the `Retry-After` header (seconds), preferred over `details.retryAfterSeconds`.
    static func error(httpStatus: Int, body: [UInt8], retryAfterHeader: String?) -> KubeError {
        let status = try? JSONValue.parse(body)
        let isStatus = status?["kind"]?.string == "Status"
        let message: String
        if isStatus, let m = status?["message"]?.string, !m.isEmpty {
            message = m
        } else if !body.isEmpty {
            message = String(decoding: body.prefix(512), as: UTF8.self)
        } else {
            message = "HTTP \(httpStatus)"
        }
        let reason = isStatus ? status?["reason"]?.string ?? "" : ""
        let code = isStatus ? status?["code"]?.int ?? httpStatus : httpStatus
        var retryAfter: Duration?
        if let h = retryAfterHeader?.trimmingSpaces, let s = Int(h), s >= 0 {
            retryAfter = .seconds(s)
        } else if let s = status?[path: "details", "retryAfterSeconds"]?.int, s >= 0 {
            retryAfter = .seconds(s)
        }
        return error(code: code, reason: reason, message: message, retryAfter: retryAfter)
    }

    /// For in-stream ERROR events of a watch.
    static func error(fromStatus status: JSONValue) -> KubeError {
        error(code: status["code"]?.int ?? 500, reason: status["reason"]?.string ?? "",
              message: status["message"]?.string ?? "watch error",
              retryAfter: status[path: "details", "retryAfterSeconds"]?.int.map { .seconds($0) })
    }

    static func error(code: Int, reason: String, message: String, retryAfter: Duration?) -> KubeError {
        switch reason {
        case "NotFound": return .notFound(message)
        case "AlreadyExists": return .alreadyExists(message)
        case "Conflict": return .conflict(message)
        case "Gone", "Expired": return .gone(message)
        case "Forbidden": return .forbidden(message)
        case "Unauthorized": return .unauthorized(message)
        case "Invalid", "BadRequest": return .invalid(message)
        case "TooManyRequests": return .tooManyRequests(retryAfter: retryAfter, message: message)
        case "Timeout", "ServerTimeout": return .timeout(message)
        default: break
        }
        switch code {
        case 400, 422: return .invalid(message)
        case 401: return .unauthorized(message)
        case 403: return .forbidden(message)
        case 404: return .notFound(message)
        case 409: return .conflict(message)
        case 410: return .gone(message)
        case 429: return .tooManyRequests(retryAfter: retryAfter, message: message)
        case 504: return .timeout(message)
        default: return .server(code: code, reason: reason, message: message)
        }
    }
}

fileprivate extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
