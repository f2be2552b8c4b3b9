import Foundation

/// Tracing settings from the OpenTelemetry SDK environment variables
/// (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/). Tracing is on only when
/// an OTLP endpoint is set: the specification's default (http://localhost:4318) would send every span of a
/// gateway that nobody configured for tracing into failed connections.
public struct TracingConfiguration: Equatable, Sendable {
    /// Full URL spans are POSTed to (`…/v1/traces`); nil means tracing is off (context still propagates).
    public var endpoint: String?
    public var headers: [(name: String, value: String)] = []
    public var timeout: Duration = .seconds(10)
    public var sampler: Sampler = .parentBased(root: .alwaysOn)
    /// `service.name` and the other resource attributes.
    public var resource: [(String, AttributeValue)] = []
    public var maxQueueSize = 2048
    public var maxExportBatchSize = 512
    public var scheduleDelay: Duration = .milliseconds(5000)
    /// CA bundle for an https endpoint (`OTEL_EXPORTER_OTLP_CERTIFICATE`); nil: the system's.
    public var certificateFile: String?

    public init() {}

    public var isEnabled: Bool { endpoint != nil }

    /// The variables read, for `--help` and the configuration reference.
    public static let settings: [(name: String, summary: String)] = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP/HTTP collector base URL, e.g. http://otel-collector:4318; spans go to <url>/v1/traces (tracing is off when unset)"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "full URL for spans, overrides the base URL"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "extra request headers, key=value pairs separated by commas (values URL-encoded)"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "export request timeout in milliseconds (default 10000)"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf, the only protocol supported (default)"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "PEM CA bundle to verify an https collector"),
        ("OTEL_TRACES_SAMPLER", "always_on, always_off, traceidratio, parentbased_always_on (default), parentbased_always_off, parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "sampling ratio from 0 to 1 for the traceidratio samplers (default 1)"),
        ("OTEL_TRACES_EXPORTER", "otlp (default) or none"),
        ("OTEL_SDK_DISABLED", "true turns tracing off"),
        ("OTEL_SERVICE_NAME", "service.name of the spans (default: the program's name)"),
        ("OTEL_RESOURCE_ATTRIBUTES", "more resource attributes, key=value pairs separated by commas"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "spans waiting for export; more are dropped and counted (default 2048)"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "spans per export request (default 512)"),
        ("OTEL_BSP_SCHEDULE_DELAY", "milliseconds between exports (default 5000)"),
    ]

