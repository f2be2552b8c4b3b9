import Foundation
import Shared

/// The JSON-over-HTTPS exchange shared by the AWS KMS and Vault clients: one request through the
/// shared libcurl client with a total deadline, the answer parsed as a JSON object. Transport
/// failures are `unavailable` (503 to S3 clients); the caller maps statuses and error bodies.
struct KeyManagerHTTP: Sendable {
    let client: HTTPClient
    /// Deadline of one call, connect included.
    let timeout: Duration
    /// Largest answer accepted (key manager answers are small).
    static let maxResponseSize = 256 << 10

    struct Answer {
        var status: Int
        var headers: [(name: String, value: String)]
        /// The body as a JSON object; nil when it was empty or not a JSON object.
        var json: [String: Any]?
        var rawBody: [UInt8]
    }

    func send(method: String, url: String, headers: [(name: String, value: String)], body: [UInt8]?,
              what: String) throws(KeyProviderError) -> Answer {
        var request = HTTPClientRequest(method: method, url: url, headers: headers, body: body.map { .bytes($0) } ?? .none)
        request.totalTimeout = timeout
        let response: HTTPClientResponse
        do {
            response = try client.execute(request, maxBodySize: Self.maxResponseSize)
        } catch {
            throw KeyProviderError(.unavailable, "\(what): \(error)")
        }
        var json: [String: Any]?
        if !response.body.isEmpty {
            json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        }
        return Answer(status: response.status, headers: response.headers, json: json, rawBody: response.body)
    }

    static func jsonBody(_ object: [String: Any]) -> [UInt8] {
        // Sorted keys: deterministic bodies (and signatures) for the same request.
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
    }

    /// A short, printable excerpt of an unexpected answer for error messages (never a key: these are error bodies).
    static func excerpt(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(300), as: UTF8.self)
        return text.unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "?" }.joined()
    }
}
