import Synchronization
import Foundation
import Testing
import TestSupport
@testable import Shared

@Suite struct LoggerTests {
    @Test func writesOneJSONObjectPerLineWithRequiredFields() throws {
        let sink = LogSink(capturing: ())
        let logger = Logger(level: .info, sink: sink).with(["component": "test"])
        logger.info("hello \"world\"\n", ["status": .int(200), "ok": true, "bucket": "b"])
        let lines = sink.capturedLines
        #expect(lines.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(object["level"] as? String == "info")
        #expect(object["msg"] as? String == "hello \"world\"\n")
        #expect(object["status"] as? Int == 200)
        #expect(object["ok"] as? Bool == true)
        #expect(object["component"] as? String == "test")
        let time = try #require(object["time"] as? String)
        #expect(ISO8601DateFormatter.withFractionalSeconds.date(from: time) != nil)
    }

    @Test func dropsLinesBelowTheLevel() {
        let sink = LogSink(capturing: ())
        let logger = Logger(level: .warn, sink: sink)
        logger.debug("a")
        logger.info("b")
        logger.warn("c")
        logger.error("d")
        #expect(sink.capturedLines.count == 2)
    }

    @Test func escapesControlCharacters() throws {
        let quoted = JSON.quote("a\u{01}b\\c\t")
        #expect(quoted == "\"a\\u0001b\\\\c\\t\"")
        let decoded = try JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed) as? String
        #expect(decoded == "a\u{01}b\\c\t")
    }

    @Test func levelsParse() {
        #expect(LogLevel("DEBUG") == .debug)
        #expect(LogLevel("warning") == .warn)
        #expect(LogLevel("verbose") == nil)
    }
}

extension ISO8601DateFormatter {
    static var withFractionalSeconds: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }
}

@Suite struct MetricsTests {
    @Test func counterAndGaugeExposition() {
        let registry = MetricsRegistry()
        let requests = registry.counter("s3_gateway_requests_total", help: "Requests.", labels: ["method", "status"])
        let active = registry.gauge("s3_gateway_active_connections", help: "Open connections.")
        requests.inc(["GET", "200"])
        requests.inc(["GET", "200"])
        requests.inc(["PUT", "a\"b"])
        active.add(3)
        active.add(-1)
        let text = registry.exposition()
        #expect(text.contains("# TYPE s3_gateway_requests_total counter\n"))
        #expect(text.contains("s3_gateway_requests_total{method=\"GET\",status=\"200\"} 2\n"))
        #expect(text.contains("s3_gateway_requests_total{method=\"PUT\",status=\"a\\\"b\"} 1\n"))
        #expect(text.contains("s3_gateway_active_connections 2\n"))
    }

    /// A sampled gauge is read at each exposition, not when it is registered.
    @Test func aSampledGaugeIsReadAtEachExposition() {
        let registry = MetricsRegistry()
        final class Source: Sendable { let count = Atomic<Int>(0) }
        let source = Source()
        let gauge = registry.sampledGauge("s3_gateway_requests_in_progress", help: "Busy.") {
            Double(source.count.load(ordering: .relaxed))
        }
        source.count.store(7, ordering: .relaxed)
        #expect(registry.exposition().contains("# TYPE s3_gateway_requests_in_progress gauge\ns3_gateway_requests_in_progress 7\n"))
        source.count.store(2, ordering: .relaxed)
        #expect(registry.exposition().contains("s3_gateway_requests_in_progress 2\n"))
        #expect(gauge.value() == 2)
    }

    @Test func histogramBucketsAreCumulative() {
        let registry = MetricsRegistry()
        let h = registry.histogram("d_seconds", help: "D.", labels: ["op"], buckets: [0.1, 1])
        h.observe(0.05, ["put"])
        h.observe(0.5, ["put"])
        h.observe(5, ["put"])
        let text = registry.exposition()
        #expect(text.contains("d_seconds_bucket{op=\"put\",le=\"0.1\"} 1\n"))
        #expect(text.contains("d_seconds_bucket{op=\"put\",le=\"1\"} 2\n"))
        #expect(text.contains("d_seconds_bucket{op=\"put\",le=\"+Inf\"} 3\n"))
        #expect(text.contains("d_seconds_sum{op=\"put\"} 5.55\n"))
        #expect(text.contains("d_seconds_count{op=\"put\"} 3\n"))
    }

    @Test func seriesBeyondTheBoundFoldIntoOther() {
        let registry = MetricsRegistry()
        let c = registry.counter("c_total", help: "C.", labels: ["bucket"], maxSeries: 2)
        c.inc(["a"]); c.inc(["b"]); c.inc(["c"]); c.inc(["d"]); c.inc(["a"])
        #expect(c.value(["a"]) == 2)
        #expect(c.value(["_other"]) == 2)
        #expect(c.value(["c"]) == 0)
    }

