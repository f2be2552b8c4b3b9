import Foundation
import Shared

/// Backend connection settings (from BACKEND_ENDPOINT, BACKEND_REGION, BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY).
struct BackendConfiguration: Sendable {
    var endpoint: String
    var region: String = "us-east-1"
    var accessKey: String
    var secretKey: String
    /// Streamed uploads and parts carry a CRC32 trailer the backend verifies (`BACKEND_UPLOAD_CHECKSUM`).
    var uploadChecksums: Bool

    init(endpoint: String, region: String = "us-east-1", accessKey: String, secretKey: String, uploadChecksums: Bool = false) {
        self.endpoint = endpoint
        self.region = region
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.uploadChecksums = uploadChecksums
    }
}

/// The S3 backend: path-style URLs, SigV4-signed with the backend's credentials, bodies streamed both ways.
/// Every request goes through `exchange` (BackendExchange.swift). One `HTTPClient` (and so one connection
/// pool) per instance.
final class BackendClient: Sendable {
    let endpoint: BackendEndpoint
    let signer: SigV4Signer
    let http: HTTPClient
    let health: BackendHealth
    /// Streamed uploads and parts carry a CRC32 trailer the backend verifies (`TrailingChecksumBody`).
    let sendsUploadChecksums: Bool
    private let now: @Sendable () -> Int64

    init(configuration: BackendConfiguration, http: HTTPClient, health: BackendHealth = BackendHealth(),
         now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) throws(BackendEndpoint.Invalid) {
        self.endpoint = try BackendEndpoint.parse(configuration.endpoint)
        self.signer = SigV4Signer(accessKey: configuration.accessKey, secretKey: configuration.secretKey,
                                  region: configuration.region)
        self.http = http
        self.health = health
        self.sendsUploadChecksums = configuration.uploadChecksums
        self.now = now
    }

