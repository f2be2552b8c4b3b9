import Foundation
@testable import Shared
import Synchronization
import Testing

/// Records batches; `fail` makes exports fail, `gate` holds the exporter thread inside export().
final class RecordingExporter: SpanExporter, Sendable {
    let batches = Mutex<[[SpanData]]>([])
    let fail: Bool
    let gate: DispatchSemaphore?
    let entered = DispatchSemaphore(value: 0)

    init(fail: Bool = false, gate: DispatchSemaphore? = nil) {
        self.fail = fail
        self.gate = gate
    }

    func export(_ spans: [SpanData]) -> Bool {
        entered.signal()
        gate?.wait()
        batches.withLock { $0.append(spans) }
        return !fail
    }
}

struct BatchSpanProcessorTests {
    func span(_ n: Int) -> SpanData {
        SpanData(name: "s\(n)", kind: .internal,
                 context: SpanContext(traceID: TraceID(high: 1, low: UInt64(n + 1)), spanID: SpanID(UInt64(n + 1)), sampled: true),
                 parentSpanID: nil, parentIsRemote: false, startNanos: 1, endNanos: 2, attributes: [], status: .unset)
    }

    @Test func fullBatchIsExportedWithoutWaitingForTheDelay() {
        let exporter = RecordingExporter()
        let registry = MetricsRegistry()
        let p = BatchSpanProcessor(exporter: exporter, metrics: TracingMetrics(registry: registry), maxQueueSize: 100,
                                   maxBatchSize: 4, scheduleDelay: .seconds(3600))
        for i in 0..<4 { p.onEnd(span(i)) }
        #expect(exporter.entered.wait(timeout: .now() + 10) == .success)
        p.shutdown(timeout: .seconds(10))
        #expect(exporter.batches.withLock { $0.map { $0.map(\.name) } } == [["s0", "s1", "s2", "s3"]])
        #expect(registry.exposition().contains("tracing_spans_exported_total 4"))
    }

    @Test func fullQueueDropsAndCountsInsteadOfBlocking() {
        let gate = DispatchSemaphore(value: 0)
        let exporter = RecordingExporter(gate: gate)
        let registry = MetricsRegistry()
        let p = BatchSpanProcessor(exporter: exporter, metrics: TracingMetrics(registry: registry), maxQueueSize: 3,
                                   maxBatchSize: 3, scheduleDelay: .seconds(3600))
        for i in 0..<3 { p.onEnd(span(i)) }          // a full batch: the exporter takes it and blocks in export()
        #expect(exporter.entered.wait(timeout: .now() + 10) == .success)
        for i in 3..<8 { p.onEnd(span(i)) }          // 3 fit in the queue, 2 are dropped
        gate.signal()
        gate.signal()
        p.shutdown(timeout: .seconds(10))
        #expect(exporter.batches.withLock { $0.flatMap { $0.map(\.name) } } == ["s0", "s1", "s2", "s3", "s4", "s5"])
        #expect(registry.exposition().contains("tracing_spans_dropped_total{reason=\"queue_full\"} 2"))
    }

    @Test func shutdownFlushesAPartialBatchAndFailuresAreCounted() {
        let exporter = RecordingExporter(fail: true)
        let registry = MetricsRegistry()
        let p = BatchSpanProcessor(exporter: exporter, metrics: TracingMetrics(registry: registry), maxQueueSize: 10,
                                   maxBatchSize: 10, scheduleDelay: .seconds(3600))
        p.onEnd(span(0))
        p.onEnd(span(1))
        p.shutdown(timeout: .seconds(10))
        #expect(exporter.batches.withLock { $0.count } == 1)
        #expect(registry.exposition().contains("tracing_spans_dropped_total{reason=\"export_failed\"} 2"))
        p.onEnd(span(2))  // after shutdown: dropped, never queued
        #expect(registry.exposition().contains("tracing_spans_dropped_total{reason=\"queue_full\"} 1"))
    }
}

struct TracerTests {
    let remote = SpanContext.parse(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                   tracestate: "k=v")!

    @Test func disabledTracerPassesTheClientsContextOn() {
        let span = Tracer.disabled.startSpan("request", kind: .server, parent: remote)
        #expect(!span.isRecording)
        #expect(span.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        #expect(Tracer.disabled.startSpan("request", parent: nil).traceparent == nil)
    }

