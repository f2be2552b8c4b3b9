import Foundation
import Shared
import Testing
@testable import Proxy

@Suite struct TrailingChecksumBodyTests {
    /// Reads `body` to its end through buffers of `bufferSize` bytes.
    static func drain(_ body: RequestBody, bufferSize: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: bufferSize)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try body.read(into: $0) }
            if n == 0 { return out }
            out.append(contentsOf: buffer[0..<n])
        }
    }

    /// Decodes `framed` with the gateway's own strict decoder: the payload and the trailer fields.
    static func decode(_ framed: [UInt8]) throws -> (payload: [UInt8], trailer: [(String, String)], ended: Bool) {
        var decoder = AWSChunkedDecoder(mode: .unsignedWithTrailer)
        var payload: [UInt8] = [], trailer: [(String, String)] = [], ended = false
        var offset = 0
        while offset < framed.count, !ended {
            let (consumed, event) = try framed.withUnsafeBytes { all in
                try decoder.feed(UnsafeRawBufferPointer(rebasing: all[offset...]))
            }
            switch event {
            case .data(let range): payload.append(contentsOf: framed[(offset + range.lowerBound)..<(offset + range.upperBound)])
            case .trailer(let name, let value): trailer.append((name, value))
            case .end: ended = true
            default: break
            }
            offset += consumed
        }
        return (payload, trailer, ended && offset == framed.count)
    }

    static func crc32(_ bytes: [UInt8]) -> String {
        let value = bytes.withUnsafeBytes { ZlibCRC32.update(0, $0) }
        return withUnsafeBytes(of: value.bigEndian) { Data($0).base64EncodedString() }
    }

    /// Lengths around chunk boundaries, read through buffers smaller and larger than a chunk and from a source that
    /// returns a few bytes at a time: the declared length is exact, the framing decodes to the payload, and the
    /// trailer is the CRC32 of the payload.
    @Test(arguments: [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 200_003])
    func framesThePayloadWithItsCRC32(length: Int) throws {
        var rng = SplitMix64(seed: UInt64(length) &+ 11)
        let payload = rng.bytes(length)
        for (bufferSize, slice) in [(1000, 4093), (300_000, 65_536), (17, 7)] {
            let body = TrailingChecksumBody(source: MemoryBody(payload, sliceSize: slice), payloadLength: length)
            let framed = try Self.drain(body, bufferSize: bufferSize)
            #expect(body.declaredLength == Int64(framed.count), "\(length) via \(bufferSize)")
            #expect(framed.count == TrailingChecksumBody.encodedLength(payloadLength: length))
            let decoded = try Self.decode(framed)
            #expect(decoded.ended && decoded.payload == payload, "\(length) via \(bufferSize)")
            #expect(decoded.trailer.map(\.0) == ["x-amz-checksum-crc32"] && decoded.trailer.map(\.1) == [Self.crc32(payload)])
        }
    }

    @Test func aShortSourceThrowsBeforeTheTrailer() throws {
        let payload = [UInt8](repeating: 7, count: 100_000)
        let body = TrailingChecksumBody(source: MemoryBody(Array(payload.prefix(99_999)), sliceSize: 4096), payloadLength: payload.count)
        #expect(throws: S3Error.self) { _ = try Self.drain(body, bufferSize: 8192) }
    }

    @Test func declaresTheFramingKeepingTheObjectsOwnEncoding() {
        var headers = HTTPFields([(name: "Content-Encoding", value: "gzip"), (name: "Content-Type", value: "text/plain")])
        TrailingChecksumBody.declare(payloadLength: 1234, in: &headers)
        #expect(headers["Content-Encoding"] == "aws-chunked,gzip")
        #expect(headers["x-amz-decoded-content-length"] == "1234")
        #expect(headers["x-amz-trailer"] == "x-amz-checksum-crc32" && headers["x-amz-sdk-checksum-algorithm"] == "CRC32")
        var plain = HTTPFields()
        TrailingChecksumBody.declare(payloadLength: 0, in: &plain)
        #expect(plain["Content-Encoding"] == "aws-chunked")
    }
}
