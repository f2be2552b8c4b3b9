/// The 36-byte header in front of each part of a multipart object (docs/FORMAT.md §9):
/// `"s3eg" || 0x01 || "P" || 0x00 0x00 || u32be(partNumber) || u64be(plaintextLength) || salt(16)`.
public struct PartHeader: Sendable, Equatable {
    public static let size = FormatV1.partHeaderSize

    public let partNumber: Int
    public let plaintextLength: Int
    public let salt: [UInt8]

    public init(partNumber: Int, plaintextLength: Int, salt: [UInt8]) throws(EncryptionError) {
        guard partNumber >= 1, partNumber <= FormatV1.maxPartNumber else {
            throw EncryptionError(.invalidParameter, "part number \(partNumber) outside 1…\(FormatV1.maxPartNumber)")
        }
        guard plaintextLength >= 0 else { throw EncryptionError(.invalidParameter, "negative part length") }
        guard salt.count == FormatV1.saltSize else {
            throw EncryptionError(.invalidParameter, "a part salt has \(FormatV1.saltSize) bytes, got \(salt.count)")
        }
        self.partNumber = partNumber
        self.plaintextLength = plaintextLength
        self.salt = salt
    }

    public var bytes: [UInt8] {
        var out = FormatV1.chunkAADMagic
        out.append(FormatV1.versionByte)
        out.append(FormatV1.partHeaderType)
        out.append(contentsOf: [0, 0])
        out.appendBigEndian(UInt32(partNumber))
        out.appendBigEndian(UInt64(plaintextLength))
        out.append(contentsOf: salt)
        return out
    }

    /// Strict decoding of exactly `PartHeader.size` bytes.
    public static func parse(_ bytes: some Collection<UInt8>) throws(EncryptionError) -> PartHeader {
        let b = Array(bytes)
        guard b.count == size else { throw malformed("a part header has \(size) bytes, got \(b.count)") }
        guard Array(b[0..<4]) == FormatV1.chunkAADMagic else { throw malformed("bad part header magic") }
        guard b[4] == FormatV1.versionByte else {
            throw EncryptionError(.unsupportedVersion, "part header version \(b[4]) is not supported")
        }
        guard b[5] == FormatV1.partHeaderType, b[6] == 0, b[7] == 0 else { throw malformed("bad part header type or reserved bytes") }
        let partNumber = b[8..<12].reduce(0) { $0 << 8 | Int($1) }
        let length = b[12..<20].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(Int.max / 2) else { throw malformed("part length \(length) is impossible") }
        do {
            return try PartHeader(partNumber: partNumber, plaintextLength: Int(length), salt: Array(b[20..<36]))
        } catch {
            throw malformed(error.message)
        }
    }

    private static func malformed(_ message: String) -> EncryptionError {
        EncryptionError(.malformedCiphertext, message)
    }
}
