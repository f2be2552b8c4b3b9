/// The constants of format version 1 (docs/FORMAT.md). Changing any of them changes the format.
enum FormatV1 {
    static let version = "1"
    static let versionByte: UInt8 = 1

    /// Backend user-metadata names, as S3 lowercases them.
    static let metadataPrefix = "x-amz-meta-s3eg-"
    static let versionHeader = "x-amz-meta-s3eg-version"
    static let cipherHeader = "x-amz-meta-s3eg-cipher"
    static let chunkSizeHeader = "x-amz-meta-s3eg-chunk-size"
    static let keyIDHeader = "x-amz-meta-s3eg-key-id"
    static let wrappedKeyHeader = "x-amz-meta-s3eg-wrapped-key"
    static let layoutHeader = "x-amz-meta-s3eg-layout"
    static let saltHeader = "x-amz-meta-s3eg-salt"
    static let etagHeader = "x-amz-meta-s3eg-etag"

    static let defaultChunkSize = 65536
    static let minChunkSize = 4096
    static let maxChunkSize = 16 * 1024 * 1024
    static let tagSize = 16

    static let keyIDSize = 8
    static let dataKeySize = 32
    static let saltSize = 16
    static let wrapNonceSize = 12
    /// nonce || encrypted DEK || tag
    static let wrappedKeySize = wrapNonceSize + dataKeySize + tagSize

    // Key derivation (§2).
    static let kdfSalt = Array("s3-encryption-gateway/v1/kek".utf8)
    static let scryptN: UInt64 = 1 << 15
    static let scryptR: UInt32 = 8
    static let scryptP: UInt32 = 1
    static let kekInfo = Array("s3eg/v1 kek".utf8)
    static let keyIDInfo = Array("s3eg/v1 key-id".utf8)

    // Wrap and chunk domain separation (§4, §5).
    static let wrapAADLabel = Array("s3eg/v1 dek".utf8) + [0x00]
    static let segmentInfoLabel = Array("s3eg/v1 segment".utf8)
    static let chunkAADMagic = Array("s3eg".utf8)
    static let chunkAADSize = 24
    static let finalNonceFlag: UInt8 = 0x80

    // Multipart part header (§9).
    static let partHeaderSize = 36
    static let partHeaderType = UInt8(ascii: "P")
    static let maxPartNumber = 10_000
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}
