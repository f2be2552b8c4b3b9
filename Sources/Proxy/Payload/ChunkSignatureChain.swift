import Shared

/// The signature chain of a signed aws-chunked body: each chunk's signature covers the previous
/// signature (the request's seed signature for the first chunk) and the SHA-256 of the chunk data,
/// so chunks cannot be altered, reordered, dropped or replayed from another request; the trailer's
/// signature covers the final chunk's signature and the trailer fields.
///
///     AWS4-HMAC-SHA256-PAYLOAD \n <amz-date> \n <scope> \n <previous signature> \n <SHA-256("")> \n <SHA-256(data)>
///     AWS4-HMAC-SHA256-TRAILER \n <amz-date> \n <scope> \n <previous signature> \n <SHA-256(trailer fields)>
struct ChunkSignatureChain: Sendable {
    let signingKey: [UInt8]
    let amzDate: String
    let scope: SigV4Scope
    /// The signature the next chunk (or the trailer) chains from, in hex. Until the first chunk it is the seed
    /// signature, kept as its bytes: every header-signed request makes a chain, few send signed chunks, so the
    /// seed's hex String is made only when a chunk needs it (one malloc per request less, issue 12).
    var previous: String { previousHex ?? Encoding.hex(seed.array) }
    private let seed: Bytes32
    private var previousHex: String?

    init(signingKey: [UInt8], amzDate: String, scope: SigV4Scope, seedSignature: Bytes32) {
        self.signingKey = signingKey
        self.amzDate = amzDate
        self.scope = scope
        self.seed = seedSignature
    }

    /// The signature a chunk with data hash `dataSHA256` must carry.
    func expectedChunkSignature(dataSHA256: [UInt8]) -> String {
        let stringToSign = ["AWS4-HMAC-SHA256-PAYLOAD", amzDate, scope.string, previous, SigV4.emptyPayloadHash,
                            Encoding.hex(dataSHA256)].joined(separator: "\n")
        return SigV4.signature(signingKey: signingKey, stringToSign: stringToSign)
    }

    /// Checks a chunk's signature in constant time and advances the chain.
    mutating func verifyChunk(dataSHA256: [UInt8], signature: String) -> Bool {
        let expected = expectedChunkSignature(dataSHA256: dataSHA256)
        guard ConstantTime.equals(expected, signature) else { return false }
        previousHex = expected
        return true
    }

    /// The canonical trailer block: `name:value\n` per field, names lower-case, in the order sent.
    static func canonicalTrailer(_ fields: [(name: String, value: String)]) -> String {
        fields.map { "\($0.name):\($0.value)\n" }.joined()
    }

    func expectedTrailerSignature(fields: [(name: String, value: String)]) -> String {
        let stringToSign = ["AWS4-HMAC-SHA256-TRAILER", amzDate, scope.string, previous,
                            Encoding.hex(Digest.sha256(Self.canonicalTrailer(fields)))].joined(separator: "\n")
        return SigV4.signature(signingKey: signingKey, stringToSign: stringToSign)
    }

    mutating func verifyTrailer(fields: [(name: String, value: String)], signature: String) -> Bool {
        let expected = expectedTrailerSignature(fields: fields)
        guard ConstantTime.equals(expected, signature) else { return false }
        previousHex = expected
        return true
    }
}
