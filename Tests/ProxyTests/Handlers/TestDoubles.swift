import Foundation
import Shared
@testable import Proxy

/// A request body served from memory in small slices, optionally ending early or declaring a length.
final class MemoryBody: RequestBody {
    let bytes: [UInt8]
    let declaredLength: Int64?
    let sliceSize: Int
    private var offset = 0

    init(_ bytes: [UInt8], declaredLength: Int64? = nil, sliceSize: Int = 7) {
        self.bytes = bytes
        self.declaredLength = declaredLength ?? Int64(bytes.count)
        self.sliceSize = sliceSize
    }

    /// A chunked body (no Content-Length).
    init(chunked bytes: [UInt8]) {
        self.bytes = bytes
        self.declaredLength = nil
        self.sliceSize = 7
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, sliceSize, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return n
    }

    func readEverything() throws -> [UInt8] { try readAll(limit: 1 << 30) }
}

/// Records what a handler wrote.
final class RecordingWriter: ResponseWriter {
    private(set) var head: HTTPResponseHead?
    private(set) var body: [UInt8] = []
    private(set) var finished = false
    /// What the handler threw (it only throws to abort a response whose head went out).
    var abortedWith: (any Error)?

    var headWritten: Bool { head != nil }

    func writeHead(_ head: HTTPResponseHead) throws {
        precondition(self.head == nil, "head written twice")
        self.head = head
    }

    /// Simulates a client that goes away: body writes fail once this many bytes were written.
    var failWritesAfterBytes: Int?

    struct ClientGone: Error {}

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(head != nil, "body before head")
        if let limit = failWritesAfterBytes, body.count + bytes.count > limit { throw ClientGone() }
        body.append(contentsOf: bytes)
    }

    func finish() throws { finished = true }

    var status: Int? { head?.status }
    var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The `<Code>` of an S3 XML error body.
    var errorCode: String? {
        guard let start = bodyText.range(of: "<Code>"), let end = bodyText.range(of: "</Code>") else { return nil }
        return String(bodyText[start.upperBound..<end.lowerBound])
    }
}

// Seeded randomness comes from `SplitMix64` in Tests/ProxyTests/Encryption/EncryptionTestSupport.swift.

/// The S3 error code `body` throws, nil when it does not throw, or a marker for other errors.
func s3ErrorCode(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as S3Error {
        return error.code
    } catch let failure as AuthenticationFailure {
        return failure.error.code
    } catch {
        return "non-S3 error: \(error)"
    }
}

/// Talks to the backend directly, without a gateway: what is really stored (a pass-through gateway refuses
/// to relay encrypted objects, so tests that inspect or rewrite ciphertext use this).
struct RawBackend {
    let backend: BackendClient

    init(endpoint: String) throws {
        backend = try BackendClient(configuration: BackendConfiguration(endpoint: endpoint, accessKey: "testing", secretKey: "testing"),
                                    http: HTTPClient())
    }

    /// Sends one request (`target` is a path-style `/bucket/key?query`) and records the answer like a handler would.
    @discardableResult
    func send(_ method: String, _ target: String, body: [UInt8] = [], headers: [(name: String, value: String)] = []) -> RecordingWriter {
        let head = HTTPRequestHead(method: method, target: target, headers: [:])
        let writer = RecordingWriter()
        do {
            let address = try S3RequestAddress.resolve(rawPath: head.rawPath, host: nil, baseDomains: [])
            let request = BackendRequest(method: method, bucket: address.bucket, key: address.key,
                                         query: QueryString.parse(head.rawQuery) ?? [], headers: HTTPFields(headers),
                                         body: method == "PUT" || method == "POST" ? .bytes(body) : .none,
                                         payloadHash: Encoding.hex(Digest.hash(.sha256, body)), signing: .gateway)
            let answer = try backend.fetch(request, maxBodySize: 1 << 30)
            try writer.writeHead(HTTPResponseHead(status: answer.status, headers: HTTPFields(answer.headers),
                                                  contentLength: Int64(answer.body.count)))
            if !answer.body.isEmpty { try writer.write(answer.body) }
            try writer.finish()
        } catch {
            writer.abortedWith = error
        }
        return writer
    }

    func header(_ writer: RecordingWriter, _ name: String) -> String? { writer.head?.headers[name] }
}
