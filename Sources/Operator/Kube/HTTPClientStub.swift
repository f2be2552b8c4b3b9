// TEMPORARY: stands in for Shared's CancellationToken until the lead's HTTPClient lands on main (~18:20 UTC).
// Deleted at `git merge main`. Same API as Sources/Shared/HTTPClient/HTTPClient.swift.
import Synchronization

final class CancellationToken: Sendable {
    private let flag = Atomic<Bool>(false)
    init() {}
    func cancel() { flag.store(true, ordering: .sequentiallyConsistent) }
    var isCancelled: Bool { flag.load(ordering: .sequentiallyConsistent) }
}

struct HTTPClientConfiguration: Sendable {
    var caFile: String?
    var caPEM: [UInt8]?
    var clientCertificatePEM: [UInt8]?
    var clientKeyPEM: [UInt8]?
    var insecureSkipVerify: Bool = false
    var connectTimeout: Duration = .seconds(10)
    var idleTimeout: Duration = .seconds(60)
    var maxPooledHandles: Int = 64
    init() {}
}
enum HTTPRequestBodySource {
    case none
    case bytes([UInt8])
    case stream(length: Int64?, read: (UnsafeMutableRawBufferPointer) throws -> Int)
}
struct HTTPClientRequest {
    var method: String
    var url: String
    var headers: [(name: String, value: String)]
    var body: HTTPRequestBodySource
    var totalTimeout: Duration?
    var cancellation: CancellationToken?
    init(method: String, url: String, headers: [(name: String, value: String)] = [], body: HTTPRequestBodySource = .none) {
        self.method = method; self.url = url; self.headers = headers; self.body = body
    }
}
protocol HTTPResponseHandler: AnyObject {
    func responseHead(status: Int, headers: [(name: String, value: String)]) throws
    func responseBody(_ bytes: UnsafeRawBufferPointer) throws
}
struct HTTPClientResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
}
enum HTTPClientError: Error, Sendable {
    case connect(String)
    case timeout(String)
    case tls(String)
    case cancelled
    case bodySource(any Error)
    case handler(any Error)
    case responseTooLarge(limit: Int)
    case transport(code: Int, message: String)
}
final class HTTPClient: Sendable {
    init(configuration: HTTPClientConfiguration = .init()) {}
    func execute(_ request: HTTPClientRequest, handler: HTTPResponseHandler) throws(HTTPClientError) { fatalError("stub") }
    func execute(_ request: HTTPClientRequest, maxBodySize: Int = 16 << 20) throws(HTTPClientError) -> HTTPClientResponse { fatalError("stub") }
}
