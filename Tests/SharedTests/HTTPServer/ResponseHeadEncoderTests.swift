import Testing
@testable import Shared

@Suite struct ResponseHeadEncoderTests {
    typealias E = ResponseHeadEncoder

    func text(_ headers: HTTPFields, status: Int = 200, framing: E.Framing = .contentLength(4),
              connection: E.ConnectionField = .none) throws -> String {
        let bytes = try E.encode(status: status, reason: HTTPReasonPhrase.reason(status), headers: headers,
                                 date: "Sun, 29 Nov 2026 05:50:00 GMT", requestID: RequestID(0xABC), framing: framing,
                                 connection: connection)
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func theServerAddsDateIDFramingAndConnection() throws {
        #expect(try text(["ETag": "\"x\""]) == "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nDate: Sun, 29 Nov 2026 05:50:00 GMT\r\n"
            + "x-amz-request-id: 0000000000000ABC\r\nContent-Length: 4\r\n\r\n")
        #expect(try text([:], status: 206, framing: .contentLength(1_234_567_890_123), connection: .close)
            == "HTTP/1.1 206 Partial Content\r\nDate: Sun, 29 Nov 2026 05:50:00 GMT\r\nx-amz-request-id: 0000000000000ABC\r\n"
            + "Content-Length: 1234567890123\r\nConnection: close\r\n\r\n")
        #expect(try text([:], framing: .chunked, connection: .keepAlive).hasSuffix(
            "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"))
        #expect(try text([:], status: 304, framing: .none).hasSuffix("x-amz-request-id: 0000000000000ABC\r\n\r\n"))
        #expect(try text([:], framing: .contentLength(0)).contains("Content-Length: 0\r\n"))
    }

    /// Encoding into a reused buffer appends to what it holds (the writer empties it first, keeping its
    /// capacity); non-ASCII values (bridged or not) come out as their UTF-8 bytes.
    @Test func encodingIntoABufferAppendsTheSameBytes() throws {
        let headers: HTTPFields = ["Content-Type": "text/plain", "x-amz-meta-name": "Zoë"]
        let fresh = try E.encode(status: 404, reason: "Not Found", headers: headers, date: "D", requestID: RequestID(0xF),
                                 framing: .chunked, connection: .close)
        var out = Array("previous".utf8)
        try E.encode(into: &out, status: 404, reason: "Not Found", headers: headers, date: "D", requestID: RequestID(0xF),
                     framing: .chunked, connection: .close)
        #expect(out == Array("previous".utf8) + fresh)
        #expect(String(decoding: fresh, as: UTF8.self) == "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            + "x-amz-meta-name: Zoë\r\nDate: D\r\nx-amz-request-id: 000000000000000F\r\nTransfer-Encoding: chunked\r\n"
            + "Connection: close\r\n\r\n")
    }

    @Test func theHandlersDateAndIDWinAndItsFramingFieldsAreDropped() throws {
        let out = try text(["date": "d", "X-Amz-Request-Id": "mine", "content-LENGTH": "99",
                            "Transfer-Encoding": "gzip", "CONNECTION": "upgrade", "x-amz-meta-a": "b"])
        #expect(out == "HTTP/1.1 200 OK\r\ndate: d\r\nX-Amz-Request-Id: mine\r\nx-amz-meta-a: b\r\nContent-Length: 4\r\n\r\n")
    }

    @Test(arguments: [
        ("Bad Name", "v"), ("", "v"), ("X-Ok", "a\r\nInjected: 1"), ("X-Ok", "a\nb"), ("X-Ok", "a\u{0}b"),
        ("Name:", "v"), ("Dätë", "v"),
    ])
    func invalidFieldsAreRefused(name: String, value: String) {
        #expect(throws: E.InvalidField(name: name)) { try text(HTTPFields([(name: name, value: value)])) }
    }

    @Test(arguments: [
        ("date", E.Known.date), ("DATE", .date), ("Connection", .connection), ("content-length", .contentLength),
        ("X-AMZ-REQUEST-ID", .requestID), ("transfer-encoding", .transferEncoding), ("dates", .other),
        ("x-amz-request-ix", .other), ("Content-Type", .other), ("ETag", .other),
    ])
    func classifiesCaseInsensitively(name: String, expected: E.Known) throws {
        #expect(try E.check(name: name, value: "v") == expected)
    }
}
