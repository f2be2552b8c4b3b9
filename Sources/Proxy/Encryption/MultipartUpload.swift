import Foundation
import Shared

/// A multipart upload as CreateMultipartUpload begins it: the metadata stored with the backend upload and the
/// data key, kept until the backend's upload id is known and both go into the client's upload id.
public struct PendingUpload: Sendable {
    public let identity: ObjectIdentity
    /// Version 2 metadata with layout `multipart` and its MAC, for the backend CreateMultipartUpload.
    public let metadata: EncryptionMetadata
    let dataKey: DataKey
}

/// An open multipart upload, decoded from and verified against the upload id a client sends back
/// (docs/FORMAT.md §9.1): everything UploadPart needs, with no state in the gateway.
public struct MultipartUpload: Sendable {
    public let identity: ObjectIdentity
    /// The backend's own upload id, which every backend request of this upload carries.
    public let backendUploadID: String
    public let cipher: AEADAlgorithm
    public let chunkLayout: ChunkLayout
    public let wrappedKey: WrappedDataKey
    let dataKey: DataKey
}

/// The client-facing upload id of docs/FORMAT.md §9.1: `s3eg2.` then unpadded base64url of
/// `u8(2) || u8(cipherID) || u32be(C) || str8(provider) || str16(keyID) || str16(ik) || str16(wrappedDEK)
///  || str16(backendUploadID) || mac16`, where `strN` is an N-bit big-endian length then the bytes, and
/// `mac16` the first 16 bytes of HMAC-SHA256(HKDF(DEK, info "s3eg/v2 upload-id"),
/// `"s3eg/v2 upload-id" 0x00 || str(bucket) || str(key) || everything before the MAC`).
///
/// The wrap binds the DEK to bucket and key, the MAC binds the backend upload id to that DEK: a client can
/// neither move an upload id to another object nor pair one upload's key with another upload.
enum UploadToken {
    static let prefix = "s3eg2."
    static let version: UInt8 = 2
    static let maxBackendUploadIDLength = 1024
    /// Longest client upload id accepted (a few KiB of query string at most).
    static let maxLength = 4096

    struct Fields: Equatable {
        var cipher: AEADAlgorithm
        var chunkSize: Int
        var wrappedKey: WrappedDataKey
        var backendUploadID: String
        /// Every byte before the MAC.
        var body: [UInt8]
        var mac: [UInt8]
    }

    static func encode(cipher: AEADAlgorithm, chunkSize: Int, wrappedKey: WrappedDataKey, backendUploadID: String,
                       identity: ObjectIdentity, dataKey: DataKey) throws(EncryptionError) -> String {
        let uploadID = Array(backendUploadID.utf8)
        guard (1...maxBackendUploadIDLength).contains(uploadID.count) else {
            throw EncryptionError(.invalidParameter, "the backend's upload id has \(uploadID.count) bytes; at most \(maxBackendUploadIDLength) are supported")
        }
        let reference = wrappedKey.reference
        var body: [UInt8] = [version, cipher.rawValue]
        body.appendBigEndian(UInt32(chunkSize))
        body.append(UInt8(reference.provider.utf8.count))
        body.append(contentsOf: reference.provider.utf8)
        appendShort(&body, Array(reference.keyID.utf8))
        appendShort(&body, reference.wrappedIntermediateKey ?? [])
        appendShort(&body, wrappedKey.bytes)
        appendShort(&body, uploadID)
        let mac = try self.mac(body: body, identity: identity, dataKey: dataKey)
        return prefix + base64URL(body + mac)
    }

