import Shared

/// The gateway's own anonymous endpoints (`/health`, `/ready`, `/metrics`), implemented by the lead.
protocol GatewayEndpoints: Sendable {
    func serve(_ endpoint: GatewayRoute.Endpoint, head: HTTPRequestHead, response: ResponseWriter, context: RequestContext)
}

/// One finished S3 request, for access logs and metrics.
struct S3RequestSummary: Sendable {
    var requestID: RequestID
    var remoteAddress: String
    var method: String
    var bucket: String?
    var key: String?
    /// `S3Operation.name`, or "Unknown" when the request failed before classification.
    var operation: String
    /// The status sent to the client (0 when the connection was aborted before a head was written).
    var status: Int
    /// Request body bytes read from the client.
    var bytesIn: Int64
    /// Response body bytes written to the client.
    var bytesOut: Int64
    var duration: Duration
    /// The access key that signed the request, once verified.
    var accessKey: String?
    /// The access key a refused request named (not secret), for the log.
    var attemptedAccessKey: String? = nil
    /// Why authentication failed (`AuthFailureReason`), nil when it did not.
    var authFailure: String? = nil
    /// The S3 error code the gateway answered with, nil for forwarded backend answers.
    var errorCode: String?
    /// Log-only detail (e.g. the canonical request of a signature mismatch, or the backend error). Never sent to clients.
    var errorDetail: String?
    /// The backend failed (unreachable, timed out, broke mid-transfer): count it as a backend error.
    var backendError: Bool
    /// The response was cut off after its head; the server closes the connection.
    var aborted: Bool
    /// The request's trace and server span (hex), when it belongs to a trace: log lines join their traces.
    var traceID: String? = nil
    var spanID: String? = nil
}

protocol S3RequestObserver: Sendable {
    func s3RequestCompleted(_ summary: S3RequestSummary)
}
