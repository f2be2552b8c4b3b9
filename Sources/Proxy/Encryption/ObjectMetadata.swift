import Foundation
import Shared

/// How an object's body is laid out (docs/FORMAT.md §5, §9).
public enum ObjectLayout: Sendable, Equatable {
    /// One segment (part number 0) whose 16-byte salt lives in the metadata.
    case single(salt: [UInt8])
    /// One segment per part, each behind a 36-byte part header holding its salt.
    case multipart

    public enum Kind: UInt8, Sendable {
        case single = 1
        case multipart = 2

        var name: String { self == .single ? "single" : "multipart" }
    }

    public var kind: Kind {
        switch self {
        case .single: return .single
        case .multipart: return .multipart
        }
    }
}

/// The version of the metadata format (`x-amz-meta-s3eg-version`). Both share the body format of version 1.
public enum FormatVersion: Int, Sendable, Comparable {
    case v1 = 1
    case v2 = 2

    public static let current = FormatVersion.v2

    public static func < (a: FormatVersion, b: FormatVersion) -> Bool { a.rawValue < b.rawValue }
}

/// A flexible-checksum record (docs/FORMAT.md §8): the algorithm S3 names (`CRC32`, `CRC32C`, `CRC64NVME`,
/// `SHA1`, `SHA256`) and the checksum of the whole plaintext. Stored as `ALGORITHM:base64`.
public struct ChecksumRecord: Sendable, Equatable {
    /// `[A-Z0-9]{1,16}`.
    public let algorithm: String
    /// 1…64 bytes.
    public let value: [UInt8]

    public init(algorithm: String, value: [UInt8]) throws(EncryptionError) {
        let bytes = Array(algorithm.utf8)
        guard (1...FormatV2.maxChecksumAlgorithmLength).contains(bytes.count),
              bytes.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) }) else {
            throw EncryptionError(.invalidParameter, "checksum algorithm \"\(algorithm.prefix(20))\" is not 1…16 of [A-Z0-9]")
        }
        guard (1...FormatV2.maxChecksumValueLength).contains(value.count) else {
            throw EncryptionError(.invalidParameter, "a checksum value has 1…\(FormatV2.maxChecksumValueLength) bytes, got \(value.count)")
        }
        self.algorithm = algorithm
        self.value = value
    }

    /// The header value, `ALGORITHM:base64`.
    public var text: String { algorithm + ":" + Data(value).base64EncodedString() }

    static func parse(_ text: String) throws(EncryptionError) -> ChecksumRecord {
        guard let colon = text.firstIndex(of: ":") else { throw EncryptionMetadata.malformed("checksum record has no ':'") }
        let value = try EncryptionMetadata.canonicalBase64(String(text[text.index(after: colon)...]), field: "checksum value",
                                                           range: 1...FormatV2.maxChecksumValueLength)
        do {
            return try ChecksumRecord(algorithm: String(text[..<colon]), value: value)
        } catch {
            throw EncryptionMetadata.malformed(error.message)
        }
    }
}

/// The gateway's metadata of one encrypted object, and its codec to and from backend `x-amz-meta-s3eg-*`
/// headers (docs/FORMAT.md §3). Parsing checks the grammar only: the wrap and (version 2) the MAC are checked
/// by `ObjectEncryptor.dataKey(of:identity:)`, so records are trusted only after that succeeded.
public struct EncryptionMetadata: Sendable, Equatable {
    public var version: FormatVersion
    public var cipher: AEADAlgorithm
    public var chunkSize: Int
    public var layout: ObjectLayout
    /// The wrapped data key and the key that wrapped it. Version 1: provider `password`, the 16-hex-digit key id.
    public var wrappedKey: WrappedDataKey
    /// ETag record: MD5 of the plaintext. Version 1 stores it outside every MAC (`authenticatedMD5` is nil then).
    public var plaintextMD5: [UInt8]?
    /// Flexible-checksum record (version 2 only).
    public var checksum: ChecksumRecord?
    /// Version 2: HMAC-SHA256 over everything else (§4); set by `ObjectEncryptor`, nil while being built.
    public var mac: [UInt8]?

