import Foundation
import Shared

/// The checksum algorithms of S3's "flexible checksums" (`x-amz-checksum-<name>` headers and trailers).
enum ChecksumAlgorithm: String, CaseIterable, Sendable {
    case crc32 = "CRC32"
    case crc32c = "CRC32C"
    case crc64nvme = "CRC64NVME"
    case sha1 = "SHA1"
    case sha256 = "SHA256"

    /// `x-amz-checksum-crc32`, ...
    var headerName: String { "x-amz-checksum-" + rawValue.lowercased() }

    /// Bytes of the raw checksum (its base64 form is what travels).
    var byteCount: Int {
        switch self {
        case .crc32, .crc32c: return 4
        case .crc64nvme: return 8
        case .sha1: return 20
        case .sha256: return 32
        }
    }

    /// The algorithm of an `x-amz-checksum-*` header name (any case); nil for other names,
    /// including `x-amz-checksum-type` and `x-amz-checksum-algorithm`, which are not values.
    /// Runs on every header of every request (PayloadDeclaration), so it looks at the prefix in place first:
    /// building and lower-casing the five candidate names per header cost ≈ 29k instructions per GET (issue 12).
    init?(headerName: String) {
        let prefixLength = 15  // "x-amz-checksum-"
        guard headerName.utf8.count > prefixLength, headerName.caseInsensitiveHasPrefix("x-amz-checksum-"),
              let suffix = String(headerName.utf8.dropFirst(prefixLength)),
              let match = Self.allCases.first(where: { $0.rawValue.caseInsensitiveEquals(suffix) })
        else { return nil }
        self = match
    }

    /// The algorithm named by `x-amz-sdk-checksum-algorithm` / `x-amz-checksum-algorithm` (any case).
    init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.rawValue.caseInsensitiveEquals(name) }) else { return nil }
        self = match
    }
}

/// One checksum value: what a client declared, or what the gateway computed.
struct ChecksumValue: Sendable, Equatable {
    var algorithm: ChecksumAlgorithm
    var bytes: [UInt8]

    /// The header form: base64 of the raw bytes.
    var base64: String { Data(bytes).base64EncodedString() }

    /// Parses a declared value; `InvalidRequest` (as S3 answers) when it is not base64 of the right length.
    static func parse(_ algorithm: ChecksumAlgorithm, base64 text: String) throws(S3Error) -> ChecksumValue {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let data = Data(base64Encoded: trimmed), data.count == algorithm.byteCount else {
            throw S3Error.invalidRequest("Value for \(algorithm.headerName) header is invalid.")
        }
        return ChecksumValue(algorithm: algorithm, bytes: Array(data))
    }
}

/// A running checksum over streamed bytes.
final class RunningChecksum {
    let algorithm: ChecksumAlgorithm
    private var crc32: UInt32 = 0
    private var crc64: UInt64 = 0
    private var digest: Digest?

    init(_ algorithm: ChecksumAlgorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .sha1: digest = Digest(.sha1)
        case .sha256: digest = Digest(.sha256)
        case .crc32, .crc32c, .crc64nvme: digest = nil
        }
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        switch algorithm {
        case .crc32: crc32 = ZlibCRC32.update(crc32, bytes)
        case .crc32c: crc32 = CRC32Engine.castagnoli.update(crc32, bytes)
        case .crc64nvme: crc64 = CRC64Engine.nvme.update(crc64, bytes)
        case .sha1, .sha256: digest?.update(bytes)
        }
    }

    /// The checksum of everything passed to `update`; call once.
    func finalize() -> ChecksumValue {
        let bytes: [UInt8]
        switch algorithm {
        case .crc32, .crc32c: bytes = withUnsafeBytes(of: crc32.bigEndian) { Array($0) }
        case .crc64nvme: bytes = withUnsafeBytes(of: crc64.bigEndian) { Array($0) }
        case .sha1, .sha256: bytes = digest.take()!.finalize()
        }
        return ChecksumValue(algorithm: algorithm, bytes: bytes)
    }

    /// One-shot checksum of `bytes`.
    static func compute<Bytes: ContiguousBytes>(_ algorithm: ChecksumAlgorithm, _ bytes: Bytes) -> ChecksumValue {
        let running = RunningChecksum(algorithm)
        bytes.withUnsafeBytes { running.update($0) }
        return running.finalize()
    }
}

extension S3Error {
    /// A flexible checksum that does not match the body (S3's wording).
    static func checksumMismatch(_ algorithm: ChecksumAlgorithm) -> S3Error {
        S3Error(code: "BadDigest", message: "The \(algorithm.rawValue) you specified did not match the calculated checksum.", status: 400)
    }
}
