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

/// The gateway's metadata of one encrypted object (format version 1), and its codec to and
/// from backend `x-amz-meta-s3eg-*` headers.
public struct EncryptionMetadata: Sendable, Equatable {
    public var cipher: AEADAlgorithm
    public var chunkSize: Int
    public var keyID: [UInt8]
    /// wrapNonce (12) || encrypted DEK (32) || tag (16).
    public var wrappedKey: [UInt8]
    public var layout: ObjectLayout
    /// MD5 of the plaintext, returned as the ETag when present.
    public var plaintextMD5: [UInt8]?

    public init(cipher: AEADAlgorithm, chunkSize: Int, keyID: [UInt8], wrappedKey: [UInt8],
                layout: ObjectLayout, plaintextMD5: [UInt8]? = nil) {
        self.cipher = cipher
        self.chunkSize = chunkSize
        self.keyID = keyID
        self.wrappedKey = wrappedKey
        self.layout = layout
        self.plaintextMD5 = plaintextMD5
    }

    /// The chunk geometry; valid by construction for parsed metadata.
    public var chunkLayout: ChunkLayout {
        get throws(EncryptionError) { try ChunkLayout(chunkSize: chunkSize) }
    }

    /// What the DEK wrap of this object under `identity` authenticates.
    public func binding(for identity: ObjectIdentity) -> WrapBinding {
        WrapBinding(identity: identity, cipher: cipher, chunkSize: chunkSize, layout: layout.kind)
    }

    /// True for header names the gateway owns; the HTTP layer must not accept them from clients
    /// nor return them to clients.
    public static func isReserved(headerName: String) -> Bool {
        headerName.lowercased().hasPrefix(FormatV1.metadataPrefix)
    }

    /// Backend headers (lowercase names) to store with the object.
    public var headers: [String: String] {
        var out: [String: String] = [
            FormatV1.versionHeader: FormatV1.version,
            FormatV1.cipherHeader: cipher.name,
            FormatV1.chunkSizeHeader: String(chunkSize),
            FormatV1.keyIDHeader: Encoding.hex(keyID),
            FormatV1.wrappedKeyHeader: Data(wrappedKey).base64EncodedString(),
            FormatV1.layoutHeader: layout.kind.name,
        ]
        if case .single(let salt) = layout { out[FormatV1.saltHeader] = Encoding.hex(salt) }
        if let md5 = plaintextMD5 { out[FormatV1.etagHeader] = Encoding.hex(md5) }
        return out
    }

    /// Bytes these headers count against S3's 2 KB user-metadata limit (name without `x-amz-meta-` plus value).
    public var metadataBudget: Int {
        headers.reduce(0) { $0 + $1.key.utf8.count - "x-amz-meta-".utf8.count + $1.value.utf8.count }
    }

    /// Parses the gateway fields out of an object's headers (any other headers are ignored).
    /// Returns nil when there is no `x-amz-meta-s3eg-version` header: the object is plain.
    public static func parse(headers: [String: String]) throws(EncryptionError) -> EncryptionMetadata? {
        try parse(fields: headers.map { ($0.key, $0.value) })
    }

    /// As `parse(headers:)`, for header lists that may repeat a name (duplicates are malformed).
    public static func parse(fields: [(name: String, value: String)]) throws(EncryptionError) -> EncryptionMetadata? {
        var ours: [String: String] = [:]
        for (name, value) in fields {
            let lower = name.lowercased()
            guard lower.hasPrefix(FormatV1.metadataPrefix) else { continue }
            guard ours[lower] == nil else { throw malformed("header \(lower) appears twice") }
            ours[lower] = value
        }
        guard let version = ours.removeValue(forKey: FormatV1.versionHeader) else {
            if let stray = ours.keys.sorted().first {
                throw malformed("\(stray) present without \(FormatV1.versionHeader)")
            }
            return nil
        }
        guard version == FormatV1.version else {
            throw EncryptionError(.unsupportedVersion, "object format version \"\(version.prefix(16))\" is not supported by this gateway (it reads version \(FormatV1.version)); upgrade the gateway")
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
        let keyID = try lowerHex(take(FormatV1.keyIDHeader), bytes: FormatV1.keyIDSize, field: "key id")

        let wrappedText = try take(FormatV1.wrappedKeyHeader)
        guard let wrappedData = Data(base64Encoded: wrappedText), wrappedData.count == FormatV1.wrappedKeySize,
              wrappedData.base64EncodedString() == wrappedText else {
            throw malformed("wrapped key is not canonical base64 of \(FormatV1.wrappedKeySize) bytes")
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
        var md5: [UInt8]?
        if let etag = ours.removeValue(forKey: FormatV1.etagHeader) {
            md5 = try lowerHex(etag, bytes: 16, field: "etag")
        }
        if let unknown = ours.keys.sorted().first {
            throw malformed("unknown gateway header \(unknown.prefix(64)) in a version \(FormatV1.version) object")
        }
        return EncryptionMetadata(cipher: cipher, chunkSize: chunkSize, keyID: keyID, wrappedKey: Array(wrappedData),
                                  layout: layout, plaintextMD5: md5)
    }

    private static func malformed(_ message: String) -> EncryptionError {
        EncryptionError(.malformedMetadata, "gateway metadata is damaged: \(message)")
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