    public init(version: FormatVersion = .current, cipher: AEADAlgorithm, chunkSize: Int, layout: ObjectLayout,
                wrappedKey: WrappedDataKey, plaintextMD5: [UInt8]? = nil, checksum: ChecksumRecord? = nil, mac: [UInt8]? = nil) {
        self.version = version
        self.cipher = cipher
        self.chunkSize = chunkSize
        self.layout = layout
        self.wrappedKey = wrappedKey
        self.plaintextMD5 = plaintextMD5
        self.checksum = checksum
        self.mac = mac
    }

    /// The plaintext MD5 of a version 2 object, authenticated by its MAC: trust it only after
    /// `ObjectEncryptor.dataKey(of:identity:)` succeeded for this metadata. Nil for version 1.
    public var authenticatedMD5: [UInt8]? { version >= .v2 ? plaintextMD5 : nil }

    /// The key reference (`provider`, `key-id`, intermediate key).
    public var keyReference: KeyReference { wrappedKey.reference }

    /// The chunk geometry; valid by construction for parsed metadata.
    public var chunkLayout: ChunkLayout {
        get throws(EncryptionError) { try ChunkLayout(chunkSize: chunkSize) }
    }

    /// What the version 1 DEK wrap of this object under `identity` authenticates.
    public func binding(for identity: ObjectIdentity) -> WrapBinding {
        WrapBinding(identity: identity, cipher: cipher, chunkSize: chunkSize, layout: layout.kind)
    }

    /// True for header names the gateway owns; the HTTP layer must not accept them from clients
    /// nor return them to clients.
    public static func isReserved(headerName: String) -> Bool {
        // Compared on the contiguous UTF-8 (ASCII case folded), not through `lowercased()` or a `UTF8View`
        // iterator: every header of every backend answer passes here (several times on a GET), and most are
        // not ours — shorter than the prefix, or different in its first byte.
        // The prefix is 16 bytes: two word compares (issue 12: this ran ~200 instructions per `x-amz-*` name).
        let fast = headerName.utf8.withContiguousStorageIfAvailable { hasReservedPrefix(UnsafeRawBufferPointer($0)) }
        return fast ?? headerName.caseInsensitiveHasPrefix(FormatV1.metadataPrefix)
    }

    /// `FormatV1.metadataPrefix` (`x-amz-meta-s3eg-`) as two little-endian words, and the case bit (0x20) of each
    /// of its letters: OR-ing a byte with 0x20 maps exactly its ASCII upper-case letter onto the lower-case one,
    /// so a name matches in any ASCII case and in nothing else (tests derive these from the prefix).
    /// Computed, not stored: a literal the compiler folds in, no lazy-initialisation check per use.
    static var reservedPrefixWords: (low: UInt64, high: UInt64) { (0x656d_2d7a_6d61_2d78, 0x2d67_6533_732d_6174) }
    static var reservedPrefixCaseBits: (low: UInt64, high: UInt64) { (0x2020_0020_2020_0020, 0x0020_2000_2000_2020) }

