import Shared
import Synchronization

/// Metrics and logs of the key providers: calls by provider, operation and result; cache hits;
/// intermediate keys created; policy reloads. Failures are logged at most once a second per
/// provider and result, so a key manager outage under load gives a clear line, not a flood.
final class KeyTelemetry: KeyServiceObserver {
    let calls: Counter
    let callDuration: Histogram
    let cacheLookups: Counter
    let intermediateKeys: Counter
    let policyReloads: Counter
    private let logger: Logger
    private let lastLogged = Mutex<[String: ContinuousClock.Instant]>([:])

    init(registry: MetricsRegistry, logger: Logger) {
        self.logger = logger
        calls = registry.counter("s3_gateway_key_provider_requests_total",
                                 help: "Key manager calls, by provider, operation and result (ok, unavailable, denied, invalid_ciphertext, ...).",
                                 labels: ["provider", "operation", "result"])
        callDuration = registry.histogram("s3_gateway_key_provider_request_duration_seconds",
                                          help: "Time of key manager calls, by provider and operation.", labels: ["provider", "operation"])
        cacheLookups = registry.counter("s3_gateway_key_cache_lookups_total",
                                        help: "Lookups of unwrapped intermediate keys, by result (hit, miss).", labels: ["result"])
        intermediateKeys = registry.counter("s3_gateway_intermediate_keys_created_total",
                                            help: "Intermediate keys generated and wrapped by a key manager, by provider.", labels: ["provider"])
        policyReloads = registry.counter("s3_gateway_policy_reloads_total",
                                         help: "Reloads of ENCRYPTION_POLICY_FILE, by result (ok, error).", labels: ["result"])
    }

    func providerCall(_ provider: KeyProviderKind, operation: String, duration: Duration, error: KeyProviderError?) {
        let (s, atto) = duration.components
        callDuration.observe(Double(s) + Double(atto) / 1e18, [provider.rawValue, operation])
        let result = error.map { Self.resultName($0.code) } ?? "ok"
        calls.inc([provider.rawValue, operation, result])
        guard let error else { return }
        let key = "\(provider.rawValue)/\(result)"
        let now = ContinuousClock.now
        let due = lastLogged.withLock { table -> Bool in
            if let last = table[key], now - last < .seconds(1) { return false }
            table[key] = now
            return true
        }
        guard due else { return }
        let level: LogLevel = error.code == .unavailable || error.code == .protocolError ? .error : .warn
        logger.log(level, "key provider \(result)", [
            "provider": .string(provider.rawValue), "operation": .string(operation), "error": .string(error.message),
        ])
    }

    func cacheLookup(hit: Bool) { cacheLookups.inc(hit ? "hit" : "miss") }  // no label array per lookup

    func intermediateKeyCreated(_ provider: KeyProviderKind, bucket: String) {
        intermediateKeys.inc([provider.rawValue])
        logger.debug("intermediate key created", ["provider": .string(provider.rawValue), "bucket": .string(bucket)])
    }

    static func resultName(_ code: KeyProviderError.Code) -> String {
        switch code {
        case .unavailable: return "unavailable"
        case .denied: return "denied"
        case .invalidCiphertext: return "invalid_ciphertext"
        case .misconfigured: return "misconfigured"
        case .protocolError: return "protocol_error"
        }
    }
}
