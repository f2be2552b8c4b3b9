import Foundation
import Shared

/// The one request-body pipeline every operation reads through (PutObject, UploadPart, POST Object,
/// pass-through): it removes aws-chunked framing, so handlers only ever see payload bytes, and checks as
/// the bytes stream what the client committed to — the signed `x-amz-content-sha256`, every chunk
/// signature and the trailer signature, `Content-MD5`, a flexible checksum, and the declared length.
///
/// The end-of-body checks run on the read that delivers the last payload byte (for aws-chunked, after the
/// final chunk and the trailer have been read and verified) and fail by throwing from that read instead of
/// returning its bytes. A consumer that forwards the body (the backend upload) is therefore aborted before
/// the last byte leaves, so a body that does not match what was signed is never stored, not even partly.
///
/// Bodies of `threadedDigestThreshold` bytes and more are hashed on a second thread (`DigestPipeline`) while a
/// core is to spare, so that a signed upload costs about as much wall time as an unsigned one on a machine with
/// two cores.
final class VerifyingBody: RequestBody {
    private let inner: RequestBody
    /// What the request's headers committed the body to.
    let declaration: PayloadDeclaration
    private let digests: DigestPipeline
    /// Wire bytes read from the client.
    private(set) var bytesRead: Int64 = 0
    /// Payload bytes handed out.
    private(set) var payloadBytes: Int64 = 0
    private var ended = false

    // aws-chunked state
    private var decoder: AWSChunkedDecoder?
    private var trailerFields: [(name: String, value: String)] = []

    /// The flexible checksum of the payload, once the body ended: the client's value, verified, or the one
    /// the gateway computed for `x-amz-sdk-checksum-algorithm`. What GetObject's checksum mode returns.
    private(set) var verifiedChecksum: ChecksumValue?

    /// The payload's MD5, once the body ended and passed its checks, when asked for with `computePayloadMD5()`
    /// (or when the client sent a `Content-MD5`, which then equals it).
    private(set) var payloadMD5: [UInt8]?

    /// The payload length: `x-amz-decoded-content-length` for aws-chunked, else the Content-Length (nil when chunked).
    let declaredLength: Int64?

    /// Bodies at least this large (or of unknown length) hash on a worker thread.
    static let threadedDigestThreshold: Int64 = 1 << 20

    /// - Parameter slots: whether a large body may hash on a second thread (`DigestPipeline`).
    init(_ inner: RequestBody, declaration: PayloadDeclaration, slots: BackgroundSlots = .shared) {
        self.inner = inner
        self.declaration = declaration
        var chain: ChunkSignatureChain?
        switch declaration.framing {
        case .plain:
            declaredLength = inner.declaredLength
        case .awsChunked(let mode, let decodedLength, let signatureChain):
            declaredLength = decodedLength
            decoder = AWSChunkedDecoder(mode: mode)
            chain = signatureChain
        }
        digests = DigestPipeline(PayloadDigests(declaration: declaration, chain: chain),
                                 threaded: (declaredLength ?? Int64.max) >= Self.threadedDigestThreshold, slots: slots)
    }

    /// A plain body with a signed hash or `UNSIGNED-PAYLOAD` and an optional `Content-MD5`.
    /// - Throws: `InvalidDigest` when `contentMD5` is not base64 of 16 bytes.
    convenience init(_ inner: RequestBody, payload: PayloadMode, contentMD5: String?, slots: BackgroundSlots = .shared) throws(S3Error) {
        var headers = HTTPFields()
        if let contentMD5 { headers.add("Content-MD5", contentMD5) }
        self.init(inner, declaration: try PayloadDeclaration.parse(headers: headers, payload: payload, chain: nil), slots: slots)
    }

    /// Computes the payload's MD5 (`payloadMD5`) with the other digests — on their worker thread for large
    /// bodies, so it overlaps with what the consumer does with the bytes — rather than in a pass of its own.
    /// Call before the first read.
    func computePayloadMD5() {
        digests.computeMD5()
    }

    /// Whether the digests ran on a worker thread (tests check that cheap bodies start none).
    var digestWorkerStarted: Bool { digests.workerStarted }

    /// The checksum the client sent as a header, known before the body (verified when the body ends).
    var declaredChecksum: ChecksumValue? {
        if case .header(let value) = declaration.checksum { return value }
        return nil
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if ended { return 0 }
        if decoder != nil { return try readDecoded(into: buffer) }
        let n = try inner.read(into: buffer)
        if n > 0 {
            bytesRead += Int64(n)
            try consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            if let declared = inner.declaredLength {
                guard payloadBytes <= declared else { throw S3Error.incompleteBody() }
                // A consumer that knows the length (curl with a Content-Length) never asks past the last
                // byte, so the checks run before the last bytes are handed out: on a mismatch they are
                // withheld and the upload cannot complete.
                if payloadBytes == declared { try finish() }
            }
            return n
        }
        if let declared = inner.declaredLength, payloadBytes != declared { throw S3Error.incompleteBody() }
        try finish()
        return 0
    }

    /// Payload bytes: every digest sees them.
    private func consume(_ bytes: UnsafeRawBufferPointer) throws(S3Error) {
        try digests.update(bytes)
        payloadBytes += Int64(bytes.count)
    }

    // MARK: aws-chunked

