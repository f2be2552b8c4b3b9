// libFuzzer entry for HTTPRequestParser, compiled together with the parser sources
// by fuzz/run-http-parser.sh (not part of the Swift package).
//
// Input byte 0 picks a piece size and a maxBody; the rest is the request stream.
// Invariants: no crash, progress on every step, and the same outcome whether
// the stream is fed in one piece or in small pieces (lines parsed in place or from
// the parser's buffer); the word-at-a-time control scan matches the byte rule.

struct Outcome: Equatable {
    var events: [String] = []
    var body: [UInt8] = []
    var error: Int?
}

func run(_ data: [UInt8], pieceSize: Int, maxBody: Int) -> Outcome {
    var limits = HTTPParserLimits()
    limits.maxRequestLineBytes = 256
    limits.maxHeaderBytes = 1024
    limits.maxHeaderFields = 16
    limits.maxChunkLineBytes = 64
    limits.maxTrailerBytes = 256
    limits.maxBodyBytes = 1 << 16
    var parser = HTTPRequestParser(limits: limits)
    var out = Outcome()
    var pending: [UInt8] = []
    var offset = 0
    var steps = 0
    while offset < data.count {
        let end = min(data.count, offset + pieceSize)
        pending += data[offset..<end]
        offset = end
        while true {
            steps += 1
            if steps > 10 * (data.count + 10) { fatalError("no progress") }
            let r: (consumed: Int, event: HTTPParserEvent)
            do {
                r = try pending.withUnsafeBytes { try parser.feed($0, maxBody: maxBody) }
            } catch let e as HTTPParseError {
                if ![400, 413, 414, 431, 501, 505].contains(e.status) { fatalError("bad status \(e.status)") }
                out.error = e.status
                return out
            } catch {
                fatalError("untyped error")
            }
            if r.consumed > pending.count { fatalError("over-consumed") }
            switch r.event {
            case .needMore:
                if r.consumed != pending.count { fatalError("needMore left bytes") }
                pending.removeAll()
            case .head(let h):
                out.events.append("head \(h.head.method) \(h.head.target) \(h.head.headers.count) \(h.framing)")
                pending.removeFirst(r.consumed)
            case .body(let range):
                if range.upperBound != r.consumed || range.count > maxBody || range.isEmpty { fatalError("bad range") }
                out.body += pending[range]
                pending.removeFirst(r.consumed)
            case .end:
                out.events.append("end")
                pending.removeFirst(r.consumed)
                parser.reset()
            }
            if case .needMore = r.event { break }
        }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
    guard count > 0 else { return 0 }
    let control = bytes[0]
    let data = Array(UnsafeBufferPointer(start: bytes + 1, count: count - 1))
    let whole = run(data, pieceSize: max(1, data.count), maxBody: Int.max)
    let split = run(data, pieceSize: Int(control & 0x0F) + 1, maxBody: Int(control >> 4) + 1)
    if whole != split { fatalError("split changes the outcome") }
    // The parser's word-at-a-time control scan agrees with the byte rule on any bytes.
    let control8 = data.withUnsafeBytes { HTTPRequestParser.hasControl($0) }
    if control8 != data.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) { fatalError("control scan disagrees") }
    return 0
}
