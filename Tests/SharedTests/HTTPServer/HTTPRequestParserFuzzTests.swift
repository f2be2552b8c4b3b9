import Testing
@testable import Shared

/// Deterministic PRNG so a failing case can be replayed from its seed.
struct HTTPFuzzRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct HTTPRequestParserFuzzTests {
    static let corpus: [String] = [
        "GET /b/k?x=1 HTTP/1.1\r\nHost: h\r\nX-Amz-Date: 20240101T000000Z\r\n\r\n",
        "PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\nhello world",
        "POST /b?delete HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nabcd\r\n3\r\nefg\r\n0\r\nT: v\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok",
    ]

    /// Bytes that matter to HTTP framing, so mutations hit interesting paths.
    static let interesting: [UInt8] = Array("\r\n\0 \t:;0123456789abcdefABCDEF,-/\u{7F}".utf8) + [0x80, 0xFF]

    static func mutate(_ input: [UInt8], _ rng: inout HTTPFuzzRNG) -> [UInt8] {
        var b = input
        let rounds = Int.random(in: 1...4, using: &rng)
        for _ in 0..<rounds {
            let pos = b.isEmpty ? 0 : Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0 where !b.isEmpty: b[pos] = UInt8.random(in: 0...255, using: &rng)
            case 1 where !b.isEmpty: b[pos] = interesting.randomElement(using: &rng)!
            case 2: b.insert(interesting.randomElement(using: &rng)!, at: pos)
            case 3 where !b.isEmpty: b.remove(at: pos)
            case 4 where !b.isEmpty:
                let len = Int.random(in: 1...min(32, b.count - pos), using: &rng)
                b.insert(contentsOf: b[pos..<(pos + len)], at: pos)
            case 5: b = Array(b[..<pos])
            default:
                let other = corpus.randomElement(using: &rng)!
                b += Array(other.utf8)
            }
        }
        return b
    }

    static func randomSplit(_ b: [UInt8], _ rng: inout HTTPFuzzRNG) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var i = 0
        while i < b.count {
            let n = Int.random(in: 1...max(1, min(b.count - i, 40)), using: &rng)
            pieces.append(Array(b[i..<(i + n)]))
            i += n
        }
        return pieces
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func mutatedRequestsParseTheSameHoweverSplit(seed: UInt64) {
        var rng = HTTPFuzzRNG(seed: seed)
        var limits = HTTPParserLimits()
        // Small limits so mutations reach them too.
        limits.maxRequestLineBytes = 128
        limits.maxHeaderBytes = 256
        limits.maxHeaderFields = 8
        limits.maxChunkLineBytes = 32
        limits.maxTrailerBytes = 64
        limits.maxBodyBytes = 1 << 20
        var accepted = 0, rejected = 0
        for _ in 0..<1500 {
            let input = Self.mutate(Array(Self.corpus.randomElement(using: &rng)!.utf8), &rng)
            let once = httpParseStream([input], limits: limits)
            let split = httpParseStream(Self.randomSplit(input, &rng), limits: limits)
            let single = httpParseByteByByte(input, limits: limits)
            let bounded = httpParseStream([input], limits: limits, maxBody: Int.random(in: 1...7, using: &rng))
            #expect(once == split, "split differs for \(input)")
            #expect(once == single, "byte-by-byte differs for \(input)")
            #expect(once == bounded, "maxBody differs for \(input)")
            if let status = once.errorStatus {
                rejected += 1
                #expect([400, 413, 414, 431, 501, 505].contains(status))
            } else {
                accepted += 1
            }
            for r in once.requests {
                #expect(!r.method.isEmpty && r.method.utf8.allSatisfy(HTTPRequestParser.isToken))
                #expect(!r.target.isEmpty && !r.target.contains(" "))
                #expect(r.headers.count <= limits.maxHeaderFields)
                if r.complete, case .length(let n) = r.framing { #expect(Int64(r.body.count) == n) }
                if !r.complete, case .length(let n) = r.framing { #expect(Int64(r.body.count) < n) }
                if r.framing == .none { #expect(r.body.isEmpty) }
            }
        }
        // The mutator must exercise both sides or the test proves little.
        #expect(accepted > 100 && rejected > 100, "accepted \(accepted), rejected \(rejected)")
    }
}
