import Shared

/// The proxy's metrics and access log: one place that turns server and S3
/// request events into Prometheus series and JSON log lines.
final class GatewayTelemetry: S3RequestObserver, HTTPServerObserver {
    let registry = MetricsRegistry()
    let logger: Logger

    let requests: Counter
    let requestDuration: Histogram
    let encryptionDuration: Histogram
    let activeConnections: Gauge
    let rejectedConnections: Counter
    let bytesReceived: Counter
    let bytesSent: Counter
    let backendErrors: Counter
    let abortedResponses: Counter
    let tamperDetected: Counter
    let authFailures: Counter
    let credentialReloads: Counter
    let credentialReloadErrors: Counter
    let credentialCount: Gauge

    /// The method label of `s3_gateway_requests_total`: a closed set, so that methods a client invents never
    /// create new series.
    static func methodLabel(_ method: String) -> String {
        // A switch compares the short method strings directly; `methodLabels.contains` hashed one per request.
        switch method {
        case "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS": return method
        default: return "OTHER"
        }
    }

    /// The status label: the common statuses without formatting an integer.
    static func statusLabel(_ status: Int) -> String {
        switch status {
        case 0: return "aborted"
        case 200: return "200"
        case 204: return "204"
        case 206: return "206"
        case 304: return "304"
        case 404: return "404"
        default: return String(status)
        }
    }
    let tlsReloads: Counter
    let tlsCertificateExpiry: Gauge

    init(logger: Logger) {
        self.logger = logger
        requests = registry.counter(
            "s3_gateway_requests_total", help: "S3 requests answered, by method, bucket and HTTP status.",
            labels: ["method", "bucket", "status"])
        requestDuration = registry.histogram(
            "s3_gateway_request_duration_seconds", help: "Time from request head to the end of the response, by S3 operation.",
            labels: ["operation"])
        encryptionDuration = registry.histogram(
            "s3_gateway_encryption_duration_seconds", help: "Time spent sealing or opening object data, by operation.",
            labels: ["operation"])
        activeConnections = registry.gauge(
            "s3_gateway_active_connections", help: "Client connections currently open.")
        rejectedConnections = registry.counter(
            "s3_gateway_rejected_connections_total", help: "Client connections refused, by reason.", labels: ["reason"])
        bytesReceived = registry.counter(
            "s3_gateway_received_bytes_total", help: "Request body bytes read from clients.")
        bytesSent = registry.counter(
            "s3_gateway_sent_bytes_total", help: "Response body bytes written to clients.")
        backendErrors = registry.counter(
            "s3_gateway_backend_errors_total",
            help: "Backend requests that failed without an HTTP answer or broke mid-transfer.")
        abortedResponses = registry.counter(
            "s3_gateway_aborted_responses_total", help: "Responses cut off after their head; the connection was closed.")
        tamperDetected = registry.counter(
            "s3_gateway_tamper_detected_total", help: "Reads whose stored ciphertext failed authentication.")
        authFailures = registry.counter(
            "s3_gateway_auth_failures_total", help: "Requests refused by client authentication or authorization, by reason.",
            labels: ["reason"])
        credentialReloads = registry.counter(
            "s3_gateway_credentials_reloads_total", help: "Times GATEWAY_CREDENTIALS_FILE was (re)loaded with a new set.")
        credentialReloadErrors = registry.counter(
            "s3_gateway_credentials_reload_errors_total",
            help: "Times GATEWAY_CREDENTIALS_FILE could not be read or was invalid (the last good set stays).")
        credentialCount = registry.gauge(
            "s3_gateway_credentials", help: "Client credentials currently accepted.")
        tlsReloads = registry.counter(
            "s3_gateway_tls_reloads_total", help: "Changes of TLS_CERT_FILE/TLS_KEY_FILE seen, by result (ok, error).",
            labels: ["result"])
        tlsCertificateExpiry = registry.gauge(
            "s3_gateway_tls_certificate_expiry_seconds", help: "Expiry (Unix time) of the certificate the listener serves.")
    }

    // MARK: S3RequestObserver

