import Foundation
import Synchronization

/// Sends a batch of finished spans somewhere; false when the batch is lost.
protocol SpanExporter: Sendable {
    func export(_ spans: [SpanData]) -> Bool
}

/// Counts what happens to finished spans (Prometheus counters in the binaries).
public struct TracingMetrics: Sendable {
    let exported: Counter
    let dropped: Counter

    /// Registers `tracing_spans_exported_total` and `tracing_spans_dropped_total{reason}` in `registry`.
    public init(registry: MetricsRegistry) {
        exported = registry.counter("tracing_spans_exported_total", help: "Spans the OTLP collector accepted.")
        dropped = registry.counter("tracing_spans_dropped_total",
                                   help: "Finished spans never exported: queue_full (the export queue was full) or export_failed.",
                                   labels: ["reason"])
    }
}

/// Batches finished spans off the request path: `onEnd` appends to a bounded queue (a full queue drops the span
/// and counts it, never blocks); one background thread exports a batch when it is full or every
/// `scheduleDelay`, and drains the queue on shutdown.
final class BatchSpanProcessor: SpanProcessor, Sendable {
    private struct State {
        var queue: [SpanData] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let exporter: SpanExporter
    private let metrics: TracingMetrics
    private let maxQueueSize: Int
    private let maxBatchSize: Int
    private let scheduleDelay: Duration

    init(exporter: SpanExporter, metrics: TracingMetrics, maxQueueSize: Int, maxBatchSize: Int, scheduleDelay: Duration) {
        self.exporter = exporter
        self.metrics = metrics
        self.maxQueueSize = maxQueueSize
        self.maxBatchSize = max(1, min(maxBatchSize, maxQueueSize))
        self.scheduleDelay = scheduleDelay
        let thread = Thread { [self] in run() }
        thread.name = "otlp-exporter"
        thread.start()
    }

    func onEnd(_ span: SpanData) {
        let (accepted, full) = state.withLock { s -> (Bool, Bool) in
            guard !s.stopping, s.queue.count < maxQueueSize else { return (false, false) }
            s.queue.append(span)
            return (true, s.queue.count == maxBatchSize)
        }
        if !accepted { metrics.dropped.inc(["queue_full"]) }
        if full { wake.signal() }
    }

    /// Exports what is queued and stops the thread; waits at most `timeout` (spans still queued then are lost).
    func shutdown(timeout: Duration) {
        let first = state.withLock { s -> Bool in
            defer { s.stopping = true }
            return !s.stopping
        }
        guard first else { return }
        wake.signal()
        let (seconds, attoseconds) = timeout.components
        _ = finished.wait(timeout: .now() + Double(seconds) + Double(attoseconds) / 1e18)
    }

    private func run() {
        let delay = Double(scheduleDelay.components.seconds) + Double(scheduleDelay.components.attoseconds) / 1e18
        while true {
            _ = wake.wait(timeout: .now() + delay)
            while true {
                let (batch, stopping, more) = state.withLock { s -> ([SpanData], Bool, Bool) in
                    let n = min(maxBatchSize, s.queue.count)
                    let batch = Array(s.queue.prefix(n))
                    s.queue.removeFirst(n)
                    return (batch, s.stopping, s.queue.count >= maxBatchSize || (s.stopping && !s.queue.isEmpty))
                }
                if !batch.isEmpty {
                    if exporter.export(batch) {
                        metrics.exported.inc(by: Double(batch.count))
                    } else {
                        metrics.dropped.inc(["export_failed"], by: Double(batch.count))
                    }
                }
                if !more {
                    if stopping {
                        finished.signal()
                        return
                    }
                    break
                }
            }
        }
    }
}

/// OTLP/HTTP with protobuf bodies through libcurl (`HTTPClient`).
struct OTLPHTTPExporter: SpanExporter {
    let configuration: TracingConfiguration
    let client: HTTPClient
    let scopeName: String
    let logger: Logger

    init(configuration: TracingConfiguration, scopeName: String, logger: Logger) {
        self.configuration = configuration
        self.scopeName = scopeName
        self.logger = logger
        var http = HTTPClientConfiguration()
        http.caFile = configuration.certificateFile
        http.connectTimeout = configuration.timeout
        http.idleTimeout = configuration.timeout
        http.maxPooledHandles = 1
        client = HTTPClient(configuration: http)
    }

    func export(_ spans: [SpanData]) -> Bool {
        guard let endpoint = configuration.endpoint else { return false }
        let body = OTLPProtobuf.exportTraceServiceRequest(resource: configuration.resource, scopeName: scopeName,
                                                          scopeVersion: BuildInfo.version, spans: spans)
        var request = HTTPClientRequest(method: "POST", url: endpoint,
                                        headers: [("Content-Type", "application/x-protobuf")] + configuration.headers,
                                        body: .bytes(body))
        request.totalTimeout = configuration.timeout
        do {
            let response = try client.execute(request, maxBodySize: 1 << 20)
            guard (200..<300).contains(response.status) else {
                logger.warn("span export refused", ["endpoint": .string(endpoint), "status": .int(response.status),
                                                    "spans": .int(spans.count)])
                return false
            }
            return true
        } catch {
            logger.warn("span export failed", ["endpoint": .string(endpoint), "error": .string("\(error)"),
                                               "spans": .int(spans.count)])
            return false
        }
    }
}
