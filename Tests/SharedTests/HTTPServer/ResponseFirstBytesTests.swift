import Foundation
import Glibc
import Testing
@testable import Shared

/// Writes a response body in small pieces and waits, after the first, until the test says the client has it.
private final class FirstPieceHandler: HTTPRequestHandler, @unchecked Sendable {
    let clientHasFirstPiece = DispatchSemaphore(value: 0)

    func handle(_ head: HTTPRequestHead, body: RequestBody, response: ResponseWriter, context: RequestContext) throws {
        let chunked = head.rawPath == "/chunked"
        try response.writeHead(HTTPResponseHead(status: 200, contentLength: chunked ? nil : 5 + 5 + 3 * 1000))
        try response.write(Array("first".utf8))
        // Without the client's word the body ends short, which the test sees as a broken response.
        guard clientHasFirstPiece.wait(timeout: .now() + 20) == .success else { return }
        try response.write(Array("later".utf8))
        for byte in [UInt8(0x61), 0x62, 0x63] { try response.write([UInt8](repeating: byte, count: 1000)) }
        try response.finish()
    }
}

@Suite(.serialized) struct ResponseFirstBytesTests {
    private func start(_ handler: FirstPieceHandler) throws -> HTTPServer {
        let config = HTTPServerConfiguration(listenAddress: "127.0.0.1:0", headerTimeout: .seconds(10),
                                             idleTimeout: .seconds(10), bodyIdleTimeout: .seconds(10))
        let server = try HTTPServer(configuration: config, handler: handler, observer: nil)
        try server.start()
        return server
    }

    /// The head and the first body bytes reach the client while the handler has not written more
    /// (a small first piece is not held back to be gathered with later ones); the rest follows intact.
    @Test(arguments: ["/length", "/chunked"])
    func theFirstBodyBytesGoOutAtOnce(path: String) throws {
        let handler = FirstPieceHandler()
        let server = try start(handler)
        defer { server.shutdown(grace: .seconds(1)) }
        let client = try #require(RawHTTPClient(port: server.boundPort))
        client.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(client.readLine() == "HTTP/1.1 200 OK")
        var headers: [String] = []
        while let line = client.readLine(), !line.isEmpty { headers.append(line.lowercased()) }
        let first = Array("first".utf8)
        if path == "/chunked" {
            #expect(headers.contains("transfer-encoding: chunked"))
            #expect(client.readLine() == "5")
            #expect(client.readExactly(5) == first)
            #expect(client.readLine() == "")
        } else {
            #expect(headers.contains("content-length: 3010"))
            #expect(client.readExactly(5) == first)
        }
        handler.clientHasFirstPiece.signal()
        let rest = Array("later".utf8) + [UInt8](repeating: 0x61, count: 1000) + [UInt8](repeating: 0x62, count: 1000)
            + [UInt8](repeating: 0x63, count: 1000)
        if path == "/chunked" {
            var body: [UInt8] = []
            while let line = client.readLine(), let size = Int(line, radix: 16), size > 0 {
                body += client.readExactly(size) ?? []
                #expect(client.readLine() == "")
            }
            #expect(body == rest)
        } else {
            #expect(client.readExactly(rest.count) == rest)
        }
    }
}
