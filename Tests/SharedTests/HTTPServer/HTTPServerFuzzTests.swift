import Glibc
import Testing
@testable import Shared

@Suite(.serialized) struct HTTPServerFuzzTests {
    /// Mutated request streams over real sockets: every connection ends (answered or closed),
    /// every answer is well-formed HTTP, and the server keeps serving afterwards.
    @Test func mutatedStreamsNeverWedgeTheServer() throws {
        let server = try startTestServer { $0.headerTimeout = .seconds(2); $0.bodyIdleTimeout = .seconds(2) }
        defer { server.shutdown(grace: .seconds(2)) }
        var rng = HTTPFuzzRNG(seed: 42)
        var answered = 0
        let paths = ["/echo", "/hello", "/no-read", "/stream", "/sum"]
        for i in 0..<300 {
            let base = HTTPRequestParserFuzzTests.corpus.randomElement(using: &rng)!
                .replacingOccurrences(of: "/b/k", with: paths[i % paths.count])
            let input = HTTPRequestParserFuzzTests.mutate(Array(base.utf8), &rng)
            let c = try connectRaw(server)
            c.send(input)
            _ = Glibc.shutdown(c.fd, Int32(SHUT_WR))  // EOF: the server must not wait for more
            let answer = c.readToEnd()
            if !answer.isEmpty { answered += 1 }
            if !answer.isEmpty {
                #expect(answer.starts(with: Array("HTTP/1.1 ".utf8)), "answer to \(input)")
            }
        }
        // Most mutated streams still get an answer (a response or an error status).
        #expect(answered > 150, "only \(answered) of 300 answered")
        let c = try connectRaw(server)
        c.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.body == Array("hello".utf8))
    }
}