    /// Reads framed bytes into `buffer` and compacts the chunk data to its front (data never moves right, so the
    /// framing is removed in place). Inside a chunk it reads exactly the chunk's remaining data, which lands where
    /// it belongs; when framing comes next it reads as much as fits, and the data after the framing moves left by
    /// the framing's length (one pass over those bytes, what a buffered socket read would cost anyway).
    ///
    /// It keeps reading until at least `fillTarget` (or the whole buffer, if smaller) is payload: with the usual
    /// 64 KiB chunks, returning at every chunk boundary would hand the sealer small, misaligned pieces and
    /// double the reads. When the payload completes the declared length, it first reads and verifies the rest of
    /// the body (final chunk, trailer, signatures).
    private func readDecoded(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let decodedLength = declaredLength, buffer.count > 0 else { return 0 }
        let target = min(buffer.count, Self.fillTarget)
        var produced = 0
        while true {
            let space = buffer.count - produced
            let limit = decoder!.dataRemaining.map { Int(min($0, Int64(space))) } ?? space
            let region = UnsafeMutableRawBufferPointer(rebasing: buffer[produced..<(produced + limit)])
            let n = try inner.read(into: region)
            guard n > 0 else { throw S3Error.incompleteBody() }
            bytesRead += Int64(n)
            produced += try decodeInPlace(region, count: n)
            if decoder!.isDone {
                try finish()
                return produced
            }
            if payloadBytes == decodedLength {
                try drainFraming()
                return produced
            }
            if produced >= target { return produced }
        }
    }

    /// How much payload a read of an aws-chunked body gathers before it returns (less only at the end).
    static let fillTarget = 128 << 10

    /// Feeds `buffer[0..<count]` to the decoder; returns how many payload bytes now sit at the buffer's front.
    private func decodeInPlace(_ buffer: UnsafeMutableRawBufferPointer, count: Int) throws -> Int {
        var out = 0
        var position = 0
        while position < count {
            let (consumed, event) = try feed(UnsafeRawBufferPointer(rebasing: buffer[position..<count]))
            if case .data(let range) = event {
                let length = range.count
                let source = buffer.baseAddress! + position + range.lowerBound
                if out != position + range.lowerBound {
                    (buffer.baseAddress! + out).copyMemory(from: UnsafeRawPointer(source), byteCount: length)
                }
                try consume(UnsafeRawBufferPointer(start: buffer.baseAddress! + out, count: length))
                out += length
            }
            position += consumed
        }
        return out
    }

    /// After the last payload byte: reads the rest of the framing into a scratch buffer until the body ends.
    private func drainFraming() throws {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while !decoder!.isDone {
            let n = try scratch.withUnsafeMutableBytes { try inner.read(into: $0) }
            guard n > 0 else { throw S3Error.incompleteBody() }
            bytesRead += Int64(n)
            let produced = try scratch.withUnsafeMutableBytes { try decodeInPlace($0, count: n) }
            // More chunk data than x-amz-decoded-content-length is caught in `feed`; this cannot produce.
            precondition(produced == 0, "payload past the declared length")
        }
        try finish()
    }

    /// One decoder step plus what the event means for signatures and lengths.
    private func feed(_ input: UnsafeRawBufferPointer) throws -> (Int, AWSChunkedEvent) {
        let result: (consumed: Int, event: AWSChunkedEvent)
        do {
            result = try decoder!.feed(input)
        } catch {
            throw S3Error.malformedAWSChunked(error)
        }
        switch result.event {
        case .needMore, .data:
            break
        case .chunk(let size, let signature):
            guard size <= declaredLength! - payloadBytes else {
                throw S3Error.invalidRequest("The aws-chunked body carries more data than its x-amz-decoded-content-length.")
            }
            try digests.beginChunk(signature: signature, empty: size == 0)
        case .chunkEnd:
            try digests.endChunk()
        case .trailer(let name, let value):
            trailerFields.append((name: name, value: value))
        case .end(let trailerSignature):
            if let trailerSignature { try digests.verifyTrailer(fields: trailerFields, signature: trailerSignature) }
        }
        return result
    }

    // MARK: End of body

    private func finish() throws(S3Error) {
        ended = true
        if let declared = declaredLength, decoder != nil, payloadBytes != declared { throw S3Error.incompleteBody() }
        let results = try digests.finish()
        if let expected = declaration.sha256, let actual = results.sha256 {
            guard ConstantTime.equals(actual, expected) else { throw S3Error.contentSHA256Mismatch() }
        }
        if let expected = declaration.contentMD5, let actual = results.md5 {
            guard ConstantTime.equals(actual, expected) else { throw S3Error.badDigest() }
        }
        try finishChecksum(results.checksum)
        payloadMD5 = results.md5
    }

    private func finishChecksum(_ computed: ChecksumValue?) throws(S3Error) {
        var declared: ChecksumValue?
        var trailerAlgorithm: ChecksumAlgorithm?
        switch declaration.checksum {
        case .none, .compute: break
        case .header(let value): declared = value
        case .trailer(let algorithm): trailerAlgorithm = algorithm
        }
        for field in trailerFields {
            guard let algorithm = ChecksumAlgorithm(headerName: field.name), algorithm == trailerAlgorithm, declared == nil else {
                throw S3Error.invalidRequest("The trailer \(field.name) was not announced in x-amz-trailer.")
            }
            declared = try ChecksumValue.parse(algorithm, base64: field.value)
        }
        if let trailerAlgorithm, declared == nil {
            throw S3Error.invalidRequest("The trailer announced in x-amz-trailer (\(trailerAlgorithm.headerName)) is missing.")
        }
        guard let computed else { return }
        if let declared {
            guard ConstantTime.equals(computed.bytes, declared.bytes) else { throw S3Error.checksumMismatch(computed.algorithm) }
        }
        verifiedChecksum = computed
    }
}