    /// Reads the variables; an invalid value is a configuration error naming the variable.
    public static func fromEnvironment(_ env: [String: String], serviceName: String) throws(ConfigurationError)
        -> TracingConfiguration {
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        func integer(_ name: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
            guard let text = value(name) else { return nil }
            guard let n = Int(text), range.contains(n) else {
                throw ConfigurationError(setting: name, message:
                    "must be a whole number from \(range.lowerBound) to \(range.upperBound), got \(JSON.quote(text))")
            }
            return n
        }

        var c = TracingConfiguration()
        c.sampler = try Sampler.parse(name: value("OTEL_TRACES_SAMPLER"), argument: value("OTEL_TRACES_SAMPLER_ARG")).get()
        if let n = try integer("OTEL_EXPORTER_OTLP_TIMEOUT", 1...600_000) { c.timeout = .milliseconds(n) }
        if let n = try integer("OTEL_BSP_MAX_QUEUE_SIZE", 1...1_000_000) { c.maxQueueSize = n }
        if let n = try integer("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1...1_000_000) { c.maxExportBatchSize = n }
        c.maxExportBatchSize = min(c.maxExportBatchSize, c.maxQueueSize)
        if let n = try integer("OTEL_BSP_SCHEDULE_DELAY", 1...3_600_000) { c.scheduleDelay = .milliseconds(n) }
        if let protocolName = value("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? value("OTEL_EXPORTER_OTLP_PROTOCOL"),
           protocolName != "http/protobuf" {
            throw ConfigurationError(setting: "OTEL_EXPORTER_OTLP_PROTOCOL",
                                     message: "only http/protobuf is supported, got \(JSON.quote(protocolName))")
        }
        if let path = value("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE") ?? value("OTEL_EXPORTER_OTLP_CERTIFICATE") {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw ConfigurationError(setting: "OTEL_EXPORTER_OTLP_CERTIFICATE", message: "cannot read \(JSON.quote(path))")
            }
            c.certificateFile = path
        }
        for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
            if let text = value(name) {
                // Header values are often credentials: the error never echoes them.
                guard let pairs = keyValueList(text) else {
                    throw ConfigurationError(setting: name, message: "must be key=value pairs separated by commas")
                }
                c.headers += pairs.map { (name: $0.0, value: $0.1) }
            }
        }

        var resource: [(String, AttributeValue)] = []
        if let text = value("OTEL_RESOURCE_ATTRIBUTES") {
            guard let pairs = keyValueList(text) else {
                throw ConfigurationError(setting: "OTEL_RESOURCE_ATTRIBUTES",
                                         message: "must be key=value pairs separated by commas, got \(JSON.quote(text))")
            }
            resource = pairs.map { ($0.0, .string($0.1)) }
        }
        // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES, as the specification says.
        let service = value("OTEL_SERVICE_NAME") ?? resource.first { $0.0 == "service.name" }.map { attribute -> String in
            if case .string(let s) = attribute.1 { return s }
            return serviceName
        } ?? serviceName
        resource.removeAll { ["service.name", "service.version", "telemetry.sdk.name", "telemetry.sdk.language"].contains($0.0) }
        c.resource = [("service.name", .string(service)), ("service.version", .string(BuildInfo.version)),
                      ("telemetry.sdk.name", "s3-encryption-gateway"), ("telemetry.sdk.language", "swift")] + resource

        let disabled = value("OTEL_SDK_DISABLED")?.lowercased() == "true"
        let exporter = value("OTEL_TRACES_EXPORTER")?.lowercased() ?? "otlp"
        guard ["otlp", "none"].contains(exporter) else {
            throw ConfigurationError(setting: "OTEL_TRACES_EXPORTER", message: "must be otlp or none, got \(JSON.quote(exporter))")
        }
        if disabled || exporter == "none" { return c }
        if let url = value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            c.endpoint = try checkedURL(url, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        } else if let base = value("OTEL_EXPORTER_OTLP_ENDPOINT") {
            let checked = try checkedURL(base, "OTEL_EXPORTER_OTLP_ENDPOINT")
            c.endpoint = (checked.hasSuffix("/") ? String(checked.dropLast()) : checked) + "/v1/traces"
        }
        return c
    }

    static func checkedURL(_ text: String, _ setting: String) throws(ConfigurationError) -> String {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty, url.query == nil else {
            throw ConfigurationError(setting: setting, message: "must be an http:// or https:// URL, got \(JSON.quote(text))")
        }
        return text
    }

    /// `k1=v1,k2=v2` with percent-encoded values (the W3C Baggage format the specification uses); nil if malformed.
    static func keyValueList(_ text: String) -> [(String, String)]? {
        var out: [(String, String)] = []
        for member in text.split(separator: ",", omittingEmptySubsequences: true) {
            guard let eq = member.firstIndex(of: "=") else { return nil }
            let key = member[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = member[member.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, let decoded = raw.removingPercentEncoding else { return nil }
            out.append((key, decoded))
        }
        return out
    }

    public static func == (a: TracingConfiguration, b: TracingConfiguration) -> Bool {
        a.endpoint == b.endpoint && a.headers.map(\.name) == b.headers.map(\.name)
            && a.headers.map(\.value) == b.headers.map(\.value) && a.timeout == b.timeout && a.sampler == b.sampler
            && a.resource.map(\.0) == b.resource.map(\.0) && a.resource.map(\.1) == b.resource.map(\.1)
            && a.maxQueueSize == b.maxQueueSize && a.maxExportBatchSize == b.maxExportBatchSize
            && a.scheduleDelay == b.scheduleDelay && a.certificateFile == b.certificateFile
    }
}
