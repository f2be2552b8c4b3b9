import Testing
@testable import Operator

@Suite struct KubeStatusTests {
    static func status(_ code: Int, _ reason: String, _ message: String, retry: Int? = nil) -> [UInt8] {
        var s: JSONValue = ["kind": "Status", "apiVersion": "v1", "status": "Failure", "code": .integer(Int64(code)),
                            "reason": .string(reason), "message": .string(message)]
        if let retry { s["details"] = ["retryAfterSeconds": .integer(Int64(retry))] }
        return s.encoded()
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var code: Int
        var reason: String
        var expected: KubeError
        var testDescription: String { "\(code) \(reason)" }
    }

    @Test(arguments: [
        Case(code: 404, reason: "NotFound", expected: .notFound("m")),
        Case(code: 409, reason: "AlreadyExists", expected: .alreadyExists("m")),
        Case(code: 409, reason: "Conflict", expected: .conflict("m")),
        Case(code: 410, reason: "Gone", expected: .gone("m")),
        Case(code: 410, reason: "Expired", expected: .gone("m")),
        Case(code: 403, reason: "Forbidden", expected: .forbidden("m")),
        Case(code: 401, reason: "Unauthorized", expected: .unauthorized("m")),
        Case(code: 422, reason: "Invalid", expected: .invalid("m")),
        Case(code: 400, reason: "BadRequest", expected: .invalid("m")),
        Case(code: 504, reason: "Timeout", expected: .timeout("m")),
        Case(code: 500, reason: "InternalError", expected: .server(code: 500, reason: "InternalError", message: "m")),
        Case(code: 503, reason: "ServiceUnavailable", expected: .server(code: 503, reason: "ServiceUnavailable", message: "m")),
        // Unknown reasons fall back to the code.
        Case(code: 404, reason: "", expected: .notFound("m")),
        Case(code: 409, reason: "Odd", expected: .conflict("m")),
        Case(code: 410, reason: "", expected: .gone("m")),
    ])
    func statusReasonsMapToErrors(_ c: Case) {
        #expect(KubeStatus.error(httpStatus: c.code, body: Self.status(c.code, c.reason, "m"), retryAfterHeader: nil) == c.expected)
    }

    @Test func retryAfterPrefersTheHeaderThenDetails() {
        let body = Self.status(429, "TooManyRequests", "slow down", retry: 7)
        #expect(KubeStatus.error(httpStatus: 429, body: body, retryAfterHeader: "3")
                == .tooManyRequests(retryAfter: .seconds(3), message: "slow down"))
        #expect(KubeStatus.error(httpStatus: 429, body: body, retryAfterHeader: nil)
                == .tooManyRequests(retryAfter: .seconds(7), message: "slow down"))
        #expect(KubeStatus.error(httpStatus: 429, body: Self.status(429, "TooManyRequests", "x"), retryAfterHeader: "soon")
                == .tooManyRequests(retryAfter: nil, message: "x"))
    }

    @Test func nonStatusBodiesUseTheHTTPCodeAndTheBodyAsMessage() {
        #expect(KubeStatus.error(httpStatus: 502, body: Array("bad gateway".utf8), retryAfterHeader: nil)
                == .server(code: 502, reason: "", message: "bad gateway"))
        #expect(KubeStatus.error(httpStatus: 403, body: [], retryAfterHeader: nil) == .forbidden("HTTP 403"))
        // JSON that is not a Status does not lend its fields.
        #expect(KubeStatus.error(httpStatus: 404, body: Array(#"{"reason":"Conflict"}"#.utf8), retryAfterHeader: nil)
                == .notFound(#"{"reason":"Conflict"}"#))
    }
}
