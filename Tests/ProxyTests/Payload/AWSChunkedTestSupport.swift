import Foundation
import Shared
@testable import Proxy

/// A client-side aws-chunked encoder for tests (the gateway itself only decodes).
enum AWSChunkedTestEncoder {
    /// Frames `payload` in `chunkSize` pieces; signs chunks (and the trailer) when `chain` is given.
    static func encode(_ payload: [UInt8], chunkSize: Int, mode: AWSChunkedMode, chain: ChunkSignatureChain? = nil,
                       trailer: [(name: String, value: String)] = []) -> [UInt8] {
        var chain = chain
        var out: [UInt8] = []
        var offset = 0
        func header(_ size: Int, _ data: ArraySlice<UInt8>) {
            var line = String(size, radix: 16)
            if mode.chunksSigned, var c = chain {
                let signature = c.expectedChunkSignature(dataSHA256: Digest.hash(.sha256, Array(data)))
                _ = c.verifyChunk(dataSHA256: Digest.hash(.sha256, Array(data)), signature: signature)
                chain = c
                line += ";chunk-signature=" + signature
            }
            out += Array((line + "\r\n").utf8)
        }
        while offset < payload.count {
            let n = min(chunkSize, payload.count - offset)
            let data = payload[offset..<(offset + n)]
            header(n, data)
            out += data
            out += Array("\r\n".utf8)
            offset += n
        }
        header(0, [])
        for field in trailer { out += Array("\(field.name):\(field.value)\r\n".utf8) }
        if mode == .signedWithTrailer, let c = chain {
            out += Array("x-amz-trailer-signature:\(c.expectedTrailerSignature(fields: trailer))\r\n".utf8)
        }
        out += Array("\r\n".utf8)
        return out
    }

    /// A signature chain for tests under an arbitrary key.
    static func chain(seed: String = String(repeating: "0", count: 64)) -> ChunkSignatureChain {
        let scope = SigV4Scope(date: "20250101", region: "us-east-1", service: "s3")
        return ChunkSignatureChain(signingKey: SigV4.signingKey(secret: "test-secret", scope: scope), amzDate: "20250101T000000Z",
                                   scope: scope, seedSignature: SigV4.rawSignature(seed)!)
    }
}

/// Runs the decoder over `input` fed in pieces of `pieceSize`, collecting a normalised event log.
struct AWSChunkedRun: Equatable {
    var events: [String] = []
    var data: [UInt8] = []
    var error: String?

    init(_ input: [UInt8], mode: AWSChunkedMode, pieceSize: Int, limits: AWSChunkedLimits = AWSChunkedLimits()) {
        var decoder = AWSChunkedDecoder(mode: mode, limits: limits)
        var offset = 0
        var steps = 0
        outer: while offset < input.count {
            let end = min(input.count, offset + pieceSize)
            var piece = Array(input[offset..<end])
            offset = end
            while !piece.isEmpty {
                steps += 1
                precondition(steps < 10 * (input.count + 10), "no progress")
                do {
                    let (consumed, event) = try piece.withUnsafeBytes { try decoder.feed($0) }
                    precondition(consumed > 0 && consumed <= piece.count, "bad consumed count")
                    switch event {
                    case .needMore: precondition(consumed == piece.count, "needMore left bytes")
                    case .data(let r): data += piece[r]; if events.last != "data" { events.append("data") }
                    case .chunk(let size, let sig): events.append("chunk \(size) \(sig ?? "-")")
                    case .chunkEnd: events.append("end-chunk")
                    case .trailer(let n, let v): events.append("trailer \(n)=\(v)")
                    case .end(let sig): events.append("end \(sig ?? "-")")
                    }
                    piece.removeFirst(consumed)
                } catch {
                    self.error = (error as? AWSChunkedError)?.message ?? "\(error)"
                    break outer
                }
            }
        }
        if error == nil && !decoder.isDone { error = "truncated" }
    }
}
