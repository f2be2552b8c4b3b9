import Foundation
import Synchronization

/// A set of metric families rendered in the Prometheus text format (0.0.4).
public final class MetricsRegistry: Sendable {
    private let families: Mutex<[any MetricFamily]>

    public init() { families = Mutex([]) }

    public func counter(_ name: String, help: String, labels: [String] = [], maxSeries: Int = 10_000) -> Counter {
        register(Counter(name: name, help: help, labelNames: labels, maxSeries: maxSeries))
    }

    public func gauge(_ name: String, help: String, labels: [String] = [], maxSeries: Int = 10_000) -> Gauge {
        register(Gauge(name: name, help: help, labelNames: labels, maxSeries: maxSeries))
    }

    public func histogram(_ name: String, help: String, labels: [String] = [],
                          buckets: [Double] = Histogram.defaultBuckets, maxSeries: Int = 10_000) -> Histogram {
        register(Histogram(name: name, help: help, labelNames: labels, buckets: buckets, maxSeries: maxSeries))
    }

    /// A gauge whose value `sample` reads when the registry is rendered: a count another component keeps
    /// anyway (the server's busy worker threads), so the request path updates nothing for it.
    @discardableResult
    public func sampledGauge(_ name: String, help: String, sample: @escaping @Sendable () -> Double) -> SampledGauge {
        register(SampledGauge(name: name, help: help, sample: sample))
    }

    private func register<F: MetricFamily>(_ family: F) -> F {
        families.withLock { list in
            precondition(!list.contains { $0.name == family.name }, "metric \(family.name) registered twice")
            list.append(family)
        }
        return family
    }

    /// The text exposition of every family, in registration order.
    public func exposition() -> String {
        var out = ""
        for family in families.withLock({ $0 }) { family.render(into: &out) }
        return out
    }

    /// Content type of `exposition()` for the `/metrics` response.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

protocol MetricFamily: Sendable {
    var name: String { get }
    func render(into out: inout String)
}

/// Label values beyond `maxSeries` distinct sets are folded into one series
/// whose values are all `_other`, so client-chosen names (buckets) cannot grow
/// memory without bound.
private func boundedKey(_ values: [String], count: Int, existing: Bool, maxSeries: Int) -> [String] {
    if existing || count < maxSeries { return values }
    return values.map { _ in "_other" }
}

private func renderLabels(_ names: [String], _ values: [String], extra: (String, String)? = nil) -> String {
    var pairs = zip(names, values).map { ($0.0, $0.1) }
    if let extra { pairs.append(extra) }
    guard !pairs.isEmpty else { return "" }
    return "{" + pairs.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
}

private func escapeLabelValue(_ value: String) -> String {
    var out = ""
    for c in value {
        switch c {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        default: out.append(c)
        }
    }
    return out
}

/// HELP, TYPE and one sample line per series, series sorted by label values for stable output.
private func renderSamples(name: String, help: String, type: String, labelNames: [String],
                           series: [[String]: Double], into out: inout String) {
    out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    for (labels, value) in series.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
        out += "\(name)\(renderLabels(labelNames, labels)) \(formatValue(value))\n"
    }
}

private func formatValue(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return String(v)
}

/// A monotonically increasing count.
///
/// Observations go to one of `MetricShards.count` shards chosen by the calling thread, so request threads
/// do not queue on one lock per observation; reads and the exposition add the shards up.
public final class Counter: MetricFamily {
    let name: String
    let help: String
    let labelNames: [String]
    private let shards: MetricShards<Double>

    init(name: String, help: String, labelNames: [String], maxSeries: Int) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
        self.shards = MetricShards(maxSeries: maxSeries)
    }

    public func inc(_ labels: [String] = [], by amount: Double = 1) {
        precondition(labels.count == labelNames.count, "\(name): expected labels \(labelNames)")
        guard amount >= 0 else { return }
        shards.update(labels, initial: 0) { $0 += amount }
    }

    /// `inc([value])` without building the array when the calling thread's shard updated this series last.
    public func inc(_ value: String, by amount: Double = 1) {
        inc(InlineLabels(value), by: amount)
    }

    /// `inc([a, b, c])` without building the array when the calling thread's shard updated this series last
    /// (the per-request counter: one array allocation per request otherwise, issue 12).
    public func inc(_ a: String, _ b: String, _ c: String, by amount: Double = 1) {
        inc(InlineLabels(a, b, c), by: amount)
    }

    private func inc(_ labels: InlineLabels, by amount: Double) {
        precondition(labels.count == labelNames.count, "\(name): expected labels \(labelNames)")
        guard amount >= 0 else { return }
        shards.update(labels, initial: 0) { $0 += amount }
    }

    public func value(_ labels: [String] = []) -> Double { shards.merged(+)[labels] ?? 0 }

    func render(into out: inout String) {
        renderSamples(name: name, help: help, type: "counter", labelNames: labelNames,
                      series: shards.merged(+), into: &out)
    }
}

