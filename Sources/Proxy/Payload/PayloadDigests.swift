import Shared

/// Every digest a request body is checked against, fed with payload bytes and chunk boundaries in order:
/// the signed SHA-256 of a plain body, each aws-chunked chunk's SHA-256 and its place in the signature chain,
/// Content-MD5 and the flexible checksum. Owned by one thread at a time (`DigestPipeline`).
final class PayloadDigests {
    private var sha256: Digest?
    private var md5: Digest?
    private let checksum: RunningChecksum?
    private var chain: ChunkSignatureChain?
    private var chunkDigest: Digest?

    init(declaration: PayloadDeclaration, chain: ChunkSignatureChain?) {
        if declaration.sha256 != nil { sha256 = Digest(.sha256) }
        if declaration.contentMD5 != nil { md5 = Digest(.md5) }
        checksum = declaration.checksum.algorithm.map(RunningChecksum.init)
        self.chain = chain
    }

    /// Computes the MD5 even without a Content-MD5 to check (the ETag of a streamed upload or part).
    func computeMD5() {
        if md5 == nil { md5 = Digest(.md5) }
    }

    /// Whether hashing the payload costs enough for a worker thread to pay off. zlib's CRC32 alone (≈ 5 GB/s
    /// here, the AWS SDKs' default part checksum) costs less inline than the slot copies and wake-ups of a
    /// hand-off; MD5, SHA-1, SHA-256 (≈ 0.4–0.9 GB/s) and the table-driven CRC32C/CRC64NVME do not.
    var worthAWorker: Bool {
        sha256 != nil || md5 != nil || chain != nil || (checksum != nil && checksum?.algorithm != .crc32)
    }

    /// Whether chunk boundaries matter (signed aws-chunked); otherwise `beginChunk`/`endChunk` do nothing.
    var verifiesChunks: Bool { chain != nil }

    func update(_ bytes: UnsafeRawBufferPointer) {
        sha256?.update(bytes)
        md5?.update(bytes)
        chunkDigest?.update(bytes)
        checksum?.update(bytes)
    }

    /// A signed chunk begins; the final (empty) chunk is verified at once.
    func beginChunk(signature: String?, empty: Bool) throws(S3Error) {
        guard chain != nil else { return }
        if empty {
            try verify(Digest.hash(.sha256, [UInt8]()), signature: signature, final: true)
        } else {
            chunkDigest = Digest(.sha256)
            pendingSignature = signature
        }
    }

    private var pendingSignature: String?

    /// The CRLF after a chunk's data: its signature is checked and the chain advances.
    func endChunk() throws(S3Error) {
        guard chain != nil, let digest = chunkDigest.take() else { return }
        try verify(digest.finalize(), signature: pendingSignature, final: false)
    }

    func verifyTrailer(fields: [(name: String, value: String)], signature: String) throws(S3Error) {
        guard chain!.verifyTrailer(fields: fields, signature: signature) else { throw S3Error.chunkSignatureDoesNotMatch("trailer") }
    }

    private func verify(_ dataSHA256: [UInt8], signature: String?, final: Bool) throws(S3Error) {
        guard let signature, chain!.verifyChunk(dataSHA256: dataSHA256, signature: signature) else {
            throw S3Error.chunkSignatureDoesNotMatch(final ? "final chunk" : "chunk")
        }
        pendingSignature = nil
    }

    struct Results {
        var sha256: [UInt8]?
        var md5: [UInt8]?
        var checksum: ChecksumValue?
    }

    /// The results, once every byte went through `update`; call once.
    func finish() -> Results {
        var results = Results()
        if let digest = sha256.take() { results.sha256 = digest.finalize() }
        if let digest = md5.take() { results.md5 = digest.finalize() }
        results.checksum = checksum?.finalize()
        return results
    }
}
