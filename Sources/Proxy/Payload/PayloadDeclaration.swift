import Foundation
import Shared

/// What a request's headers commit its body to, parsed and validated before a byte of the body is read:
/// the framing (plain, or one of the aws-chunked modes with its decoded length and signature chain),
/// the signed SHA-256, `Content-MD5`, and at most one flexible checksum (a header value, a trailer, or
/// only an algorithm the gateway computes itself).
struct PayloadDeclaration: Sendable {
    enum Framing: Sendable {
        /// The body is the payload; its length is the Content-Length (nil: HTTP chunked).
        case plain
        /// aws-chunked framing around `decodedLength` payload bytes; `chain` for the signed modes.
        case awsChunked(AWSChunkedMode, decodedLength: Int64, chain: ChunkSignatureChain?)
    }

    enum Checksum: Sendable, Equatable {
        case none
        /// `x-amz-checksum-<alg>` sent as a header.
        case header(ChecksumValue)
        /// Announced by `x-amz-trailer`, sent in the aws-chunked trailer.
        case trailer(ChecksumAlgorithm)
        /// Only `x-amz-sdk-checksum-algorithm`: the gateway computes the value (as S3 does).
        case compute(ChecksumAlgorithm)

        var algorithm: ChecksumAlgorithm? {
            switch self {
            case .none: return nil
            case .header(let v): return v.algorithm
            case .trailer(let a), .compute(let a): return a
            }
        }
    }

    var framing: Framing = .plain
    /// The signed `x-amz-content-sha256` of a plain body.
    var sha256: [UInt8]?
    var contentMD5: [UInt8]?
    var checksum: Checksum = .none

    /// Headers the gateway consumes here and never forwards: the backend stores ciphertext (or, in
    /// pass-through mode, a body that is no longer framed), so they would describe the wrong bytes.
    static let consumedHeaders = ["x-amz-decoded-content-length", "x-amz-trailer", "x-amz-sdk-checksum-algorithm"]

    /// Whether `name` (any case) is consumed here: one of `consumedHeaders` or a checksum value header.
    /// Runs for every header of every request, so it compares bytes in place: no lowercased copy, and
    /// `ChecksumAlgorithm` only for the `x-amz-checksum-` family.
    static func isConsumed(_ name: String) -> Bool {
        let length = name.utf8.count
        if consumedHeaders.contains(where: { $0.utf8.count == length && name.caseInsensitiveEquals($0) }) { return true }
        return length > 15 && name.caseInsensitiveHasPrefix("x-amz-checksum-") && ChecksumAlgorithm(headerName: name) != nil
    }

    /// - Parameters:
    ///   - payload: the verified `x-amz-content-sha256` mode.
    ///   - chain: the chunk signature chain of a SigV4 header-authenticated request (nil for other schemes).
    static func parse(headers: HTTPFields, payload: PayloadMode, chain: ChunkSignatureChain?) throws(S3Error) -> PayloadDeclaration {
        var declaration = PayloadDeclaration()
        let fields = DeclaringFields(headers)
        if let md5 = fields.contentMD5 {
            guard let data = Data(base64Encoded: md5.trimmingCharacters(in: .whitespaces)), data.count == 16 else {
                throw S3Error.invalidDigest()
            }
            declaration.contentMD5 = Array(data)
        }
        let awsChunkedEncoding = fields.contentEncodings
            .flatMap { $0.split(separator: ",") }
            .contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "aws-chunked" }
        var trailerAllowed = false
        switch payload {
        case .signedHash(let hash):
            declaration.sha256 = hash
        case .unsigned:
            break
        case .streaming(let value):
            guard let mode = AWSChunkedMode(rawValue: value) else {
                throw S3Error.notImplemented("x-amz-content-sha256: \(value) is not supported; use STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                    + "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or STREAMING-UNSIGNED-PAYLOAD-TRAILER.")
            }
            guard let text = fields.decodedContentLength else {
                throw S3Error.missingContentLength("aws-chunked uploads must send x-amz-decoded-content-length.")
            }
            guard text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let length = Int64(text) else {
                throw S3Error.invalidArgument("x-amz-decoded-content-length must be a whole number of bytes.")
            }
            var signatureChain: ChunkSignatureChain?
            if mode.chunksSigned {
                guard let chain else {
                    throw S3Error.invalidRequest("\(value) bodies need a request signed with an AWS4-HMAC-SHA256 Authorization header.")
                }
                signatureChain = chain
            }
            declaration.framing = .awsChunked(mode, decodedLength: length, chain: signatureChain)
            trailerAllowed = mode.allowsTrailer
        }
        if awsChunkedEncoding, case .plain = declaration.framing {
            // Framing the gateway was not told about would end up inside the stored object.
            throw S3Error.invalidRequest("Content-Encoding: aws-chunked needs x-amz-content-sha256: STREAMING-….")
        }
        declaration.checksum = try parseChecksum(fields, trailerAllowed: trailerAllowed)
        return declaration
    }

