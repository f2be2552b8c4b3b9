import Testing
@testable import Shared

/// One request as the parser reported it.
struct HTTPParsedRequestRecord: Equatable {
    var method: String
    var target: String
    var headers: [String]
    var minorVersion: Int
    var framing: HTTPBodyFraming
    var keepAlive: Bool
    var expectsContinue: Bool
    var body: [UInt8]
    var complete: Bool
    var trailers: [String]
}

/// Everything the parser produced for a byte stream: requests in order, then an error status if any.
struct HTTPParseOutcome: Equatable {
    var requests: [HTTPParsedRequestRecord] = []
    var errorStatus: Int?
}

/// Feeds `pieces` in order the way the server does (unconsumed bytes stay buffered),
/// resetting after each request so pipelined requests parse too.
func httpParseStream(_ pieces: [[UInt8]], limits: HTTPParserLimits = HTTPParserLimits(), maxBody: Int = .max) -> HTTPParseOutcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = HTTPParseOutcome()
    var pending: [UInt8] = []
    var steps = 0
    let totalBytes = pieces.reduce(0) { $0 + $1.count }
    for piece in pieces {
        pending += piece
        while true {
            steps += 1
            // Each step consumes input or emits an event; a runaway loop is a bug.
            precondition(steps < 10 * (totalBytes + 10), "parser does not make progress")
            let result: (consumed: Int, event: HTTPParserEvent)
            do {
                result = try pending.withUnsafeBytes { try parser.feed($0, maxBody: maxBody) }
            } catch let error as HTTPParseError {
                outcome.errorStatus = error.status
                return outcome
            } catch {
                preconditionFailure("untyped error \(error)")
            }
            precondition(result.consumed <= pending.count)
            switch result.event {
            case .needMore:
                precondition(result.consumed == pending.count, "needMore must consume everything")
                pending.removeAll()
            case .head(let h):
                outcome.requests.append(HTTPParsedRequestRecord(
                    method: h.head.method, target: h.head.target,
                    headers: h.head.headers.map { "\($0.name):\($0.value)" }, minorVersion: h.head.minorVersion,
                    framing: h.framing, keepAlive: h.keepAlive, expectsContinue: h.expectsContinue,
                    body: [], complete: false, trailers: []))
                pending.removeFirst(result.consumed)
            case .body(let r):
                precondition(r.upperBound == result.consumed && r.count <= maxBody)
                outcome.requests[outcome.requests.count - 1].body += pending[r]
                pending.removeFirst(result.consumed)
            case .end:
                outcome.requests[outcome.requests.count - 1].complete = true
                outcome.requests[outcome.requests.count - 1].trailers = parser.trailers.map { "\($0.name):\($0.value)" }
                pending.removeFirst(result.consumed)
                parser.reset()
            }
            if case .needMore = result.event { break }
        }
    }
    return outcome
}

func httpBytes(_ s: String) -> [UInt8] { Array(s.utf8) }

func httpParseOnce(_ s: String, limits: HTTPParserLimits = HTTPParserLimits()) -> HTTPParseOutcome {
    httpParseStream([httpBytes(s)], limits: limits)
}

func httpParseByteByByte(_ b: [UInt8], limits: HTTPParserLimits = HTTPParserLimits()) -> HTTPParseOutcome {
    httpParseStream(b.map { [$0] }, limits: limits)
}

@Suite struct HTTPRequestParserTests {
    @Test func simpleGet() throws {
        let o = httpParseOnce("GET /bucket/key%20x?list-type=2 HTTP/1.1\r\nHost: s3.local\r\nX-Amz-Date: 20240101T000000Z\r\n\r\n")
        #expect(o.errorStatus == nil)
        let r = try #require(o.requests.first)
        #expect(r.method == "GET")
        #expect(r.target == "/bucket/key%20x?list-type=2")
        #expect(r.headers == ["Host:s3.local", "X-Amz-Date:20240101T000000Z"])
        #expect(r.framing == .none)
        #expect(r.keepAlive)
        #expect(r.complete)
    }