/// A value that goes up and down.
public final class Gauge: MetricFamily {
    let name: String
    let help: String
    let labelNames: [String]
    let maxSeries: Int
    private let series: Mutex<[[String]: Double]>

    init(name: String, help: String, labelNames: [String], maxSeries: Int) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
        self.maxSeries = maxSeries
        // An unlabelled gauge is exposed from the start, at zero.
        self.series = Mutex(labelNames.isEmpty ? [[]: 0] : [:])
    }

    public func set(_ value: Double, _ labels: [String] = []) {
        series.withLock { s in
            let key = boundedKey(labels, count: s.count, existing: s[labels] != nil, maxSeries: maxSeries)
            s[key] = value
        }
    }

    public func add(_ delta: Double, _ labels: [String] = []) {
        series.withLock { s in
            let key = boundedKey(labels, count: s.count, existing: s[labels] != nil, maxSeries: maxSeries)
            s[key, default: 0] += delta
        }
    }

    public func value(_ labels: [String] = []) -> Double { series.withLock { $0[labels] ?? 0 } }

    /// Stops exposing the series of `labels` (the object it described is gone).
    public func remove(_ labels: [String]) {
        series.withLock { _ = $0.removeValue(forKey: labels) }
    }

    func render(into out: inout String) {
        renderSamples(name: name, help: help, type: "gauge", labelNames: labelNames,
                      series: series.withLock { $0 }, into: &out)
    }
}

/// A gauge without labels whose value is read at each exposition (`MetricsRegistry.sampledGauge`).
public final class SampledGauge: MetricFamily {
    let name: String
    let help: String
    private let sample: @Sendable () -> Double

    init(name: String, help: String, sample: @escaping @Sendable () -> Double) {
        self.name = name
        self.help = help
        self.sample = sample
    }

    public func value() -> Double { sample() }

    func render(into out: inout String) {
        renderSamples(name: name, help: help, type: "gauge", labelNames: [], series: [[]: sample()], into: &out)
    }
}

/// A distribution of observations in cumulative buckets (sharded by thread like `Counter`).
public final class Histogram: MetricFamily {
    public static let defaultBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    struct Series {
        var counts: [UInt64]
        var sum: Double = 0
        var count: UInt64 = 0

        mutating func record(_ value: Double, bucket: Int) {
            counts[bucket] += 1
            sum += value
            count += 1
        }

        static func + (a: Series, b: Series) -> Series {
            Series(counts: zip(a.counts, b.counts).map { $0 + $1 }, sum: a.sum + b.sum, count: a.count + b.count)
        }
    }

    let name: String
    let help: String
    let labelNames: [String]
    let buckets: [Double]
    private let shards: MetricShards<Series>

    init(name: String, help: String, labelNames: [String], buckets: [Double], maxSeries: Int) {
        precondition(buckets == buckets.sorted() && !buckets.isEmpty, "\(name): buckets must be sorted")
        self.name = name
        self.help = help
        self.labelNames = labelNames
        self.buckets = buckets
        self.shards = MetricShards(maxSeries: maxSeries)
    }

    public func observe(_ value: Double, _ labels: [String] = []) {
        let bucket = bucketIndex(value)
        shards.update(labels, initial: emptySeries) { $0.record(value, bucket: bucket) }
    }

    /// `observe(value, [label])` without building the array when the calling thread's shard updated this series
    /// last (the per-request duration histogram, issue 12).
    public func observe(_ value: Double, _ label: String) {
        precondition(labelNames.count == 1, "\(name): expected labels \(labelNames)")
        let bucket = bucketIndex(value)
        shards.update(InlineLabels(label), initial: emptySeries) { $0.record(value, bucket: bucket) }
    }

    /// The bucket `value` falls in (`buckets.count`: above the largest bound, the `+Inf` bucket only).
    private func bucketIndex(_ value: Double) -> Int { buckets.firstIndex { value <= $0 } ?? buckets.count }

    /// A new series' starting point (made only when a shard first sees a label set).
    private var emptySeries: Series { Series(counts: Array(repeating: 0, count: buckets.count + 1)) }

    /// Observes the seconds elapsed since `start`.
    public func observe(since start: ContinuousClock.Instant, _ labels: [String] = []) {
        let elapsed = ContinuousClock.now - start
        let (s, atto) = elapsed.components
        observe(Double(s) + Double(atto) / 1e18, labels)
    }

    public func count(_ labels: [String] = []) -> UInt64 { shards.merged(+)[labels]?.count ?? 0 }

    func render(into out: inout String) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (labels, entry) in shards.merged(+).sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            var cumulative: UInt64 = 0
            for (i, bound) in buckets.enumerated() {
                cumulative += entry.counts[i]
                out += "\(name)_bucket\(renderLabels(labelNames, labels, extra: ("le", formatValue(bound)))) \(cumulative)\n"
            }
            out += "\(name)_bucket\(renderLabels(labelNames, labels, extra: ("le", "+Inf"))) \(entry.count)\n"
            out += "\(name)_sum\(renderLabels(labelNames, labels)) \(formatValue(entry.sum))\n"
            out += "\(name)_count\(renderLabels(labelNames, labels)) \(entry.count)\n"
        }
    }
}