    /// Whether a header name's UTF-8 starts with the reserved prefix, ASCII case-insensitively.
    @inline(__always)
    static func hasReservedPrefix(_ name: UnsafeRawBufferPointer) -> Bool {
        guard name.count >= 16 else { return false }
        let low = UInt64(littleEndian: name.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        let high = UInt64(littleEndian: name.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        return low | reservedPrefixCaseBits.low == reservedPrefixWords.low && high | reservedPrefixCaseBits.high == reservedPrefixWords.high
    }

    /// Backend headers (lowercase names) to store with the object.
    public var headers: [String: String] {
        Dictionary(uniqueKeysWithValues: fields.map { ($0.name, $0.value) })
    }

    /// `headers` as a list sorted by name (bytewise), the MAC's order: what an upload sends, built once per
    /// upload instead of a dictionary per use (issue 12).
    public var fields: [(name: String, value: String)] { fields(withMAC: true) }

    /// Every field but the MAC, sorted by name (bytewise): the fields the version 2 MAC covers, in its order.
    var fieldsWithoutMAC: [(name: String, value: String)] { fields(withMAC: false) }

    /// The fields appended in the bytewise order of their names (checksum < chunk-size < cipher < etag < ik <
    /// key-id < layout < mac < provider < salt < version < wrapped-key), so nothing is sorted per upload;
    /// `FormatV2Tests` checks the order.
    private func fields(withMAC: Bool) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        out.reserveCapacity(12)
        let v2 = version >= .v2
        if v2, let checksum { out.append((FormatV2.checksumHeader, checksum.text)) }
        out.append((FormatV1.chunkSizeHeader, String(chunkSize)))
        out.append((FormatV1.cipherHeader, cipher.name))
        if let md5 = plaintextMD5 { out.append((FormatV1.etagHeader, Encoding.hex(md5))) }
        if v2, let ik = wrappedKey.reference.wrappedIntermediateKey {
            out.append((FormatV2.intermediateKeyHeader, Data(ik).base64EncodedString()))
        }
        out.append((FormatV1.keyIDHeader, wrappedKey.reference.keyID))
        out.append((FormatV1.layoutHeader, layout.kind.name))
        if withMAC, let mac { out.append((FormatV2.macHeader, Data(mac).base64EncodedString())) }
        if v2 { out.append((FormatV2.providerHeader, wrappedKey.reference.provider)) }
        if case .single(let salt) = layout { out.append((FormatV1.saltHeader, Encoding.hex(salt))) }
        out.append((FormatV1.versionHeader, String(version.rawValue)))
        out.append((FormatV1.wrappedKeyHeader, Data(wrappedKey.bytes).base64EncodedString()))
        return out
    }

    /// Bytes these headers count against S3's 2 KB user-metadata limit (name without `x-amz-meta-` plus value),
    /// including room for the records a version 2 object may receive after its upload (ETag, checksum), so
    /// that attaching them never pushes an object over the limit.
    public var metadataBudget: Int {
        var total = fields.reduce(0) { $0 + $1.name.utf8.count - "x-amz-meta-".utf8.count + $1.value.utf8.count }
        if version >= .v2 {
            // A version 2 header set is always sealed; count the MAC even while it is being built.
            if mac == nil { total += FormatV2.macHeader.utf8.count - "x-amz-meta-".utf8.count + 44 }
            if plaintextMD5 == nil { total += 9 + 32 }
            if checksum == nil { total += FormatV2.recordReserve - (9 + 32) }
        }
        return total
    }

    /// Parses the gateway fields out of an object's headers (any other headers are ignored).
    /// Returns nil when there is no `x-amz-meta-s3eg-version` header: the object is plain.
    public static func parse(headers: [String: String]) throws(EncryptionError) -> EncryptionMetadata? {
        try parse(fields: headers.map { ($0.key, $0.value) })
    }

    /// As `parse(headers:)`, for header lists that may repeat a name (duplicates are malformed).
    public static func parse(fields: [(name: String, value: String)]) throws(EncryptionError) -> EncryptionMetadata? {
        var ours: [String: String] = [:]
        for (name, value) in fields where isReserved(headerName: name) {
            let lower = name.lowercased()
            guard ours[lower] == nil else { throw malformed("header \(lower) appears twice") }
            ours[lower] = value
        }
        guard let versionText = ours.removeValue(forKey: FormatV1.versionHeader) else {
            if let stray = ours.keys.sorted().first {
                throw malformed("\(stray) present without \(FormatV1.versionHeader)")
            }
            return nil
        }
        let version: FormatVersion
        switch versionText {
        case FormatV1.version: version = .v1
        case FormatV2.version: version = .v2
        default:
            throw EncryptionError(.unsupportedVersion, "object format version \"\(versionText.prefix(16))\" is not supported by this gateway (it reads versions 1 and 2); upgrade the gateway")
        }
        func take(_ name: String) throws(EncryptionError) -> String {
            guard let value = ours.removeValue(forKey: name) else { throw malformed("missing \(name)") }
            return value
        }
        let cipherName = try take(FormatV1.cipherHeader)
        guard let cipher = AEADAlgorithm(name: cipherName) else { throw malformed("unknown cipher \"\(cipherName.prefix(32))\"") }

        let chunkText = try take(FormatV1.chunkSizeHeader)
        guard let chunkSize = strictDecimal(chunkText),
              chunkSize >= FormatV1.minChunkSize, chunkSize <= FormatV1.maxChunkSize else {
            throw malformed("chunk size \"\(chunkText.prefix(32))\" is not a decimal in \(FormatV1.minChunkSize)…\(FormatV1.maxChunkSize)")
        }
        let layoutText = try take(FormatV1.layoutHeader)
        let layout: ObjectLayout
        switch layoutText {
        case "single":
            layout = .single(salt: try lowerHex(take(FormatV1.saltHeader), bytes: FormatV1.saltSize, field: "salt"))
        case "multipart":
            guard ours[FormatV1.saltHeader] == nil else { throw malformed("a multipart object has no salt header") }
            layout = .multipart
        default:
            throw malformed("layout \"\(layoutText.prefix(32))\" is neither single nor multipart")
        }

        let wrappedKey: WrappedDataKey
        var checksum: ChecksumRecord?
        var mac: [UInt8]?
        switch version {
        case .v1:
            let keyID = try lowerHex(take(FormatV1.keyIDHeader), bytes: FormatV1.keyIDSize, field: "key id")
            let wrapped = try canonicalBase64(take(FormatV1.wrappedKeyHeader), field: "wrapped key",
                                              range: FormatV1.wrappedKeySize...FormatV1.wrappedKeySize)
            wrappedKey = try fieldChecked { () throws(EncryptionError) in
                try WrappedDataKey(reference: KeyReference(provider: FormatV2.passwordProvider, keyID: Encoding.hex(keyID)), bytes: wrapped)
            }
        case .v2:
            let provider = try take(FormatV2.providerHeader)
            let keyID = try take(FormatV1.keyIDHeader)
            let ik = try ours.removeValue(forKey: FormatV2.intermediateKeyHeader).map { (text) throws(EncryptionError) in
                try canonicalBase64(text, field: "intermediate key", range: 1...FormatV2.maxWrappedLength)
            }
            let wrapped = try canonicalBase64(take(FormatV1.wrappedKeyHeader), field: "wrapped key", range: 1...FormatV2.maxWrappedLength)
            wrappedKey = try fieldChecked { () throws(EncryptionError) in
                try WrappedDataKey(reference: KeyReference(provider: provider, keyID: keyID, wrappedIntermediateKey: ik), bytes: wrapped)
            }
            checksum = try ours.removeValue(forKey: FormatV2.checksumHeader).map { (text) throws(EncryptionError) in
                try ChecksumRecord.parse(text)
            }
            mac = try canonicalBase64(take(FormatV2.macHeader), field: "mac", range: FormatV2.macSize...FormatV2.macSize)
        }
        var md5: [UInt8]?
        if let etag = ours.removeValue(forKey: FormatV1.etagHeader) {
            md5 = try lowerHex(etag, bytes: 16, field: "etag")
        }
        if let unknown = ours.keys.sorted().first {
            throw malformed("unknown gateway header \(unknown.prefix(64)) in a version \(version.rawValue) object")
        }
        return EncryptionMetadata(version: version, cipher: cipher, chunkSize: chunkSize, layout: layout, wrappedKey: wrappedKey,
                                  plaintextMD5: md5, checksum: checksum, mac: mac)
    }

    static func malformed(_ message: String) -> EncryptionError {
        EncryptionError(.malformedMetadata, "gateway metadata is damaged: \(message)")
    }

    /// Runs a constructor whose `invalidParameter` errors describe damaged metadata.
    private static func fieldChecked<T>(_ body: () throws(EncryptionError) -> T) throws(EncryptionError) -> T {
        do {
            return try body()
        } catch {
            throw malformed(error.message)
        }
    }

    /// Standard base64 with padding, exactly as the gateway writes it (so every value has one encoding).
    static func canonicalBase64(_ text: String, field: String, range: ClosedRange<Int>) throws(EncryptionError) -> [UInt8] {
        guard text.utf8.count <= (range.upperBound + 2) / 3 * 4, let data = Data(base64Encoded: text),
              range.contains(data.count), data.base64EncodedString() == text else {
            throw malformed("\(field) is not canonical base64 of \(range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)…\(range.upperBound)") bytes")
        }
        return Array(data)
    }

    /// Digits only, no sign, no leading zero, at most 9 digits.
    private static func strictDecimal(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 9, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        guard bytes.count == 1 || bytes[0] != 0x30 else { return nil }
        return bytes.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    private static func lowerHex(_ text: String, bytes count: Int, field: String) throws(EncryptionError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        guard utf8.count == count * 2,
              utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
              let bytes = Encoding.fromHex(text) else {
            throw malformed("\(field) is not \(count * 2) lowercase hex digits")
        }
        return bytes
    }
}