    @Test func contentLengthBody() throws {
        let o = httpParseOnce("PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET")
        let r = try #require(o.requests.first)
        #expect(r.framing == .length(5))
        #expect(r.body == httpBytes("hello"))
        #expect(r.complete)
        // "GET" is the start of the next request and stays incomplete.
        #expect(o.requests.count == 1)
        #expect(o.errorStatus == nil)
    }

    @Test func headerValueWhitespaceIsTrimmedAndEmptyValueAllowed() throws {
        let o = httpParseOnce("GET / HTTP/1.1\r\nHost:  h \t\r\nX-Empty:\r\nX-Inner: a  b\r\n\r\n")
        #expect(o.requests.first?.headers == ["Host:h", "X-Empty:", "X-Inner:a  b"])
    }

    @Test func keepAliveRules() throws {
        #expect(httpParseOnce("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").requests.first?.keepAlive == false)
        #expect(httpParseOnce("GET / HTTP/1.0\r\n\r\n").requests.first?.keepAlive == false)
        #expect(httpParseOnce("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").requests.first?.keepAlive == true)
        #expect(httpParseOnce("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n").requests.first?.keepAlive == false)
        #expect(httpParseOnce("GET / HTTP/1.0\r\n\r\n").requests.first?.minorVersion == 0)
    }