    @Test func observationsFromManyThreadsAddUpAcrossShards() {
        let registry = MetricsRegistry()
        let c = registry.counter("t_total", help: "T.", labels: ["op"])
        let h = registry.histogram("t_seconds", help: "T.", labels: ["op"], buckets: [1, 2])
        let threads = 24, perThread = 2_000
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<perThread {
                c.inc([i % 2 == 0 ? "get" : "put"])
                h.observe(t % 2 == 0 ? 0.5 : 1.5, ["get"])
            }
        }
        #expect(c.value(["get"]) == Double(threads * perThread / 2))
        #expect(c.value(["put"]) == Double(threads * perThread / 2))
        #expect(h.count(["get"]) == UInt64(threads * perThread))
        let text = registry.exposition()
        #expect(text.contains("t_seconds_bucket{op=\"get\",le=\"1\"} \(threads / 2 * perThread)\n"))
        #expect(text.contains("t_total{op=\"put\"} \(threads * perThread / 2)\n"))
    }

    /// Each shard remembers the series it updated last; a mixed sequence of label sets (repeats, switches,
    /// new series inserted between repeats, sets folded into `_other`) must land on the same counts as a
    /// plain dictionary count with the same bound.
    @Test func lastSeriesMemoAgreesWithADictionaryCount() {
        let registry = MetricsRegistry()
        let c = registry.counter("m_total", help: "M.", labels: ["method", "bucket"], maxSeries: 6)
        let h = registry.histogram("m_seconds", help: "M.", labels: ["op"], buckets: [1], maxSeries: 3)
        var expected: [[String]: Double] = [:]
        var expectedHist: [[String]: UInt64] = [:]
        var seed: UInt64 = 0x5eed
        func next(_ n: Int) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(n))
        }
        for _ in 0..<3_000 {
            // Runs of one label set, then a switch; up to 9 distinct sets for a bound of 6.
            let labels = [["GET", "PUT", "HEAD"][next(3)], "b\(next(3))"]
            for _ in 0...next(3) {
                c.inc(labels)
                let key = expected[labels] != nil || expected.count < 6 ? labels : ["_other", "_other"]
                expected[key, default: 0] += 1
                let op = ["op\(next(5))"]
                h.observe(0.5, op)
                let hkey = expectedHist[op] != nil || expectedHist.count < 3 ? op : ["_other"]
                expectedHist[hkey, default: 0] += 1
            }
        }
        for (labels, count) in expected { #expect(c.value(labels) == count, "\(labels)") }
        for (labels, count) in expectedHist { #expect(h.count(labels) == count, "\(labels)") }
        let lines = registry.exposition().split(separator: "\n").filter { $0.hasPrefix("m_total{") }
        #expect(lines.count == expected.count)
    }

    /// The label forms without arrays (`inc(a, b, c)`, `inc(a)`, `observe(v, a)`), mixed with the array forms, land
    /// on the same series and counts as a plain dictionary count with the same bound (memo hits and misses, new
    /// series between repeats, folding into `_other`).
    @Test func inlineLabelFormsAgreeWithTheArrayForms() {
        let registry = MetricsRegistry()
        let c = registry.counter("i_total", help: "I.", labels: ["method", "bucket", "status"], maxSeries: 8)
        let one = registry.counter("i1_total", help: "I.", labels: ["result"], maxSeries: 3)
        let h = registry.histogram("i_seconds", help: "I.", labels: ["op"], buckets: [1], maxSeries: 3)
        var expected: [[String]: Double] = [:], expectedOne: [[String]: Double] = [:], expectedHist: [[String]: UInt64] = [:]
        var rng = SplitMix64(seed: 0x1abe1)
        func bounded<V>(_ labels: [String], _ seen: [[String]: V], _ bound: Int) -> [String] {
            seen[labels] != nil || seen.count < bound ? labels : labels.map { _ in "_other" }
        }
        for _ in 0..<3_000 {
            let labels = [["GET", "PUT"][Int.random(in: 0..<2, using: &rng)], "b\(Int.random(in: 0..<3, using: &rng))",
                          ["200", "404"][Int.random(in: 0..<2, using: &rng)]]
            let result = ["hit", "miss", "x", "y"][Int.random(in: 0..<4, using: &rng)]
            let op = "op\(Int.random(in: 0..<5, using: &rng))"
            for _ in 0...Int.random(in: 0..<3, using: &rng) {
                if Bool.random(using: &rng) { c.inc(labels[0], labels[1], labels[2]) } else { c.inc(labels) }
                expected[bounded(labels, expected, 8), default: 0] += 1
                if Bool.random(using: &rng) { one.inc(result) } else { one.inc([result]) }
                expectedOne[bounded([result], expectedOne, 3), default: 0] += 1
                if Bool.random(using: &rng) { h.observe(0.5, op) } else { h.observe(0.5, [op]) }
                expectedHist[bounded([op], expectedHist, 3), default: 0] += 1
            }
        }
        for (labels, count) in expected { #expect(c.value(labels) == count, "\(labels)") }
        for (labels, count) in expectedOne { #expect(one.value(labels) == count, "\(labels)") }
        for (labels, count) in expectedHist { #expect(h.count(labels) == count, "\(labels)") }
        #expect(registry.exposition().split(separator: "\n").filter { $0.hasPrefix("i_total{") }.count == expected.count)
    }

    @Test func theSeriesBoundHoldsAcrossThreads() {
        let registry = MetricsRegistry()
        let c = registry.counter("b_total", help: "B.", labels: ["bucket"], maxSeries: 5)
        DispatchQueue.concurrentPerform(iterations: 16) { t in
            for i in 0..<50 { c.inc(["b\(t)-\(i)"]) }
        }
        let lines = registry.exposition().split(separator: "\n").filter { $0.hasPrefix("b_total{") }
        #expect(lines.count == 6)  // five admitted label sets and `_other`
        #expect(c.value(["_other"]) == Double(16 * 50 - 5))
    }
}
