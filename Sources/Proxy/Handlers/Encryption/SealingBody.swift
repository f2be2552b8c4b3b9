import Shared

/// The backend body of an encrypted PUT or part: reads the client's (verified) plaintext in pieces, seals it
/// and yields ciphertext, so memory stays at a few chunks whatever the object size. A part's body starts with
/// its 36-byte part header (`prefix`, docs/FORMAT.md §9) and hashes the plaintext for the part's ETag.
///
/// The sealer holds the final chunk back until the source reports its end, and `VerifyingBody`
/// throws on the read that completes a body failing its signed hash or Content-MD5: the backend
/// upload then stops short of its Content-Length and nothing is stored.
final class SealingBody: RequestBody {
    private let source: RequestBody
    private let sealer: ChunkSealer
    let declaredLength: Int64?
    private var input = [UInt8](repeating: 0, count: 256 << 10)
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var sourceEnded = false
    /// Time spent inside the sealer.
    private(set) var sealTime: Duration = .zero
    private var md5: Digest?
    /// MD5 of the plaintext, once the source ended (when `hashingPlaintext`): the ETag of a streamed upload.
    private(set) var plaintextMD5: [UInt8]?

    /// - Parameters:
    ///   - ciphertextLength: every byte this body yields, `prefix` included.
    ///   - hashingPlaintext: also compute the MD5 of the plaintext as it passes.
    ///   - prefix: bytes sent before the first sealed chunk (a part header).
    init(source: RequestBody, sealer: ChunkSealer, ciphertextLength: Int, hashingPlaintext: Bool = false,
         prefix: [UInt8] = []) {
        self.source = source
        self.sealer = sealer
        self.declaredLength = Int64(ciphertextLength)
        if hashingPlaintext { md5 = Digest(.md5) }
        output = prefix
        output.reserveCapacity(input.count + 16 * 64)
    }

    /// Fills `buffer` completely (less only at the end of the body): sealed output is 16 bytes per chunk longer
    /// than the plaintext read, so returning only what one source read produced would hand the consumer a full
    /// buffer and then a few dozen bytes, every other call — for curl a tiny `send` each time, and a wake-up of
    /// the backend for them.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var written = 0
        while written < buffer.count {
            if outputOffset == output.count {
                if sourceEnded { break }
                try refill()
                continue
            }
            let n = min(buffer.count - written, output.count - outputOffset)
            output.withUnsafeBytes { src in
                (buffer.baseAddress! + written).copyMemory(from: src.baseAddress! + outputOffset, byteCount: n)
            }
            outputOffset += n
            written += n
        }
        return written
    }

    /// Reads the source once and seals what came (the final chunk when the source ended) into `output`.
    private func refill() throws {
        output.removeAll(keepingCapacity: true)
        outputOffset = 0
        let n = try input.withUnsafeMutableBytes { try source.read(into: $0) }
        let started = ContinuousClock.now
        if n == 0 {
            sourceEnded = true
            try sealer.finish { output.append(contentsOf: $0) }
            if let digest = md5.take() { plaintextMD5 = digest.finalize() }
        } else {
            try input.withUnsafeBytes { all in
                let piece = UnsafeRawBufferPointer(rebasing: all[0..<n])
                md5?.update(piece)
                try sealer.update(piece) { output.append(contentsOf: $0) }
            }
        }
        sealTime += ContinuousClock.now - started
    }
}
