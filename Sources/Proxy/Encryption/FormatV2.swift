/// The constants format version 2 adds (docs/FORMAT.md). Version 2 changes the metadata only: bodies,
/// segment keys, chunk nonces/AADs and part headers are version 1's (`FormatV1`), byte for byte.
enum FormatV2 {
    static let version = "2"

    // Metadata names new in version 2 (§3).
    static let providerHeader = "x-amz-meta-s3eg-provider"
    static let intermediateKeyHeader = "x-amz-meta-s3eg-ik"
    static let checksumHeader = "x-amz-meta-s3eg-checksum"
    static let macHeader = "x-amz-meta-s3eg-mac"

    // Key reference grammar (§4).
    static let maxProviderLength = 32
    static let maxKeyIDLength = 256
    static let maxWrappedLength = 1024

    // Records (§8).
    static let maxChecksumAlgorithmLength = 16
    static let maxChecksumValueLength = 64

    // Domain separation.
    static let wrapAADLabel = Array("s3eg/v2 dek".utf8) + [0x00]
    static let macKeyInfo = Array("s3eg/v2 metadata-mac".utf8)
    static let macLabel = Array("s3eg/v2 metadata".utf8) + [0x00]
    static let macSize = 32
    static let uploadKeyInfo = Array("s3eg/v2 upload-id".utf8)
    static let uploadLabel = Array("s3eg/v2 upload-id".utf8) + [0x00]
    static let uploadMACSize = 16

    /// The provider name of keys derived from a password (§2).
    static let passwordProvider = "password"

    /// Room kept free in S3's 2 KB metadata budget for records attached after the upload:
    /// `s3eg-etag` (9 + 32) and `s3eg-checksum` (13 + algorithm, colon and base64 value).
    static let recordReserve = (9 + 32) + (13 + maxChecksumAlgorithmLength + 1 + ((maxChecksumValueLength + 2) / 3) * 4)
}

extension Array where Element == UInt8 {
    /// `u32be(len(bytes)) || bytes`, the length-prefixed field of the version 2 AADs and MACs.
    mutating func appendField(_ bytes: some Collection<UInt8>) {
        appendBigEndian(UInt32(truncatingIfNeeded: bytes.count))
        append(contentsOf: bytes)
    }

    mutating func appendField(_ text: String) {
        appendField(text.utf8)
    }
}
