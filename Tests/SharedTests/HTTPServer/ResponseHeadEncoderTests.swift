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

    /// Non-ASCII values (bridged or not) come out as their UTF-8 bytes; long values (not small strings) too.
    @Test func nonASCIIAndLongValuesAreCopiedAsUTF8() throws {
        let long = String(repeating: "v", count: 300)
        let headers: HTTPFields = ["Content-Type": "text/plain", "x-amz-meta-name": "Zoë", "x-amz-meta-long": long]
        let bytes = try E.encode(status: 404, reason: "Not Found", headers: headers, date: "D", requestID: RequestID(0xF),
                                 framing: .chunked, connection: .close)
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            + "x-amz-meta-name: Zoë\r\nx-amz-meta-long: \(long)\r\nDate: D\r\nx-amz-request-id: 000000000000000F\r\n"
            + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    }

    /// The writer encodes into its coalescing buffer: a head that fits is written at its start and nothing after it
    /// is touched; one that does not fit reports the room it needs (the writer then encodes into an array).
    @Test(arguments: [0, 1, 50, 186, 187, 188, 4096])
    func encodingIntoRawMemoryWritesWhatFitsAndMeasuresTheRest(room: Int) throws {
        let headers: HTTPFields = ["ETag": "\"x\"", "x-amz-meta-name": "Zoë"]
        let expected = try E.encode(status: 200, reason: "OK", headers: headers, date: "Sun, 29 Nov 2026 05:50:00 GMT",
                                    requestID: RequestID(0xABC), framing: .contentLength(Int64.max), connection: .keepAlive)
        #expect(expected.count == 187)
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: room + 8, alignment: 1)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: 0xEE)
        let count = try E.encode(into: UnsafeMutableRawBufferPointer(rebasing: memory[0..<room]), status: 200, reason: "OK",
                                 headers: headers, date: "Sun, 29 Nov 2026 05:50:00 GMT", requestID: RequestID(0xABC),
                                 framing: .contentLength(Int64.max), connection: .keepAlive)
        #expect(count == expected.count)
        #expect(memory[room...].allSatisfy { $0 == 0xEE })
        if count <= room {
            #expect(Array(memory[0..<count]) == expected)
            #expect(memory[count...].allSatisfy { $0 == 0xEE })
        }
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