    private static func parseChecksum(_ fields: DeclaringFields, trailerAllowed: Bool) throws(S3Error) -> Checksum {
        var values: [ChecksumValue] = []
        for (algorithm, value) in fields.checksums {
            values.append(try ChecksumValue.parse(algorithm, base64: value))
        }
        guard values.count <= 1 else {
            throw S3Error.invalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
        }
        let trailerNames = fields.trailers.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        var trailer: ChecksumAlgorithm?
        for name in trailerNames {
            guard let algorithm = ChecksumAlgorithm(headerName: name) else {
                throw S3Error.invalidRequest("The trailer \(name) is not supported; only x-amz-checksum-* trailers are.")
            }
            guard trailer == nil else {
                throw S3Error.invalidRequest("Expecting a single x-amz-checksum- trailer. Multiple checksum Types are not allowed.")
            }
            trailer = algorithm
        }
        if trailer != nil, !trailerAllowed {
            throw S3Error.invalidRequest("x-amz-trailer needs an aws-chunked body with a trailer (x-amz-content-sha256: STREAMING-…-TRAILER).")
        }
        if trailer != nil, !values.isEmpty {
            throw S3Error.invalidRequest("Expecting a single x-amz-checksum- header or trailer, not both.")
        }
        var sdkAlgorithm: ChecksumAlgorithm?
        if let name = fields.sdkChecksumAlgorithm {
            guard let algorithm = ChecksumAlgorithm(name: name.trimmingCharacters(in: .whitespaces)) else {
                throw S3Error.invalidRequest("Value for x-amz-sdk-checksum-algorithm header is invalid.")
            }
            sdkAlgorithm = algorithm
        }
        let declared: Checksum
        if let value = values.first { declared = .header(value) }
        else if let trailer { declared = .trailer(trailer) }
        else if let sdkAlgorithm { return .compute(sdkAlgorithm) }
        else { return .none }
        if let sdkAlgorithm, sdkAlgorithm != declared.algorithm {
            throw S3Error.invalidRequest("Value for x-amz-sdk-checksum-algorithm header is invalid: it names \(sdkAlgorithm.rawValue) "
                + "but the checksum sent is \(declared.algorithm!.rawValue).")
        }
        return declared
    }

    /// The request headers as they go on after the body was verified: aws-chunked framing, checksums and
    /// their announcements removed (`aws-chunked` also from a Content-Encoding list that names more).
    static func forwardedHeaders(_ headers: HTTPFields) -> HTTPFields {
        // One allocation for the common case (nothing consumed), not one per doubling.
        // By index through the buffer: only forwarded fields are copied (retained).
        let out = headers.entries.withUnsafeBufferPointer { fields in
            var out: [(name: String, value: String)] = []
            out.reserveCapacity(fields.count)
            for i in fields.indices {
                if isConsumed(fields[i].name) { continue }
                if fields[i].name.utf8.count == 16 && fields[i].name.caseInsensitiveEquals("content-encoding") {
                    let rest = fields[i].value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                        .filter { !$0.isEmpty && $0.lowercased() != "aws-chunked" }
                    if !rest.isEmpty { out.append((name: fields[i].name, value: rest.joined(separator: ","))) }
                    continue
                }
                out.append(fields[i])
            }
            return out
        }
        return HTTPFields(out)
    }
}

/// The headers `PayloadDeclaration.parse` reads, gathered in one pass over the fields (the same answers
/// as `HTTPFields`' subscript — first value — and `values` — every value in order — for each name, but
/// one scan per request instead of six: the parse runs on every request).
struct DeclaringFields {
    var contentMD5: String?
    var contentEncodings: [String] = []
    var decodedContentLength: String?
    var trailers: [String] = []
    var sdkChecksumAlgorithm: String?
    /// `x-amz-checksum-<algorithm>` headers, in arrival order.
    var checksums: [(ChecksumAlgorithm, String)] = []

    init(_ headers: HTTPFields) {
        for field in headers {
            let name = field.name
            // The byte length picks the one or two candidate names before any byte is compared.
            switch name.utf8.count {
            case 11:
                if contentMD5 == nil, name.caseInsensitiveEquals("content-md5") { contentMD5 = field.value }
            case 13:
                if name.caseInsensitiveEquals("x-amz-trailer") { trailers.append(field.value) }
            case 16:
                if name.caseInsensitiveEquals("content-encoding") { contentEncodings.append(field.value) }
            case 28:
                if name.caseInsensitiveEquals("x-amz-decoded-content-length") {
                    if decodedContentLength == nil { decodedContentLength = field.value }
                } else if name.caseInsensitiveEquals("x-amz-sdk-checksum-algorithm") {
                    if sdkChecksumAlgorithm == nil { sdkChecksumAlgorithm = field.value }
                }
            default:
                break
            }
            if let algorithm = ChecksumAlgorithm(headerName: name) { checksums.append((algorithm, field.value)) }
        }
    }
}

extension S3Error {
    static func missingContentLength(_ message: String) -> S3Error {
        S3Error(code: "MissingContentLength", message: message, status: 411)
    }
    static func malformedAWSChunked(_ error: AWSChunkedError) -> S3Error {
        S3Error(code: "InvalidRequest", message: "The aws-chunked body is malformed: \(error.message).", status: 400)
    }
    static func chunkSignatureDoesNotMatch(_ what: String) -> S3Error {
        S3Error(code: "SignatureDoesNotMatch",
                message: "The \(what) signature we calculated does not match the signature you provided.", status: 403)
    }
}