    /// Headers that describe one hop, never the message (RFC 9110 §7.6.1), plus framing curl decides itself.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "expect", "content-length", "host",
    ]
    /// Client authentication, replaced by the gateway's own signature toward the backend.
    static let clientAuthHeaders: Set<String> = [
        "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token",
    ]
    /// Per-response headers the gateway's server writes itself.
    static let serverOwnedResponseHeaders: Set<String> = ["x-amz-request-id", "date", "server"]

    /// End-to-end request headers to send on: everything but hop-by-hop, `Connection`-named and client-auth headers.
    /// `reserving` leaves room for that many more fields (the trace context) in the same allocation.
    static func forwardableRequestHeaders(_ headers: HTTPFields, reserving extra: Int = 0) -> [(name: String, value: String)] {
        endToEnd(headers.entries, dropping: droppedRequestHeaders, reserving: extra)
    }

    /// End-to-end response headers to send back to the client (framing is set from Content-Length).
    static func forwardableResponseHeaders(_ headers: [(name: String, value: String)]) -> HTTPFields {
        HTTPFields(endToEnd(headers, dropping: droppedResponseHeaders))
    }

    private static let droppedRequestHeaders = HeaderNameSet(hopByHop.union(clientAuthHeaders))
    private static let droppedResponseHeaders = HeaderNameSet(hopByHop.union(serverOwnedResponseHeaders))

    /// `headers` without `dropped`, `proxy-…` and the fields the `Connection` header names. Runs on every
    /// request and answer, so names are compared in place, each only with the dropped names of its length.
    private static func endToEnd(_ headers: [(name: String, value: String)], dropping dropped: HeaderNameSet,
                                 reserving extra: Int = 0) -> [(name: String, value: String)]
    {
        var connectionTokens: [String] = []
        for header in headers where header.name.utf8.count == 10 && header.name.caseInsensitiveEquals("connection") {
            // Tokens naming a dropped header (`keep-alive`, `close`) drop nothing more: not kept (no array, no string).
            appendListElements(header.value, to: &connectionTokens, skipping: dropped)
        }
        // Read in place through the buffer: only a kept header is copied (retained). No var is captured (each
        // would cost a dynamic exclusivity check per access).
        let tokens = connectionTokens
        return headers.withUnsafeBufferPointer { headers in
            var kept: [(name: String, value: String)] = []
            kept.reserveCapacity(headers.count + extra)
            for i in headers.indices {
                if dropped.contains(headers[i].name) || hasProxyPrefix(headers[i].name) { continue }
                if !tokens.isEmpty, tokens.contains(where: {
                    headers[i].name.utf8.count == $0.utf8.count && headers[i].name.caseInsensitiveEquals($0)
                }) { continue }
                kept.append(headers[i])
            }
            return kept
        }
    }

    /// Appends the non-empty elements of a comma-separated list (`Connection: keep-alive, X-Hop`), each without
    /// its surrounding spaces and tabs. Split on the UTF-8 bytes: a header list is ASCII, and Character
    /// iteration cost more than the rest of the forwarding rules on every answer.
    /// Elements `skipping` contains are left out.
    static func appendListElements(_ value: String, to out: inout [String], skipping: HeaderNameSet? = nil) {
        var value = value
        value.withUTF8 { bytes in
            var start = 0
            while start <= bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: ",") { end += 1 }
                var low = start, high = end
                while low < high, bytes[low] == UInt8(ascii: " ") || bytes[low] == UInt8(ascii: "\t") { low += 1 }
                while high > low, bytes[high - 1] == UInt8(ascii: " ") || bytes[high - 1] == UInt8(ascii: "\t") { high -= 1 }
                if high > low {
                    let element = UnsafeBufferPointer(rebasing: bytes[low..<high])
                    if skipping?.contains(bytes: element) != true { out.append(String(decoding: element, as: UTF8.self)) }
                }
                start = end + 1
            }
        }
    }

    /// Without surrounding spaces and tabs (optional whitespace of a list element, RFC 9110 §5.6.1).
    static func trimmed(_ s: Substring) -> Substring {
        var s = s
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }

    /// `proxy-…`, any case.
    private static func hasProxyPrefix(_ name: String) -> Bool {
        guard name.utf8.count >= 6, let first = name.utf8.first, first | 0x20 == UInt8(ascii: "p") else { return false }
        return name.caseInsensitiveHasPrefix("proxy-")
    }

    /// The URL and signed headers for a request (pure apart from the clock), signed as `signing` says:
    /// with the gateway's backend credentials, a client credential's own backend pair, or not at all.
    func prepare(method: String, bucket: String?, key: String?, query: [QueryParameter],
                 headers: [(name: String, value: String)], payloadHash: String,
                 signing: BackendSigning) -> (url: String, headers: [(name: String, value: String)]) {
        let path = BackendEndpoint.path(bucket: bucket, key: key)
        let urlQuery = QueryString.forURL(query)
        let url = endpoint.baseURL + path + (urlQuery.isEmpty ? "" : "?" + urlQuery)
        // Host is sent explicitly (first) so the Host the backend sees is byte-for-byte the one that was signed.
        let signed: [(name: String, value: String)]
        switch signing {
        case .gateway:
            signed = signer.sign(method: method, canonicalURI: path, canonicalQuery: QueryString.canonical(query),
                                 host: endpoint.hostHeader, headers: headers, payloadHash: payloadHash, now: now(), sendHost: true)
        case .credential(let credential):
            signed = signer.with(accessKey: credential.accessKey, secretKey: credential.secretKey)
                .sign(method: method, canonicalURI: path, canonicalQuery: QueryString.canonical(query),
                      host: endpoint.hostHeader, headers: headers, payloadHash: payloadHash, now: now(), sendHost: true)
        case .anonymous:
            signed = [(name: "Host", value: endpoint.hostHeader)] + headers
        }
        return (url, signed)
    }

    /// A cheap signed request (`GET /`, ListBuckets) that succeeds when the backend answers anything at all.
    /// Not `HEAD /`: Ceph RGW answers that with a body, which poisons the reused connection for the next request.
    /// Records the answer in `health`; returns the HTTP status.
    func probe(timeout: Duration = .seconds(5)) throws(HTTPClientError) -> Int {
        let (url, headers) = prepare(method: "GET", bucket: nil, key: nil, query: [], headers: [],
                                     payloadHash: SigV4.emptyPayloadHash, signing: .gateway)
        var request = HTTPClientRequest(method: "GET", url: url, headers: headers)
        request.totalTimeout = timeout
        let answer = StatusOnly()
        try http.execute(request, handler: answer)
        health.recordAnswer()
        return answer.status
    }
}

/// Keeps the status of a response and reads its body to the end without storing it,
/// so the connection is clean for reuse.
private final class StatusOnly: HTTPResponseHandler {
    var status = 0
    func responseHead(status: Int, headers: [(name: String, value: String)]) throws { self.status = status }
    func responseBody(_ bytes: UnsafeRawBufferPointer) throws {}
}

extension BackendClient {
    /// The backend client the gateway runs with: endpoint, region, credentials and TLS settings from the
    /// environment contract; REQUEST_TIMEOUT bounds idle transfers (never whole downloads).
    convenience init(gateway config: GatewayConfiguration, health: BackendHealth = BackendHealth()) throws(BackendEndpoint.Invalid) {
        var http = HTTPClientConfiguration()
        http.caFile = config.backendCAFile
        http.insecureSkipVerify = config.backendTLSInsecureSkipVerify
        http.idleTimeout = config.requestTimeout
        try self.init(configuration: BackendConfiguration(endpoint: config.backendEndpoint.absoluteString,
                                                          region: config.backendRegion,
                                                          accessKey: config.backendAccessKey,
                                                          secretKey: config.backendSecretKey,
                                                          uploadChecksums: config.sendsBackendUploadChecksums),
                      http: HTTPClient(configuration: http), health: health)
    }
}
