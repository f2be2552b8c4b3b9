import Synchronization
import Testing
@testable import Proxy
@testable import Shared

private final class CollectingExporter: SpanExporter, Sendable {
    let spans = Mutex<[SpanData]>([])
    func export(_ batch: [SpanData]) -> Bool {
        spans.withLock { $0 += batch }
        return true
    }
}

@Suite struct EncryptionObserverTests {
    /// Each call is counted under its operation; a child span is made only under a recording request span
    /// (an untraced or unsampled request's GET allocates none).
    @Test(arguments: [
        ("none", "GetObject", 0),
        ("unsampled", "GetObject", 0),
        ("sampled", "GetObject", 1),
        ("sampled", "PutObject", 1),
        ("none", "UploadPart", 0),
        ("sampled", "UploadPart", 1),
    ])
    func histogramAndSpans(parent: String, operation: String, children: Int) throws {
        let telemetry = GatewayTelemetry(logger: Logger(level: .error, sink: LogSink(capturing: ())))
        let exporter = CollectingExporter()
        let tracer = Tracer(sampler: .parentBased(root: parent == "sampled" ? .alwaysOn : .alwaysOff),
                            processor: BatchSpanProcessor(exporter: exporter, metrics: TracingMetrics(registry: MetricsRegistry()),
                                                          maxQueueSize: 10, maxBatchSize: 10, scheduleDelay: .seconds(3600)))
        let request = tracer.startSpan("request", kind: .server, parent: nil)
        #expect(request.isRecording == (parent == "sampled"))
        if parent == "none" {
            telemetry.encryptionWork(operation: operation, duration: .milliseconds(3))
        } else {
            request.withCurrent { telemetry.encryptionWork(operation: operation, duration: .milliseconds(3)) }
        }
        request.end()
        tracer.shutdown(timeout: .seconds(10))
        #expect(telemetry.encryptionDuration.count([operation]) == 1)
        let spans = exporter.spans.withLock { $0 }
        let cipher = spans.filter { $0.name == (operation == "GetObject" ? "decrypt" : "encrypt") }
        #expect(cipher.count == children)
        if let child = cipher.first {
            #expect(child.parentSpanID == request.context.spanID)
            #expect(child.endNanos - child.startNanos == 3_000_000)
            #expect(child.attributes.contains { $0.0 == "s3eg.operation" && $0.1 == .string(operation) })
        }
    }
}