    /// Strict decoding (no verification): nil when `text` is not an upload id this gateway issued.
    static func decode(_ text: String) -> Fields? {
        guard text.utf8.count <= maxLength, text.hasPrefix(prefix),
              let bytes = fromBase64URL(String(text.dropFirst(prefix.count))) else { return nil }
        var reader = ByteReader(bytes: bytes)
        guard reader.byte() == version,
              let cipher = reader.byte().flatMap(AEADAlgorithm.init(rawValue:)),
              let chunkSize = reader.u32().map(Int.init),
              chunkSize >= FormatV1.minChunkSize, chunkSize <= FormatV1.maxChunkSize,
              let providerLength = reader.byte(), let provider = reader.bytes(Int(providerLength)),
              let keyID = reader.short(), let ik = reader.short(), let wrapped = reader.short(),
              let uploadID = reader.short(), !uploadID.isEmpty,
              let providerText = String(validating: provider, as: UTF8.self),
              let keyIDText = String(validating: keyID, as: UTF8.self),
              let uploadIDText = String(validating: uploadID, as: UTF8.self) else { return nil }
        let bodyLength = reader.offset
        guard let mac = reader.bytes(FormatV2.uploadMACSize), reader.isAtEnd,
              let reference = try? KeyReference(provider: providerText, keyID: keyIDText, wrappedIntermediateKey: ik.isEmpty ? nil : ik),
              let wrappedKey = try? WrappedDataKey(reference: reference, bytes: wrapped) else { return nil }
        return Fields(cipher: cipher, chunkSize: chunkSize, wrappedKey: wrappedKey, backendUploadID: uploadIDText,
                      body: Array(bytes[0..<bodyLength]), mac: mac)
    }

    static func mac(body: [UInt8], identity: ObjectIdentity, dataKey: DataKey) throws(EncryptionError) -> [UInt8] {
        let key: [UInt8]
        do {
            key = try KDF.hkdfSHA256(key: dataKey.bytes, salt: [], info: FormatV2.uploadKeyInfo, length: 32)
        } catch {
            throw EncryptionError(.internalFailure, "HKDF failed: \(error)")
        }
        var input = FormatV2.uploadLabel
        input.appendField(identity.bucket)
        input.appendField(identity.key)
        input.append(contentsOf: body)
        return Array(HMAC.sha256(key: key, data: input).prefix(FormatV2.uploadMACSize))
    }

    private static func appendShort(_ out: inout [UInt8], _ bytes: [UInt8]) {
        out.appendBigEndian(UInt16(bytes.count))
        out.append(contentsOf: bytes)
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        text = text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    /// Unpadded base64url only; anything else (padding, other characters, a non-canonical tail) is nil.
    static func fromBase64URL(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39)
                                        || $0 == 0x2d || $0 == 0x5f }) else { return nil }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.utf8.count % 4 != 0 { standard += "=" }
        guard let data = Data(base64Encoded: standard) else { return nil }
        let bytes = Array(data)
        return base64URL(bytes) == text ? bytes : nil
    }
}

/// Bounds-checked big-endian reading for the upload id codec.
private struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    var isAtEnd: Bool { offset == bytes.count }

    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, bytes.count - offset >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func byte() -> UInt8? { bytes(1)?.first }

    mutating func u32() -> UInt32? {
        bytes(4).map { $0.reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
    }

    mutating func short() -> [UInt8]? {
        guard let length = bytes(2).map({ Int($0[0]) << 8 | Int($0[1]) }) else { return nil }
        return bytes(length)
    }
}

extension ObjectEncryptor {
    /// CreateMultipartUpload, step 1: a fresh DEK wrapped for `identity`, and the version 2 metadata (layout
    /// `multipart`, no salt) to send with the backend CreateMultipartUpload; the object keeps it at Complete.
    public func beginMultipartObject(_ identity: ObjectIdentity) throws(EncryptionError) -> PendingUpload {
        let dataKey = DataKey.generate()
        var metadata = EncryptionMetadata(cipher: cipher, chunkSize: layout.chunkSize, layout: .multipart,
                                          wrappedKey: try keys.wrap(dataKey, context: WrapContext(identity: identity)))
        metadata.mac = try MetadataMAC.compute(metadata, identity: identity, dataKey: dataKey)
        return PendingUpload(identity: identity, metadata: metadata, dataKey: dataKey)
    }

    /// CreateMultipartUpload, step 2: the upload id to give the client once the backend answered with its own.
    public func uploadID(for pending: PendingUpload, backendUploadID: String) throws(EncryptionError) -> String {
        try UploadToken.encode(cipher: pending.metadata.cipher, chunkSize: pending.metadata.chunkSize,
                               wrappedKey: pending.metadata.wrappedKey, backendUploadID: backendUploadID,
                               identity: pending.identity, dataKey: pending.dataKey)
    }

