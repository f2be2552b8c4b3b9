import Foundation
import Synchronization

/// OTLP span kinds (the values are the protocol's).
public enum SpanKind: Int, Sendable {
    case `internal` = 1
    case server = 2
    case client = 3
}

/// An attribute value: the OTLP `AnyValue` variants the gateway uses.
public enum AttributeValue: Equatable, Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public static func int(_ value: Int) -> AttributeValue { .int(Int64(value)) }
}

/// A span's outcome (OTLP `Status`): unset by default, error with a message when the operation failed.
public enum SpanStatus: Equatable, Sendable {
    case unset
    case ok
    case error(String)
}

/// A finished span, as the exporter sends it.
public struct SpanData: Sendable {
    public var name: String
    public var kind: SpanKind
    public var context: SpanContext
    public var parentSpanID: SpanID?
    /// The parent came from another process (`traceparent`).
    public var parentIsRemote: Bool
    public var startNanos: UInt64
    public var endNanos: UInt64
    public var attributes: [(String, AttributeValue)]
    public var status: SpanStatus
}

/// One operation in a trace. A span that is not recording (not sampled, or tracing off) still carries a context
/// so the trace propagates to the backend; all its other calls do nothing. Thread-safe; `end()` once.
public final class Span: Sendable {
    public let context: SpanContext
    /// False when the span is not sampled or tracing is off: attributes are then not worth computing.
    public let isRecording: Bool
    private let state: Mutex<SpanData?>
    private let processor: SpanProcessor?
    /// Starts this span's children (nil for a non-recording span, whose children carry its context on).
    let tracer: Tracer?

    /// Attributes kept per span; more are dropped (a bound on memory per request).
    static let maxAttributes = 64

    init(name: String, kind: SpanKind, context: SpanContext, parent: SpanContext?,
         attributes: [(String, AttributeValue)], processor: SpanProcessor?, tracer: Tracer?) {
        self.context = context
        self.processor = processor
        self.tracer = tracer
        isRecording = processor != nil
        state = Mutex(processor == nil ? nil : SpanData(
            name: name, kind: kind, context: context, parentSpanID: parent?.spanID, parentIsRemote: parent?.isRemote ?? false,
            startNanos: Span.now(),
            endNanos: 0, attributes: Array(attributes.prefix(Span.maxAttributes)), status: .unset))
    }

    /// A span that only carries `context` (or nothing): what an untraced request gets.
    static func nonRecording(_ context: SpanContext?) -> Span {
        guard let context else { return untraced }
        return Span(name: "", kind: .internal, context: context, parent: nil, attributes: [], processor: nil, tracer: nil)
    }

    /// The one span without context: it records nothing and holds nothing that changes (no state, no processor),
    /// so every untraced request shares it instead of allocating its own (issue 12: three spans per request).
    private static let untraced = Span(name: "", kind: .internal,
                                       context: SpanContext(traceID: TraceID(high: 0, low: 0), spanID: SpanID(0), sampled: false),
                                       parent: nil, attributes: [], processor: nil, tracer: nil)

    /// What the span has recorded so far (tests): nil for a non-recording span.
    var recorded: SpanData? { state.withLock { $0 } }

    /// The `traceparent` header for a request made inside this span; nil when there is no valid trace.
    public var traceparent: String? { context.traceID.isValid && context.spanID.isValid ? context.traceparent : nil }

    public func setAttribute(_ key: String, _ value: AttributeValue) {
        guard isRecording else { return }
        state.withLock { data in
            guard data != nil, data!.endNanos == 0 else { return }
            if let i = data!.attributes.firstIndex(where: { $0.0 == key }) {
                data!.attributes[i].1 = value
            } else if data!.attributes.count < Span.maxAttributes {
                data!.attributes.append((key, value))
            }
        }
    }

    /// Renames the span (the S3 operation is known only after the request was classified).
    public func setName(_ name: String) {
        guard isRecording else { return }
        state.withLock { data in
            guard data != nil, data!.endNanos == 0 else { return }
            data!.name = name
        }
    }

    public func setStatus(_ status: SpanStatus) {
        guard isRecording else { return }
        state.withLock { data in
            guard data != nil, data!.endNanos == 0 else { return }
            data!.status = status
        }
    }

    /// Ends the span and hands it to the exporter (queued, never blocking). Later calls do nothing.
    /// `duration` back-dates the start so the span ends now and lasts that long (work that was measured in
    /// pieces, such as the cipher's time spread over a transfer).
    public func end(duration: Duration? = nil) {
        guard isRecording else { return }
        let now = Span.now()
        let finished: SpanData? = state.withLock { data in
            guard data != nil, data!.endNanos == 0 else { return nil }
            if let duration {
                let (s, atto) = duration.components
                let nanos = UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, atto) / 1_000_000_000)
                data!.startNanos = now > nanos ? now - nanos : 0
            }
            data!.endNanos = max(now, data!.startNanos)
            return data
        }
        if let finished { processor?.onEnd(finished) }
    }

    /// The span of the request this thread works on: set by the server for the duration of a request, so the
    /// backend client and the encryption code start children without passing spans through every call.
    @TaskLocal public static var current: Span?

    /// Runs `body` with this span as `Span.current`.
    public func withCurrent<R>(_ body: () throws -> R) rethrows -> R {
        try Span.$current.withValue(self, operation: body)
    }

    /// Starts a child of `Span.current`; without a current span (or with tracing off) the child records nothing
    /// and carries the current context on, if any.
    public static func startChild(_ name: String, kind: SpanKind = .internal,
                                  attributes: [(String, AttributeValue)] = []) -> Span {
        guard let parent = current else { return nonRecording(nil) }
        // No tracer: `parent` is non-recording (only `nonRecording` makes spans without one), and its child would be
        // the same, a span carrying its context and recording nothing: the parent itself serves (no allocation).
        guard let tracer = parent.tracer else { return parent }
        return tracer.startSpan(name, kind: kind, childOf: parent, attributes: attributes)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Receives finished spans (the batching exporter).
protocol SpanProcessor: Sendable {
    func onEnd(_ span: SpanData)
}
