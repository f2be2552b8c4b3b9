import Foundation
import Shared
import Testing
@testable import Proxy

/// The streamed file part of a large form: exactly its computed length, framing checked before the last byte.
@Suite struct StreamedFormFileTests {
    static let boundary = "XyZ-boundary"

    static func drain(_ body: RequestBody) -> (bytes: [UInt8], code: String?) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        do {
            while true {
                let n = try buffer.withUnsafeMutableBytes { try body.read(into: $0) }
                if n == 0 { return (out, nil) }
                out += buffer[0..<n]
            }
        } catch let error as S3Error {
            return (out, error.code)
        } catch {
            return (out, "\(error)")
        }
    }

    /// `file` then `tail`, split between the prelude's leftover and the connection at `split`.
    static func body(_ file: [UInt8], tail: [UInt8], split: Int) -> StreamedFormFile {
        let all = file + tail
        let length = Int64(all.count - MultipartFormData.closeDelimiter(boundary).count)
        return StreamedFormFile(MemoryBody(Array(all[split...]), sliceSize: 1000), leftover: Array(all[0..<split]), length: length,
                                boundary: boundary)
    }

    @Test func wellFramedFileStreams() {
        var rng = SplitMix64(seed: 42)
        let file = rng.bytes(20_000)
        for split in [0, 1, 5000, 20_000, 20_005] {
            let result = Self.drain(Self.body(file, tail: MultipartFormData.closeDelimiter(Self.boundary), split: split))
            #expect(result.code == nil && result.bytes == file, "split \(split)")
        }
    }

    @Test func otherFramingIsRefusedBeforeTheLastByte() {
        var rng = SplitMix64(seed: 43)
        let file = rng.bytes(20_000)
        let close = MultipartFormData.closeDelimiter(Self.boundary)
        // A field after the file: the boundary shows up inside what the length says is file data.
        let late = Array("\r\n--\(Self.boundary)\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1".utf8)
        // No CRLF after the close delimiter (same length: the last bytes differ), and trailing data.
        let variants: [[UInt8]] = [late + close, Array(close.dropLast(2)) + Array("zz".utf8), close + Array("extra".utf8)]
        for tail in variants {
            let result = Self.drain(Self.body(file, tail: tail, split: 3000))
            #expect(result.code == "MalformedPOSTRequest")
            #expect(result.bytes.count < file.count + (tail.count - close.count))
        }
        // The body ends early.
        let short = StreamedFormFile(MemoryBody(Array(file[0..<100])), leftover: [], length: 20_000, boundary: Self.boundary)
        #expect(Self.drain(short).code == "IncompleteBody")
    }
}