    /// UploadPart and UploadPartCopy: decodes the client's upload id, unwraps its data key for `identity` and
    /// checks the MAC. An id that is not ours, or belongs to another object or upload, is `invalidParameter`
    /// (the caller answers NoSuchUpload); key failures keep their codes.
    public func openUpload(_ uploadID: String, identity: ObjectIdentity) throws(EncryptionError) -> MultipartUpload {
        guard let fields = UploadToken.decode(uploadID) else {
            throw EncryptionError(.invalidParameter, "the upload id was not issued by an encrypting gateway")
        }
        let dataKey: DataKey
        do {
            dataKey = try keys.unwrap(fields.wrappedKey, context: WrapContext(identity: identity))
        } catch where error.code == .tamperDetected {
            throw EncryptionError(.invalidParameter, "the upload id belongs to another object")
        }
        guard ConstantTime.equals(try UploadToken.mac(body: fields.body, identity: identity, dataKey: dataKey), fields.mac) else {
            throw EncryptionError(.invalidParameter, "the upload id was altered")
        }
        return MultipartUpload(identity: identity, backendUploadID: fields.backendUploadID, cipher: fields.cipher,
                               chunkLayout: try ChunkLayout(chunkSize: fields.chunkSize), wrappedKey: fields.wrappedKey, dataKey: dataKey)
    }

    /// The backend's upload id inside a client upload id, unverified (AbortMultipartUpload, ListParts and
    /// CompleteMultipartUpload need no key); nil for an id this gateway did not issue.
    public static func backendUploadID(of uploadID: String) -> String? {
        UploadToken.decode(uploadID)?.backendUploadID
    }

    /// The chunk size an upload id names, unverified (to convert ListParts sizes).
    public static func chunkLayout(of uploadID: String) -> ChunkLayout? {
        UploadToken.decode(uploadID).flatMap { try? ChunkLayout(chunkSize: $0.chunkSize) }
    }

    /// UploadPart: a fresh salt for this attempt, the 36-byte part header to send first, and the sealer,
    /// which enforces `plaintextLength`.
    public func beginPart(of upload: MultipartUpload, partNumber: Int, plaintextLength: Int) throws(EncryptionError)
        -> (header: [UInt8], sealer: ChunkSealer) {
        let header = try PartHeader(partNumber: partNumber, plaintextLength: plaintextLength, salt: SecureRandom.bytes(FormatV1.saltSize))
        let sealer = try ChunkSealer(cipher: upload.cipher, segmentKey: upload.dataKey.segmentKey(salt: header.salt, partNumber: partNumber),
                                     layout: upload.chunkLayout, partNumber: partNumber, expectedPlaintextLength: plaintextLength)
        return (header.bytes, sealer)
    }

    /// An opener for one part of a stored multipart object, given its parsed header.
    public func partOpener(for metadata: EncryptionMetadata, identity: ObjectIdentity, header: PartHeader,
                           firstChunkIndex: Int = 0) throws(EncryptionError) -> ChunkOpener {
        try partOpener(for: metadata, dataKey: dataKey(of: metadata, identity: identity), header: header, firstChunkIndex: firstChunkIndex)
    }

    /// As above with the data key already unwrapped (one unwrap per object, not per part). `maxCiphertextLength`:
    /// see `ChunkOpener`.
    func partOpener(for metadata: EncryptionMetadata, dataKey: DataKey, header: PartHeader,
                    firstChunkIndex: Int = 0, maxCiphertextLength: Int? = nil) throws(EncryptionError) -> ChunkOpener {
        guard metadata.layout == .multipart else { throw EncryptionError(.invalidParameter, "not a multipart object") }
        return try ChunkOpener(cipher: metadata.cipher, segmentKey: dataKey.segmentKey(salt: header.salt, partNumber: header.partNumber),
                               layout: metadata.chunkLayout, partNumber: header.partNumber, firstChunkIndex: firstChunkIndex,
                               maxCiphertextLength: maxCiphertextLength)
    }
}
