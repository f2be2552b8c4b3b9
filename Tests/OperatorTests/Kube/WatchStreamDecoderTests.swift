import Testing
@testable import Operator

@Suite struct WatchStreamDecoderTests {
    static let stream = """
        {"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"11"},"data":{"k":"v\\nw"}}}
        {"type":"MODIFIED","object":{"kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"12"},"n":12345678901234}}

        {"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"13"}}}
        {"type":"DELETED","object":{"kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"14"}}}
        {"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}

        """

    static func decodeAll(_ chunks: [[UInt8]]) throws -> [WatchEvent] {
        var d = WatchStreamDecoder()
        var events: [WatchEvent] = []
        for c in chunks { events += try d.feed(c) }
        events += try d.finish()
        return events
    }

    @Test func decodesEveryEventType() throws {
        let events = try Self.decodeAll([Array(Self.stream.utf8)])
        #expect(events.count == 5)
        guard case .added(let a) = events[0] else { Issue.record("not ADDED: \(events[0])"); return }
        #expect(a.name == "a")
        #expect(a[path: "data", "k"]?.string == "v\nw")
        guard case .modified(let m) = events[1] else { Issue.record("not MODIFIED"); return }
        #expect(m["n"] == .integer(12_345_678_901_234))
        #expect(events[2] == .bookmark(resourceVersion: "13"))
        guard case .deleted(let d) = events[3] else { Issue.record("not DELETED"); return }
        #expect(d.resourceVersion == "14")
        guard case .error(let s) = events[4] else { Issue.record("not ERROR"); return }
        #expect(s["code"]?.int == 410)
        #expect(KubeStatus.error(fromStatus: s) == .gone("too old"))
    }

    @Test func everySplitPointGivesTheSameEvents() throws {
        let bytes = Array(Self.stream.utf8)
        let whole = try Self.decodeAll([bytes])
        for cut in 0...bytes.count {
            let split = try Self.decodeAll([Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(split == whole, "split at \(cut)")
        }
        // One byte at a time.
        #expect(try Self.decodeAll(bytes.map { [$0] }) == whole)
    }

    @Test func trailingEventWithoutNewlineIsDeliveredAtFinish() throws {
        var d = WatchStreamDecoder()
        let line = #"{"type":"ADDED","object":{"metadata":{"name":"x"}}}"#
        #expect(try d.feed(Array(line.utf8)).isEmpty)
        #expect(d.pendingByteCount == line.utf8.count)
        let tail = try d.finish()
        #expect(tail.count == 1)
    }

    @Test func overlongLineIsAnError() throws {
        var d = WatchStreamDecoder(maxLineLength: 64)
        let ok = #"{"type":"ADDED","object":{"a":1}}"# + "\n"
        #expect(try d.feed(Array(ok.utf8)).count == 1)
        #expect(throws: KubeError.self) { try d.feed([UInt8](repeating: UInt8(ascii: " "), count: 65)) }
        #expect(d.failed)
        // Also when the long line does end in one chunk.
        var d2 = WatchStreamDecoder(maxLineLength: 16)
        #expect(throws: KubeError.self) { try d2.feed(Array((ok).utf8)) }
    }

    @Test(arguments: [
        "not json\n",
        #"{"object":{}}"# + "\n",
        #"{"type":"ADDED"}"# + "\n",
        #"{"type":"ADDED","object":5}"# + "\n",
        #"{"type":"WHATEVER","object":{}}"# + "\n",
        #"{"type":"BOOKMARK","object":{"metadata":{}}}"# + "\n",
        #"[1,2]"# + "\n",
    ])
    func malformedLinesAreErrors(_ line: String) {
        var d = WatchStreamDecoder()
        #expect(throws: KubeError.self) { try d.feed(Array(line.utf8)) }
    }

    /// Seeded mutation fuzz: random byte flips, insertions, deletions and chunkings never crash, never exceed the
    /// line bound, and a decoder that reported failure stays failed.
    @Test func randomizedMutationsNeverCrash() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        let base = Array(Self.stream.utf8)
        let alphabet: [UInt8] = Array("{}[]\":,\n\\ 0123456789abcdefnulltrueADDED".utf8) + [0, 0xFF, 0xC3]
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let op = Int.random(in: 0..<3, using: &rng)
                let i = Int.random(in: 0..<max(bytes.count, 1), using: &rng)
                switch op {
                case 0 where !bytes.isEmpty: bytes[i] = alphabet.randomElement(using: &rng)!
                case 1: bytes.insert(alphabet.randomElement(using: &rng)!, at: min(i, bytes.count))
                default: if !bytes.isEmpty { bytes.remove(at: i) }
                }
            }
            var d = WatchStreamDecoder(maxLineLength: 200)
            var rest = bytes[...]
            var failed = false
            while !rest.isEmpty {
                let n = Int.random(in: 1...max(1, rest.count), using: &rng)
                do {
                    _ = try d.feed(rest.prefix(n))
                    #expect(d.pendingByteCount <= 200)
                } catch {
                    failed = true
                    break
                }
                rest = rest.dropFirst(n)
            }
            if failed {
                #expect(d.failed)
                #expect(throws: KubeError.self) { try d.feed([UInt8(ascii: "\n")]) }
            } else {
                _ = try? d.finish()
            }
        }
    }
}
