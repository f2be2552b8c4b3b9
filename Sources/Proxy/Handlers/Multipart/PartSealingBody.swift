import Shared

/// The backend body of an encrypted part (docs/FORMAT.md §9): the 36-byte part header, then the sealed
/// segment, produced as the plaintext is read from `source` (the client's verified body, or the pipe of an
/// UploadPartCopy), so memory stays at a few chunks whatever the part size. It computes the plaintext MD5 on
/// the way: the part's ETag, known once the body has been read to its end.
///
/// The sealer holds the final chunk back until the source reports its end, and a `VerifyingBody` source throws
/// on the read that completes a body failing its signed hash or Content-MD5: the backend upload then stops
/// short of its Content-Length and the backend stores nothing for this attempt.
final class PartSealingBody: RequestBody {
    private let source: RequestBody
    private let sealer: ChunkSealer
    let declaredLength: Int64?
    private var input = [UInt8](repeating: 0, count: 256 << 10)
    private var output: [UInt8]
    private var outputOffset = 0
    private var sourceEnded = false
    private var md5: Digest? = Digest(.md5)
    /// The plaintext MD5, once the whole body was read and sealed.
    private(set) var plaintextMD5: [UInt8]?
    /// Time spent inside the sealer.
    private(set) var sealTime: Duration = .zero

    /// - Parameters: `header` is the part header, sent first; `storedLength` = 36 + L(P).
    init(source: RequestBody, header: [UInt8], sealer: ChunkSealer, storedLength: Int) {
        self.source = source
        self.sealer = sealer
        self.declaredLength = Int64(storedLength)
        output = header
        output.reserveCapacity(input.count + 16 * 64)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while outputOffset == output.count {
            if sourceEnded { return 0 }
            output.removeAll(keepingCapacity: true)
            outputOffset = 0
            let n = try input.withUnsafeMutableBytes { try source.read(into: $0) }
            let started = ContinuousClock.now
            if n == 0 {
                sourceEnded = true
                try sealer.finish { output.append(contentsOf: $0) }
                plaintextMD5 = md5.take()?.finalize()
            } else {
                try input.withUnsafeBytes { all in
                    let piece = UnsafeRawBufferPointer(rebasing: all[0..<n])
                    md5?.update(piece)
                    try sealer.update(piece) { output.append(contentsOf: $0) }
                }
            }
            sealTime += ContinuousClock.now - started
        }
        let n = min(buffer.count, output.count - outputOffset)
        output.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + outputOffset, byteCount: n)
        }
        outputOffset += n
        return n
    }
}
