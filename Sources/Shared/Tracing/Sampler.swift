/// The samplers of the OpenTelemetry environment specification (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
public enum Sampler: Equatable, Sendable {
    case alwaysOn
    case alwaysOff
    /// Samples a fixed fraction of traces, decided from the trace id alone, so every service that uses the same
    /// ratio keeps the same traces.
    case traceIDRatio(Double)
    /// Follows a remote or local parent's `sampled` flag; `root` decides for requests that start a trace.
    indirect case parentBased(root: Sampler)

    /// Whether a span with `parent` (nil: a new trace) in trace `traceID` is recorded and exported.
    public func shouldSample(parent: SpanContext?, traceID: TraceID) -> Bool {
        switch self {
        case .alwaysOn: return true
        case .alwaysOff: return false
        case .traceIDRatio(let ratio):
            // As the Go and Java SDKs: the trace id's lower 63 bits against ratio × 2^63.
            if ratio >= 1 { return true }
            if ratio <= 0 { return false }
            let bound = UInt64(ratio * Double(UInt64(1) << 63))
            return (traceID.low >> 1) < bound
        case .parentBased(let root):
            if let parent { return parent.sampled }
            return root.shouldSample(parent: nil, traceID: traceID)
        }
    }

    /// The `OTEL_TRACES_SAMPLER` values `parse` accepts (lower case), the default first; the operator's
    /// `spec.tracing.sampler` offers exactly these.
    public static let names = ["parentbased_always_on", "always_on", "always_off", "parentbased_always_off",
                               "traceidratio", "parentbased_traceidratio"]

    /// Parses the environment's sampler name and argument (the ratio for the `traceidratio` variants,
    /// default 1.0). The default sampler is `parentbased_always_on`.
    public static func parse(name: String?, argument: String?) -> Result<Sampler, ConfigurationError> {
        func ratio() -> Result<Double, ConfigurationError> {
            guard let argument, !argument.isEmpty else { return .success(1) }
            guard let value = Double(argument), value >= 0, value <= 1 else {
                return .failure(ConfigurationError(setting: "OTEL_TRACES_SAMPLER_ARG",
                                                   message: "must be a ratio from 0 to 1, got \(JSON.quote(argument))"))
            }
            return .success(value)
        }
        switch (name ?? "").lowercased() {
        case "", "parentbased_always_on": return .success(.parentBased(root: .alwaysOn))
        case "always_on": return .success(.alwaysOn)
        case "always_off": return .success(.alwaysOff)
        case "parentbased_always_off": return .success(.parentBased(root: .alwaysOff))
        case "traceidratio": return ratio().map { .traceIDRatio($0) }
        case "parentbased_traceidratio": return ratio().map { .parentBased(root: .traceIDRatio($0)) }
        default:
            return .failure(ConfigurationError(setting: "OTEL_TRACES_SAMPLER", message:
                "must be \(names.dropLast().joined(separator: ", ")) or \(names.last!), got \(JSON.quote(name ?? ""))"))
        }
    }
}
