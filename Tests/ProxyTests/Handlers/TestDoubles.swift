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

    var headWritten: Bool { head != nil }

    func writeHead(_ head: HTTPResponseHead) throws {
        precondition(self.head == nil, "head written twice")
        self.head = head
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(head != nil, "body before head")
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

/// A small deterministic PRNG so fuzz tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The S3 error code `body` throws, nil when it does not throw, or a marker for other errors.
func s3ErrorCode(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as S3Error {
        return error.code
    } catch {
        return "non-S3 error: \(error)"
    }
}
