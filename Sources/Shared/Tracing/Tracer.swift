import Synchronization

/// Starts spans and exports them. One per process; `Tracer.disabled` when no collector is configured, which
/// records nothing but still passes a client's trace context on (a request with `traceparent` reaches the
/// backend with it).
public final class Tracer: Sendable {
    private let sampler: Sampler
    private let processor: BatchSpanProcessor?
    private let random = Mutex(SystemRandomNumberGenerator())

    /// Tracing off: no spans recorded, incoming contexts propagated unchanged.
    public static let disabled = Tracer(sampler: .alwaysOff, processor: nil)

    init(sampler: Sampler, processor: BatchSpanProcessor?) {
        self.sampler = sampler
        self.processor = processor
    }

    /// A tracer exporting to `configuration.endpoint`, or `disabled` when tracing is off. `scopeName` names the
    /// instrumentation (the program); drops and exports are counted in `metrics`.
    public convenience init(configuration: TracingConfiguration, scopeName: String, metrics: TracingMetrics,
                            logger: Logger) {
        guard configuration.isEnabled else {
            self.init(sampler: .alwaysOff, processor: nil)
            return
        }
        let exporter = OTLPHTTPExporter(configuration: configuration, scopeName: scopeName, logger: logger)
        self.init(sampler: configuration.sampler,
                  processor: BatchSpanProcessor(exporter: exporter, metrics: metrics,
                                                maxQueueSize: configuration.maxQueueSize,
                                                maxBatchSize: configuration.maxExportBatchSize,
                                                scheduleDelay: configuration.scheduleDelay))
    }

    /// Whether spans can be recorded at all.
    public var isEnabled: Bool { processor != nil }

    /// Starts a span under `parent` (a remote context from `traceparent`, or a local span's context; nil starts a
    /// new trace). When tracing is off the span only carries `parent` on.
    public func startSpan(_ name: String, kind: SpanKind = .internal, parent: SpanContext?,
                          attributes: [(String, AttributeValue)] = []) -> Span {
        guard let processor else { return Span.nonRecording(parent) }
        let parent = parent.flatMap { $0.traceID.isValid && $0.spanID.isValid ? $0 : nil }
        let (traceID, spanID) = random.withLock { g in
            (parent?.traceID ?? TraceID.random(using: &g), SpanID.random(using: &g))
        }
        let sampled = sampler.shouldSample(parent: parent, traceID: traceID)
        let context = SpanContext(traceID: traceID, spanID: spanID, sampled: sampled, traceState: parent?.traceState)
        // An unsampled span records nothing, but its children still go through the tracer (a ratio sampler
        // decides per trace, so they come out unsampled too).
        return Span(name: name, kind: kind, context: context, parent: parent, attributes: sampled ? attributes : [],
                    processor: sampled ? processor : nil, tracer: self)
    }

    /// A child of `parent` span (convenience for local nesting).
    public func startSpan(_ name: String, kind: SpanKind = .internal, childOf parent: Span,
                          attributes: [(String, AttributeValue)] = []) -> Span {
        startSpan(name, kind: kind, parent: parent.context, attributes: attributes)
    }

    /// Exports what is queued (waiting at most `timeout`) and stops the exporter thread.
    public func shutdown(timeout: Duration = .seconds(5)) {
        processor?.shutdown(timeout: timeout)
    }
}