    func s3RequestCompleted(_ s: S3RequestSummary) {
        // Unauthenticated requests get no bucket label: strangers must not grow the series set.
        let bucket = s.accessKey == nil ? "" : (s.bucket ?? "")
        // Label values without arrays (the shard's memo compares them in place; an array only for a new series).
        requests.inc(Self.methodLabel(s.method), bucket, Self.statusLabel(s.status))
        if let reason = s.authFailure { authFailures.inc([reason]) }
        requestDuration.observe(seconds(s.duration), s.operation)
        bytesReceived.inc(by: Double(s.bytesIn))
        bytesSent.inc(by: Double(s.bytesOut))
        if s.backendError { backendErrors.inc() }
        if s.aborted { abortedResponses.inc() }

        let level: LogLevel = s.backendError || s.aborted || s.status >= 500 ? .warn : .info
        guard logger.isEnabled(level) else { return }
        let fields: KeyValuePairs<String, LogValue> = [
            "request_id": .string(s.requestID.text),
            "remote": .string(s.remoteAddress),
            "method": .string(s.method),
            "operation": .string(s.operation),
            "bucket": .string(s.bucket ?? ""),
            "key": .string(s.key ?? ""),
            "status": .int(s.status),
            "bytes_in": .int(s.bytesIn),
            "bytes_out": .int(s.bytesOut),
            "duration_ms": .double((seconds(s.duration) * 1000 * 1000).rounded() / 1000),
            "error_code": .string(s.errorCode ?? ""),
            "aborted": .bool(s.aborted),
            "access_key": .string(s.accessKey ?? s.attemptedAccessKey ?? ""),
            "auth_failure": .string(s.authFailure ?? ""),
        ]
        var line = logger
        if let traceID = s.traceID, let spanID = s.spanID {
            line = line.with(["trace_id": .string(traceID), "span_id": .string(spanID)])
        }
        if let detail = s.errorDetail, s.backendError || s.aborted || s.status >= 500 || logger.isEnabled(.debug) {
            line = line.with(["error_detail": .string(detail)])
        }
        line.log(level, "request", fields)
    }

    /// Exposes how many requests the server's workers serve now (`s3_gateway_requests_in_progress`, read from
    /// the pool at each scrape) against how many they may (`s3_gateway_max_requests_at_once`, `WorkerBudget`):
    /// when the first reaches the second, requests wait for a thread.
    func observeWorkers(maxRequests: Int, busy: @escaping @Sendable () -> Int) {
        registry.sampledGauge("s3_gateway_requests_in_progress",
                              help: "Requests being served by a worker thread now (this scrape included).") {
            Double(busy())
        }
        registry.gauge("s3_gateway_max_requests_at_once",
                       help: "Requests served at once at most, from the memory limit; more wait for a thread.")
            .set(Double(maxRequests))
    }

    // MARK: HTTPServerObserver

    func connectionOpened(remoteAddress: String) { activeConnections.add(1) }
    func connectionClosed(remoteAddress: String) { activeConnections.add(-1) }

    func connectionRejected(remoteAddress: String, reason: ConnectionRejection) {
        let name: String
        switch reason {
        case .tooManyConnections: name = "too_many_connections"
        case .badRequest: name = "bad_request"
        case .headerTimeout: name = "header_timeout"
        case .tlsHandshake: name = "tls_handshake"
        case .authenticationTimeout: name = "auth_timeout"
        case .evictedUnauthenticated: name = "evicted_unauthenticated"
        }
        rejectedConnections.inc([name])
        if case .tlsHandshake(let detail) = reason {
            logger.info("connection rejected", ["remote": .string(remoteAddress), "reason": .string(name), "error": .string(detail)])
        } else {
            logger.info("connection rejected", ["remote": .string(remoteAddress), "reason": .string(name)])
        }
    }

    // MARK: TLS listener

    func tlsCertificateLoaded(_ info: TLSCertificateInfo) {
        tlsCertificateExpiry.set(Double(info.notAfter))
        logger.info("TLS certificate loaded", ["subject": .string(info.subject), "serial": .string(info.serial),
                                               "not_after": .int(info.notAfter)])
    }

    func tlsReloaded(_ event: TLSReloadEvent) {
        switch event {
        case .reloaded(let info):
            tlsReloads.inc(["ok"])
            tlsCertificateExpiry.set(Double(info.notAfter))
            logger.info("TLS certificate reloaded", ["subject": .string(info.subject), "serial": .string(info.serial),
                                                     "not_after": .int(info.notAfter)])
        case .failed(let error):
            tlsReloads.inc(["error"])
            logger.error("TLS certificate files changed but cannot be used; the previous certificate stays in use",
                         ["error": .string(error.message)])
        }
    }

    private func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) / 1e18
    }
}

extension GatewayTelemetry: CredentialsReloadObserver {
    func credentialsLoaded(count: Int, path: String) {
        credentialReloads.inc()
        credentialCount.set(Double(count))
        logger.info("credentials loaded", ["path": .string(path), "credentials": .int(count)])
    }

    func credentialsReloadFailed(path: String, reason: String) {
        credentialReloadErrors.inc()
        logger.error("credentials file rejected; keeping the last good set", ["path": .string(path), "reason": .string(reason)])
    }
}