/// One or three label values passed without an array (the request path's metrics: a `[String]` per call was an
/// allocation per request, issue 12). `matches` compares with a stored label set; `array` builds one.
struct InlineLabels {
    let count: Int
    private let a: String, b: String, c: String

    init(_ a: String) {
        (count, self.a, b, c) = (1, a, "", "")
    }

    init(_ a: String, _ b: String, _ c: String) {
        (count, self.a, self.b, self.c) = (3, a, b, c)
    }

    func matches(_ labels: [String]) -> Bool {
        guard labels.count == count else { return false }
        return count == 1 ? labels[0] == a : labels[0] == a && labels[1] == b && labels[2] == c
    }

    var array: [String] { count == 1 ? [a] : [a, b, c] }
}

/// Per-thread shards of one metric family's series. A thread updates the shard its id hashes to, under that
/// shard's own lock, which in practice no other thread holds; the family-wide set of label values is consulted
/// only the first time a shard sees a label set (to keep the `maxSeries` bound across shards).
final class MetricShards<Value: Sendable>: Sendable {
    static var count: Int { 16 }

    private final class Shard: Sendable {
        let series = Mutex<Series>(Series())
    }

    /// One shard's series, and the one this shard updated last: a request thread usually updates the same
    /// series again (same method, bucket, status), and comparing a few short label strings costs a fraction of
    /// hashing them (issue 12: ≈ 600 instructions per observation went into the dictionary lookup).
    private struct Series: Sendable {
        var values: [[String]: Value] = [:]
        /// Labels of the last series updated here, stored under exactly these labels (never a folded `_other`,
        /// so over-bound label sets keep going through the family-wide check), and its index in `values`.
        var last: (labels: [String], index: Dictionary<[String], Value>.Index)?
    }

    private let shards: [Shard]
    private let known: Mutex<Set<[String]>>
    private let maxSeries: Int

    init(maxSeries: Int) {
        self.maxSeries = maxSeries
        self.shards = (0..<Self.count).map { _ in Shard() }
        self.known = Mutex([])
    }

    func update(_ labels: [String], initial: @autoclosure () -> Value, _ body: (inout Value) -> Void) {
        update(matching: { $0 == labels }, labels: { labels }, initial: initial(), body)
    }

    /// `update` for label values given without an array: the array is built only when the memo misses.
    func update(_ labels: InlineLabels, initial: @autoclosure () -> Value, _ body: (inout Value) -> Void) {
        // Closure literals (not the method reference `labels.matches`, a partial application whose context went
        // on the heap: an allocation traded for the array's).
        update(matching: { labels.matches($0) }, labels: { labels.array }, initial: initial(), body)
    }

    /// Updates the series whose labels `matches` accepts (checked against the memo) and `labels` builds.
    private func update(matching matches: ([String]) -> Bool, labels makeLabels: () -> [String],
                        initial: @autoclosure () -> Value, _ body: (inout Value) -> Void) {
        let shard = shards[currentThreadShard(Self.count)]
        var built: [String]?
        let done = shard.series.withLock { s -> Bool in
            // The series updated last: no hashing. An index stays valid until the next insertion, which clears it.
            if let last = s.last, matches(last.labels) {
                body(&s.values.values[last.index])
                return true
            }
            // One hash of the labels for a known series (a lookup, then the update in place through its index).
            let labels = makeLabels()
            built = labels
            guard let i = s.values.index(forKey: labels) else { return false }
            body(&s.values.values[i])
            s.last = (labels, i)
            return true
        }
        if done { return }
        let labels = built!
        // First time this shard sees these labels: admit them family-wide (or fold into `_other`).
        let key = known.withLock { k -> [String] in
            if k.contains(labels) { return labels }
            let folded = boundedKey(labels, count: k.count, existing: false, maxSeries: maxSeries)
            k.insert(folded)
            return folded
        }
        shard.series.withLock { s in
            s.last = nil
            body(&s.values[key, default: initial()])
        }
    }

    /// Every series with its shards combined by `combine`.
    func merged(_ combine: (Value, Value) -> Value) -> [[String]: Value] {
        var out: [[String]: Value] = [:]
        for shard in shards {
            for (labels, value) in shard.series.withLock({ $0.values }) {
                out[labels] = out[labels].map { combine($0, value) } ?? value
            }
        }
        return out
    }
}

/// The shard (0..<count, count a power of two) of the calling thread: a multiplicative hash of its pthread id,
/// whose low bits are alignment and the same for every thread.
@inline(__always)
func currentThreadShard(_ count: Int) -> Int {
    let id = UInt64(pthread_self())
    return Int(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> 60) & (count - 1)
}
