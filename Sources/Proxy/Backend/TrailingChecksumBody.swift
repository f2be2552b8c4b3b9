import Foundation
import Shared

/// The backend body of a streamed upload (a PUT over 1 MiB, a part) with a checksum the backend verifies: the
/// ciphertext in aws-chunked framing (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, as the AWS SDKs send it), followed by
/// an `x-amz-checksum-crc32` trailer of every byte sent. The checksum cannot be a header: it is known only once
/// the last byte was sealed. The backend stores nothing whose bytes do not match it, and object-lock buckets on AWS
/// refuse uploads that carry neither a Content-MD5 nor a checksum.
///
/// The framing needs no buffering: every chunk's size is known in advance from the payload length, so its
/// header goes out before its bytes are read. A source that ends short throws, which aborts the backend upload
/// (the trailer, and so the object, never comes).
final class TrailingChecksumBody: RequestBody {
    /// Payload bytes per chunk, as the AWS SDKs frame them (S3 wants at least 8 KiB in every chunk but the last).
    static let chunkSize = 64 << 10
    static let trailerName = "x-amz-checksum-crc32"
    /// The `x-amz-content-sha256` value signed for such a body.
    static let payloadHash = AWSChunkedMode.unsignedWithTrailer.rawValue

    private let source: RequestBody
    let declaredLength: Int64?
    private var remaining: Int
    private var inChunk = 0
    private var crc: UInt32 = 0
    /// Framing bytes still to be sent before what `phase` says comes next.
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private enum Phase { case chunkHeader, chunkData, done }
    private var phase = Phase.chunkHeader

    /// - Parameter payloadLength: exactly the bytes `source` yields.
    init(source: RequestBody, payloadLength: Int) {
        self.source = source
        self.remaining = payloadLength
        self.declaredLength = Int64(Self.encodedLength(payloadLength: payloadLength))
    }

    /// The framed length: every chunk's hex size line, bytes and CRLF, the final `0` line, the trailer and the
    /// empty line that ends the body.
    static func encodedLength(payloadLength: Int, chunkSize: Int = TrailingChecksumBody.chunkSize) -> Int {
        let full = payloadLength / chunkSize, last = payloadLength % chunkSize
        var length = full * (String(chunkSize, radix: 16).utf8.count + 2 + chunkSize + 2)
        if last > 0 { length += String(last, radix: 16).utf8.count + 2 + last + 2 }
        // "0\r\n" + "x-amz-checksum-crc32:" + 8 base64 characters (4 bytes) + "\r\n" + "\r\n"
        return length + 3 + trailerName.utf8.count + 1 + 8 + 2 + 2
    }

    /// The headers that declare the framing to the backend. An object's own `Content-Encoding` (stored with it)
    /// stays, after `aws-chunked`, which the backend removes.
    static func declare(payloadLength: Int, in headers: inout HTTPFields) {
        let encoding = headers["Content-Encoding"].map { "aws-chunked," + $0 } ?? "aws-chunked"
        headers.set("Content-Encoding", encoding)
        headers.set("x-amz-decoded-content-length", String(payloadLength))
        headers.set("x-amz-trailer", trailerName)
        headers.set("x-amz-sdk-checksum-algorithm", "CRC32")
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var written = 0
        while written < buffer.count {
            if pendingOffset < pending.count {
                let n = min(buffer.count - written, pending.count - pendingOffset)
                pending.withUnsafeBytes { src in
                    (buffer.baseAddress! + written).copyMemory(from: src.baseAddress! + pendingOffset, byteCount: n)
                }
                pendingOffset += n
                written += n
                continue
            }
            switch phase {
            case .done:
                return written
            case .chunkHeader:
                if remaining == 0 {
                    let value = withUnsafeBytes(of: crc.bigEndian) { Data($0).base64EncodedString() }
                    frame("0\r\n\(Self.trailerName):\(value)\r\n\r\n")
                    phase = .done
                } else {
                    inChunk = min(Self.chunkSize, remaining)
                    frame(String(inChunk, radix: 16) + "\r\n")
                    phase = .chunkData
                }
            case .chunkData:
                if inChunk == 0 {
                    frame("\r\n")
                    phase = .chunkHeader
                    continue
                }
                let space = UnsafeMutableRawBufferPointer(rebasing: buffer[written..<(written + min(buffer.count - written, inChunk))])
                let n = try source.read(into: space)
                guard n > 0 else {
                    throw S3Error.incompleteBody().withLog("the upload's source ended \(remaining) bytes short of its length")
                }
                crc = ZlibCRC32.update(crc, UnsafeRawBufferPointer(rebasing: space[0..<n]))
                inChunk -= n
                remaining -= n
                written += n
            }
        }
        return written
    }

    private func frame(_ text: String) {
        pending = Array(text.utf8)
        pendingOffset = 0
    }
}

extension BackendClient {
    /// The backend body of an upload of `length` bytes streamed from `source`: framed with a CRC32 trailer (declared
    /// in `headers`) when the backend gets upload checksums, else as it is, unsigned.
    func streamedUpload(_ source: RequestBody, length: Int, headers: inout HTTPFields) -> (body: BackendRequestBody, payloadHash: String) {
        guard sendsUploadChecksums else { return (.stream(source, length: Int64(length)), SigV4.unsignedPayload) }
        TrailingChecksumBody.declare(payloadLength: length, in: &headers)
        let framed = TrailingChecksumBody(source: source, payloadLength: length)
        return (.stream(framed, length: framed.declaredLength), TrailingChecksumBody.payloadHash)
    }
}
