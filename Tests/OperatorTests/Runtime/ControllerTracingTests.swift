import Foundation
@testable import Shared
import Synchronization
import Testing
@testable import Operator

/// Keeps every exported span.
final class RecordedSpans: SpanExporter, Sendable {
    let spans = Mutex<[SpanData]>([])

    func export(_ batch: [SpanData]) -> Bool {
        spans.withLock { $0 += batch }
        return true
    }

    var all: [SpanData] { spans.withLock { $0 } }
}

/// Starts a child span inside each reconcile, as a Kubernetes API call made by the reconciler would.
struct ChildSpanReconciler: Reconciler {
    let inner: ScriptedReconciler

    func reconcile(_ key: ObjectKey, context: ReconcileContext) -> ReconcileResult {
        let child = Span.startChild("apply", kind: .client)
        defer { child.end() }
        return inner.reconcile(key, context: context)
    }
}

extension SpanData {
    func attribute(_ key: String) -> AttributeValue? { attributes.first { $0.0 == key }?.1 }
}

@Suite struct ControllerTracingTests {
    @Test func everyReconcileIsARootSpanWithItsKeyAndResultAndTheReconcilersSpansAsChildren() {
        let recorded = RecordedSpans()
        let tracer = Tracer(sampler: .parentBased(root: .alwaysOn),
                            processor: BatchSpanProcessor(exporter: recorded, metrics: TracingMetrics(registry: MetricsRegistry()),
                                                          maxQueueSize: 100, maxBatchSize: 100, scheduleDelay: .seconds(3600)))
        let scripted = ScriptedReconciler()
        let key = ObjectKey(namespace: "shop", name: "gw")
        scripted.script(key, [.error(Failure()), .done])
        let c = Controller(name: "encryptiongateway", reconciler: ChildSpanReconciler(inner: scripted), tracer: tracer,
                           rateLimit: Backoff(initial: .milliseconds(1), cap: .milliseconds(1)))
        c.start()
        c.queue.add(key)
        #expect(eventually { scripted.calls.count == 2 && c.queue.processingCount == 0 })
        #expect(c.drain(timeout: .seconds(10)))
        tracer.shutdown(timeout: .seconds(10))

        let spans = recorded.all
        let reconciles = spans.filter { $0.name == "reconcile" }
        #expect(reconciles.count == 2)
        #expect(reconciles.map { $0.attribute("reconcile.result") } == [.string("error"), .string("success")])
        #expect(reconciles.map(\.status) == [.error("\(Failure())"), .unset])
        for span in reconciles {
            #expect(span.parentSpanID == nil)
            #expect(span.attribute("controller") == .string("encryptiongateway"))
            #expect(span.attribute("k8s.namespace.name") == .string("shop"))
            #expect(span.attribute("s3gateway.name") == .string("gw"))
            let children = spans.filter { $0.parentSpanID == span.context.spanID }
            #expect(children.map(\.name) == ["apply"])
            #expect(children.first?.context.traceID == span.context.traceID)
        }
        #expect(reconciles[0].context.traceID != reconciles[1].context.traceID)
    }

}