    @Test func expectContinueOnlyWithBody() throws {
        let withBody = httpParseOnce("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        #expect(withBody.requests.first?.expectsContinue == true)
        let noBody = httpParseOnce("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n")
        #expect(noBody.requests.first?.expectsContinue == false)
    }

    @Test func chunkedBodyWithExtensionsAndTrailers() throws {
        let raw = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\nA ;x\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n"
        let o = httpParseOnce(raw)
        #expect(o.errorStatus == nil)
        let r = try #require(o.requests.first)
        #expect(r.framing == .chunked)
        #expect(r.body == httpBytes("hello, world!!!"))
        #expect(r.trailers == ["X-Trailer:t"])
        #expect(r.complete)
        // Split at every byte boundary: same result.
        #expect(httpParseByteByByte(httpBytes(raw)) == o)
        for cut in 1..<raw.utf8.count {
            let b = httpBytes(raw)
            #expect(httpParseStream([Array(b[..<cut]), Array(b[cut...])]) == o, "split at \(cut)")
        }
    }

    @Test func maxBodyBoundsEachBodyEvent() throws {
        let raw = "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"
        let o = httpParseStream([httpBytes(raw)], maxBody: 3)
        #expect(o.requests.first?.body == httpBytes("0123456789"))
    }

    @Test func pipelinedRequestsInOneBuffer() throws {
        let raw = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
            + "PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            + "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
            + "\r\nGET /d HTTP/1.0\r\n\r\n"
        let o = httpParseOnce(raw)
        #expect(o.errorStatus == nil)
        #expect(o.requests.map(\.target) == ["/a", "/b", "/c", "/d"])
        #expect(o.requests.map(\.body) == [[], httpBytes("abc"), httpBytes("xy"), []])
        #expect(o.requests.allSatisfy { $0.complete })
        #expect(httpParseByteByByte(httpBytes(raw)) == o)
    }

    @Test func directBodyReadsKeepFraming() throws {
        var p = HTTPRequestParser()
        let head = httpBytes("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n")
        var r = try head.withUnsafeBytes { try p.feed($0) }
        guard case .head = r.event else { Issue.record("expected head"); return }
        r = try head.withUnsafeBytes { try p.feed(UnsafeRawBufferPointer(rebasing: $0[r.consumed...])) }
        #expect(p.directBodyBytes == 8)
        p.consumeDirectBody(5)
        #expect(p.directBodyBytes == 3)
        p.consumeDirectBody(3)
        #expect(p.directBodyBytes == 0)
        let tail = httpBytes("\r\n0\r\n\r\n")
        r = try tail.withUnsafeBytes { try p.feed($0) }
        guard case .end = r.event else { Issue.record("expected end, got \(r.event)"); return }
        #expect(p.bodyComplete)
    }

    /// Each malformed request and the status the server must answer.
    static let rejections: [(String, String, Int)] = [
        ("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  continued\r\n\r\n", 400),
        ("bare LF in head", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400),
        ("bare LF header", "GET / HTTP/1.1\r\nHost: h\n\r\n", 400),
        ("bare CR", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400),
        ("NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{0}b\r\n\r\n", 400),
        ("control in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{1}b\r\n\r\n", 400),
        ("DEL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{7F}b\r\n\r\n", 400),
        ("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
        ("invalid name char", "GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n", 400),
        ("empty name", "GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", 400),
        ("no colon", "GET / HTTP/1.1\r\nHost: h\r\nXA\r\n\r\n", 400),
        ("invalid method", "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("control in target", "GET /a\u{1}b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("bad version", "GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400),
        ("version trailing", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
        ("HTTP/2", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        ("HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505),
        ("missing Host", "GET / HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("duplicate CL", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
        ("conflicting CL", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        ("CL list", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400),
        ("CL sign", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400),
        ("CL overflow", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        ("TE and CL", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
        ("TE gzip", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("TE gzip, chunked", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("TE chunked twice", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        ("TE identity", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501),
        ("chunk size overflow",
         "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400),
        ("chunk size not hex", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("chunk size empty", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n;a=b\r\n", 400),
        ("chunk size bare LF", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello", 400),
        ("chunk data no CRLF", "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n", 400),
        ("chunk ext too long",
         "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;" + String(repeating: "a", count: 5000) + "\r\n",
         400),
        ("trailer obs-fold",
         "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", 400),
        ("trailers too large",
         "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + String(repeating: "X-T: " + String(repeating: "v", count: 1000) + "\r\n", count: 20) + "\r\n", 431),
        ("request line too long", "GET /" + String(repeating: "a", count: 16 * 1024) + " HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        ("header block too large",
         "GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X-A: " + String(repeating: "v", count: 1000) + "\r\n", count: 70)
            + "\r\n", 431),
        ("too many fields", "GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X-A: 1\r\n", count: 200) + "\r\n", 431),
        ("too many leading empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ]

    @Test(arguments: 0..<rejections.count)
    func rejects(_ index: Int) {
        let (name, raw, status) = Self.rejections[index]
        let once = httpParseOnce(raw)
        #expect(once.errorStatus == status, "\(name)")
        // The same verdict when the bytes trickle in one at a time.
        #expect(httpParseByteByByte(httpBytes(raw)).errorStatus == status, "\(name) byte by byte")
    }

    @Test func bodyLimit() {
        var limits = HTTPParserLimits()
        limits.maxBodyBytes = 10
        #expect(httpParseOnce("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", limits: limits).errorStatus == 413)
        #expect(httpParseOnce("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n", limits: limits).errorStatus == nil)
        let chunked = "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n3\r\nabc\r\n0\r\n\r\n"
        #expect(httpParseOnce(chunked, limits: limits).errorStatus == 413)
    }

    @Test func exactlyAtLimitsIsAccepted() {
        let fields = String(repeating: "X-A: 1\r\n", count: 199)
        #expect(httpParseOnce("GET / HTTP/1.1\r\nHost: h\r\n" + fields + "\r\n").errorStatus == nil)
        // Request line of exactly 16 KiB including CRLF.
        let fixed = "GET / HTTP/1.1\r\n".utf8.count
        let line = "GET /" + String(repeating: "a", count: 16 * 1024 - fixed) + " HTTP/1.1\r\n"
        #expect(line.utf8.count == 16 * 1024)
        #expect(httpParseOnce(line + "Host: h\r\n\r\n").errorStatus == nil)
    }

    @Test func tokenBytesAreExactlyRFC9110TChar() {
        let tchar = Set(httpBytes("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        for b in 0...255 {
            #expect(HTTPRequestParser.isToken(UInt8(b)) == tchar.contains(UInt8(b)), "byte \(b)")
        }
    }

    @Test func framingFieldsAreRecognisedInAnyCaseAndOnlyByTheirExactName() throws {
        let mixed = httpParseOnce("PUT /m HTTP/1.1\r\nhOsT: h\r\nCONTENT-length: 2\r\neXpEcT: 100-Continue\r\n"
            + "connection: CLOSE\r\n\r\nok")
        let r = try #require(mixed.requests.first)
        #expect(r.framing == .length(2) && r.expectsContinue && !r.keepAlive && r.body == httpBytes("ok"))
        #expect(httpParseOnce("PUT / HTTP/1.1\r\nHost: h\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n")
            .requests.first?.framing == .chunked)
        // Names of the same length that are not the framing ones, and near misses, decide nothing.
        let lookalikes = httpParseOnce("GET / HTTP/1.1\r\nHost: h\r\nHosT-: x\r\nHOSU: x\r\nContent-Lengtx: 5\r\n"
            + "Content_Length: 5\r\nTransfer-Encodinf: gzip\r\nExpecT1: x\r\nConnectioN2: close\r\nXost: y\r\n\r\n")
        let l = try #require(lookalikes.requests.first)
        #expect(lookalikes.errorStatus == nil && l.framing == .none && l.keepAlive && l.headers.count == 9)
        #expect(httpParseOnce("GET / HTTP/1.1\r\nXost: h\r\n\r\n").errorStatus == 400)
    }

    /// Lines wholly in one input are parsed where they lie, lines cut by a read boundary from the parser's own
    /// buffer: the same request either way, wherever the cut falls.
    @Test func signedHeadParsesTheSameWhereverTheInputIsCut() throws {
        let raw = "GET /bucket/k%C3%A9y?x-id=GetObject HTTP/1.1\r\nHost: gw.local:8080\r\nAccept-Encoding: identity\r\n"
            + "x-amz-date: 20261129T120000Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 "
            + "Credential=AK/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            + "Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n\r\n"
        let whole = httpParseOnce(raw)
        let r = try #require(whole.requests.first)
        #expect(whole.errorStatus == nil && r.complete && r.headers.count == 5 && r.target == "/bucket/k%C3%A9y?x-id=GetObject")
        let b = httpBytes(raw)
        for cut in 1..<b.count {
            #expect(httpParseStream([Array(b[..<cut]), Array(b[cut...])]) == whole, "split at \(cut)")
        }
        #expect(httpParseStream([Array(b[..<40]), Array(b[40..<41]), Array(b[41...])]) == whole)
    }

    /// The word-at-a-time control scan against the byte rule, for every byte value at every offset of a word
    /// and either side of the word/tail boundary.
    @Test func controlScanMatchesTheByteRule() {
        func reference(_ b: [UInt8]) -> Bool { b.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F } }
        for length in [1, 7, 8, 9, 16, 23] {
            for position in 0..<length {
                for value in 0...255 {
                    var b = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    b[position] = UInt8(value)
                    let found = b.withUnsafeBytes { HTTPRequestParser.hasControl($0) }
                    #expect(found == reference(b), "length \(length), byte \(value) at \(position)")
                }
            }
        }
        // A tab first (allowed), then a control byte further on: still found.
        let tabbed = httpBytes("a\tbcdefghijklmnop") + [0x01]
        #expect(tabbed.withUnsafeBytes { HTTPRequestParser.hasControl($0) })
        #expect(httpBytes("a\tbcdefghijklmnop\u{80}\u{FF}").withUnsafeBytes { HTTPRequestParser.hasControl($0) } == false)
        #expect([UInt8]().withUnsafeBytes { HTTPRequestParser.hasControl($0) } == false)
    }

    @Test func nonASCIITargetMustBeUTF8() {
        #expect(httpParseOnce("GET /caf\u{E9} HTTP/1.1\r\nHost: h\r\n\r\n").requests.first?.target == "/caf\u{E9}")
        #expect(httpParseStream([httpBytes("GET /a") + [0xC3, 0x28] + httpBytes(" HTTP/1.1\r\nHost: h\r\n\r\n")]).errorStatus == 400)
    }

    @Test func parserRefusesUseAfterError() {
        var p = HTTPRequestParser()
        let bad = httpBytes("BAD\r\n")
        #expect(throws: HTTPParseError.self) { try bad.withUnsafeBytes { _ = try p.feed($0) } }
        let good = httpBytes("GET / HTTP/1.1\r\n")
        #expect(throws: HTTPParseError.self) { try good.withUnsafeBytes { _ = try p.feed($0) } }
    }
}
