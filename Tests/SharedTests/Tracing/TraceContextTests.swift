@testable import Shared
import Testing

struct TraceContextTests {
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func parsesTheSpecificationExample() throws {
        let c = try #require(SpanContext.parse(traceparent: valid, tracestate: "congo=t61rcWkgMzE"))
        #expect(c.traceID.description == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(c.spanID.description == "00f067aa0ba902b7")
        #expect(c.sampled && c.isRemote)
        #expect(c.traceState == "congo=t61rcWkgMzE")
        #expect(c.traceparent == valid)
    }

    @Test(arguments: [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",  // not sampled: still a valid parent
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future-field",  // a later version may add fields
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
    ])
    func acceptsValidHeaders(_ header: String) {
        #expect(SpanContext.parse(traceparent: header) != nil)
    }

    @Test(arguments: [
        "",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // version 00 has exactly 55 characters
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // a later field must follow a dash
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  // misplaced dash
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    ])
    func refusesInvalidHeaders(_ header: String) {
        #expect(SpanContext.parse(traceparent: header) == nil)
    }

    @Test func dropsMalformedTraceState() {
        #expect(SpanContext.parse(traceparent: valid, tracestate: "no-equals-sign")?.traceState == nil)
        #expect(SpanContext.parse(traceparent: valid, tracestate: "a=1\u{7F}")?.traceState == nil)
        let tooMany = (0..<33).map { "k\($0)=v" }.joined(separator: ",")
        #expect(SpanContext.parse(traceparent: valid, tracestate: tooMany)?.traceState == nil)
        #expect(SpanContext.parse(traceparent: valid, tracestate: "a=1,b=2")?.traceState == "a=1,b=2")
    }

    @Test func idsFormatAsLowerCaseHexAndBigEndianBytes() {
        let t = TraceID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10)
        #expect(t.description == "0102030405060708090a0b0c0d0e0f10")
        #expect(t.bytes == Array(1...16))
        #expect(SpanID(0xAB).description == "00000000000000ab")
        #expect(!TraceID(high: 0, low: 0).isValid && !SpanID(0).isValid)
    }
}

struct SamplerTests {
    @Test func parsesTheSpecificationNames() throws {
        #expect(try Sampler.parse(name: nil, argument: nil).get() == .parentBased(root: .alwaysOn))
        #expect(try Sampler.parse(name: "always_off", argument: nil).get() == .alwaysOff)
        #expect(try Sampler.parse(name: "traceidratio", argument: "0.25").get() == .traceIDRatio(0.25))
        #expect(try Sampler.parse(name: "parentbased_traceidratio", argument: nil).get()
                == .parentBased(root: .traceIDRatio(1)))
        #expect(try Sampler.parse(name: "PARENTBASED_ALWAYS_OFF", argument: nil).get() == .parentBased(root: .alwaysOff))
    }

    /// `names` (what the operator's `spec.tracing.sampler` admits) is exactly what `parse` accepts: each parses,
    /// with its ratio where it takes one, and the refusal of anything else lists them all.
    @Test func namesAreTheAcceptedSamplers() throws {
        #expect(Set(Sampler.names).count == 6)
        for name in Sampler.names {
            #expect(throws: Never.self, "\(name)") { try Sampler.parse(name: name, argument: "0.5").get() }
        }
        #expect(try Sampler.parse(name: Sampler.names[0], argument: nil).get() == Sampler.parse(name: nil, argument: nil).get())
        guard case .failure(let e) = Sampler.parse(name: "always", argument: nil) else { Issue.record(); return }
        for name in Sampler.names { #expect(e.message.contains(name), "\(name) missing from: \(e.message)") }
    }

    @Test func refusesUnknownSamplersAndRatiosOutOfRange() {
        guard case .failure(let e) = Sampler.parse(name: "sometimes", argument: nil) else { Issue.record(); return }
        #expect(e.setting == "OTEL_TRACES_SAMPLER")
        guard case .failure(let r) = Sampler.parse(name: "traceidratio", argument: "1.5") else { Issue.record(); return }
        #expect(r.setting == "OTEL_TRACES_SAMPLER_ARG")
    }

    @Test func ratioSamplingIsDeterministicAndProportional() {
        var g = SplitMix64(seed: 42)
        let ids = (0..<20_000).map { _ in TraceID.random(using: &g) }
        let sampler = Sampler.traceIDRatio(0.25)
        let kept = ids.filter { sampler.shouldSample(parent: nil, traceID: $0) }
        #expect(abs(kept.count - 5_000) < 400)
        // The decision depends on the trace id only: every service with the same ratio keeps the same traces.
        #expect(ids.allSatisfy { sampler.shouldSample(parent: nil, traceID: $0) == sampler.shouldSample(parent: nil, traceID: $0) })
        let half = Sampler.traceIDRatio(0.5)
        #expect(kept.allSatisfy { half.shouldSample(parent: nil, traceID: $0) }, "a higher ratio keeps a superset")
        #expect(!Sampler.traceIDRatio(0).shouldSample(parent: nil, traceID: ids[0]))
        #expect(Sampler.traceIDRatio(1).shouldSample(parent: nil, traceID: ids[0]))
    }

    @Test func parentBasedFollowsTheParent() {
        let id = TraceID(high: 1, low: 1)
        let sampledParent = SpanContext(traceID: id, spanID: SpanID(1), sampled: true, isRemote: true)
        var unsampled = sampledParent
        unsampled.sampled = false
        let sampler = Sampler.parentBased(root: .alwaysOff)
        #expect(sampler.shouldSample(parent: sampledParent, traceID: id))
        #expect(!sampler.shouldSample(parent: unsampled, traceID: id))
        #expect(!sampler.shouldSample(parent: nil, traceID: id))
        #expect(!Sampler.parentBased(root: .alwaysOn).shouldSample(parent: unsampled, traceID: id))
    }
}