    @Test func childrenShareTheTraceAndRecordTheirParent() {
        let exporter = RecordingExporter()
        let tracer = Tracer(sampler: .parentBased(root: .alwaysOn),
                            processor: BatchSpanProcessor(exporter: exporter, metrics: TracingMetrics(registry: MetricsRegistry()),
                                                          maxQueueSize: 10, maxBatchSize: 10, scheduleDelay: .seconds(3600)))
        let server = tracer.startSpan("GetObject", kind: .server, parent: remote, attributes: [("a", 1)])
        let child = tracer.startSpan("backend", kind: .client, childOf: server)
        #expect(server.context.traceID == remote.traceID && server.context.spanID != remote.spanID)
        #expect(child.context.traceID == remote.traceID)
        #expect(server.context.traceState == "k=v")
        child.setStatus(.error("refused"))
        child.end()
        server.setAttribute("a", 2)
        server.end()
        server.end()  // a second end does nothing
        tracer.shutdown(timeout: .seconds(10))
        let spans = exporter.batches.withLock { $0.flatMap { $0 } }
        #expect(spans.map(\.name) == ["backend", "GetObject"])
        #expect(spans[0].parentSpanID == server.context.spanID && !spans[0].parentIsRemote)
        #expect(spans[1].parentSpanID == remote.spanID && spans[1].parentIsRemote)
        #expect(spans[0].status == .error("refused"))
        #expect(spans[1].attributes.count == 1 && spans[1].attributes[0].1 == .int(2))
    }

    @Test func unsampledParentPropagatesWithoutRecording() {
        var unsampled = remote
        unsampled.sampled = false
        let exporter = RecordingExporter()
        let tracer = Tracer(sampler: .parentBased(root: .alwaysOn),
                            processor: BatchSpanProcessor(exporter: exporter, metrics: TracingMetrics(registry: MetricsRegistry()),
                                                          maxQueueSize: 10, maxBatchSize: 10, scheduleDelay: .seconds(3600)))
        let span = tracer.startSpan("GetObject", kind: .server, parent: unsampled)
        #expect(!span.isRecording)
        #expect(span.traceparent?.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") == true)
        #expect(span.traceparent?.hasSuffix("-00") == true)
        span.end()
        tracer.shutdown(timeout: .seconds(10))
        #expect(exporter.batches.withLock { $0.isEmpty })
    }

    @Test func currentSpanParentsChildrenAndBackdatedEnds() throws {
        let exporter = RecordingExporter()
        let tracer = Tracer(sampler: .parentBased(root: .alwaysOn),
                            processor: BatchSpanProcessor(exporter: exporter, metrics: TracingMetrics(registry: MetricsRegistry()),
                                                          maxQueueSize: 10, maxBatchSize: 10, scheduleDelay: .seconds(3600)))
        #expect(Span.startChild("orphan").traceparent == nil, "no current span: nothing to propagate")
        let server = tracer.startSpan("request", kind: .server, parent: nil)
        server.withCurrent {
            let cipher = Span.startChild("encrypt")
            cipher.end(duration: .milliseconds(250))
        }
        server.setName("PutObject")
        server.end()
        tracer.shutdown(timeout: .seconds(10))
        let spans = exporter.batches.withLock { $0.flatMap { $0 } }
        let cipher = try #require(spans.first { $0.name == "encrypt" })
        #expect(cipher.parentSpanID == server.context.spanID && cipher.context.traceID == server.context.traceID)
        #expect(cipher.endNanos - cipher.startNanos == 250_000_000)
        #expect(spans.last?.name == "PutObject")
        // Outside the server's scope there is no current span again.
        #expect(Span.current == nil)
    }

    @Test func childrenOfAnUntracedRequestCarryTheClientsContext() {
        let server = Tracer.disabled.startSpan("request", kind: .server, parent: remote)
        let child = server.withCurrent { Span.startChild("backend", kind: .client) }
        #expect(child.traceparent == remote.traceparent)
        #expect(!child.isRecording)
    }

    /// With tracing off, requests without a client context share one span: nothing they do records anything on it,
    /// it propagates nothing, and their children are that span. A client's context still gets a span of its own.
    @Test func untracedRequestsShareOneInertSpan() {
        let a = Tracer.disabled.startSpan("request", kind: .server, parent: nil)
        let b = Tracer.disabled.startSpan("other", kind: .client, parent: nil)
        #expect(a === b)
        a.setName("PutObject")
        a.setAttribute("http.method", "GET")
        a.setStatus(.error("x"))
        a.end(duration: .seconds(1))
        #expect(!a.isRecording && a.recorded == nil && a.traceparent == nil)
        #expect(!a.context.traceID.isValid && !a.context.spanID.isValid && !a.context.sampled)
        let child = a.withCurrent { Span.startChild("backend", kind: .client) }
        #expect(child === a)
        let grandchild = child.withCurrent { Span.startChild("cipher") }
        #expect(grandchild === a)
        let remoteSpan = Tracer.disabled.startSpan("request", kind: .server, parent: remote)
        #expect(remoteSpan !== a && remoteSpan.traceparent == remote.traceparent && remoteSpan.recorded == nil)
        #expect(remoteSpan.withCurrent { Span.startChild("backend") }.traceparent == remote.traceparent)
    }
}
