import Shared

/// What the encrypting handlers report besides the access log: time spent sealing/opening and
/// ciphertext that failed authentication.
protocol EncryptionObserver: Sendable {
    /// Time spent inside the sealer/opener for one request.
    func encryptionWork(operation: String, duration: Duration)
    /// A stored object failed authentication (modified, truncated, spliced, or metadata tampered with).
    func tamperDetected(bucket: String, key: String, requestID: String, error: EncryptionError)
    /// A streamed upload succeeded but its plaintext ETag could not be recorded (or its upload version not
    /// removed after recording it): clients see a visibly-not-MD5 ETag for it, or one extra non-current version.
    func etagNotRecorded(bucket: String, key: String, requestID: String, reason: String)
    /// A listing shows a multipart object's size from the formula (exact for chunk-aligned parts) because its
    /// part headers could not be read.
    func listingSizeEstimated(bucket: String, key: String, reason: String)
}

extension GatewayTelemetry: EncryptionObserver {
    func encryptionWork(operation: String, duration: Duration) {
        let (s, atto) = duration.components
        encryptionDuration.observe(Double(s) + Double(atto) / 1e18, EncryptionWorkLabels.labels(operation))
        // Only a recording request span gets a child: an unsampled request's children record nothing either, and
        // making one anyway cost an allocation and a task-local lookup per GET (issue 12).
        guard Span.current?.isRecording == true else { return }
        // The cipher's time is spread over the transfer; the span lasts that long and ends with it.
        let span = Span.startChild(operation == "GetObject" ? "decrypt" : "encrypt")
        span.setAttribute("s3eg.operation", .string(operation))
        span.end(duration: duration)
    }

    func tamperDetected(bucket: String, key: String, requestID: String, error: EncryptionError) {
        tamperDetected.inc()
        logger.error("tamper detected", [
            "request_id": .string(requestID), "bucket": .string(bucket), "key": .string(key),
            "code": .string(error.code.rawValue), "detail": .string(error.message),
        ])
    }

    func etagNotRecorded(bucket: String, key: String, requestID: String, reason: String) {
        logger.warn("plaintext ETag not recorded", [
            "request_id": .string(requestID), "bucket": .string(bucket), "key": .string(key), "reason": .string(reason),
        ])
    }

    func listingSizeEstimated(bucket: String, key: String, reason: String) {
        logger.warn("listing size estimated", ["bucket": .string(bucket), "key": .string(key), "reason": .string(reason)])
    }
}

/// An observer that records nothing (tests that do not look at metrics).
struct NoEncryptionObserver: EncryptionObserver {
    func encryptionWork(operation: String, duration: Duration) {}
    func tamperDetected(bucket: String, key: String, requestID: String, error: EncryptionError) {}
    func etagNotRecorded(bucket: String, key: String, requestID: String, reason: String) {}
    func listingSizeEstimated(bucket: String, key: String, reason: String) {}
}

/// The label values of `s3_gateway_encryption_duration_seconds`: the common operations' arrays are made once,
/// not per request.
enum EncryptionWorkLabels {
    static let getObject = ["GetObject"]
    static let putObject = ["PutObject"]

    static func labels(_ operation: String) -> [String] {
        switch operation {
        case "GetObject": getObject
        case "PutObject": putObject
        default: [operation]
        }
    }
}
