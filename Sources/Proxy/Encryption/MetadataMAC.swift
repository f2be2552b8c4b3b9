import Shared

/// The MAC of version 2 metadata (docs/FORMAT.md §4): HMAC-SHA256 under a key derived from the object's DEK,
/// over the object's bucket and key and every gateway header but the MAC itself. Only a holder of the DEK can
/// produce it, so records attached after the upload (ETag, checksum) are as trustworthy as the wrap, and a
/// header copied from another object or edited on the backend fails.
enum MetadataMAC {
    /// `HKDF-SHA256(IKM = DEK, salt = "", info = "s3eg/v2 metadata-mac", L = 32)`.
    static func key(_ dataKey: DataKey) throws(EncryptionError) -> [UInt8] {
        do {
            return try KDF.hkdfSHA256(key: dataKey.bytes, salt: [], info: FormatV2.macKeyInfo, length: 32)
        } catch {
            throw EncryptionError(.internalFailure, "HKDF failed: \(error)")
        }
    }

    /// `"s3eg/v2 metadata" 0x00 || str(bucket) || str(key) || (str(name) || str(value))*` for every header
    /// but `x-amz-meta-s3eg-mac`, sorted by name (bytewise).
    static func input(_ metadata: EncryptionMetadata, identity: ObjectIdentity) -> [UInt8] {
        var out = FormatV2.macLabel
        out.appendField(identity.bucket)
        out.appendField(identity.key)
        for field in metadata.fieldsWithoutMAC {
            out.appendField(field.name)
            out.appendField(field.value)
        }
        return out
    }

    static func compute(_ metadata: EncryptionMetadata, identity: ObjectIdentity, dataKey: DataKey) throws(EncryptionError) -> [UInt8] {
        HMAC.sha256(key: try key(dataKey), data: input(metadata, identity: identity))
    }

    /// Throws `tamperDetected` unless `metadata.mac` is the MAC of the rest under `dataKey` and `identity`.
    static func verify(_ metadata: EncryptionMetadata, identity: ObjectIdentity, dataKey: DataKey) throws(EncryptionError) {
        guard let mac = metadata.mac else { throw EncryptionMetadata.malformed("missing \(FormatV2.macHeader)") }
        guard ConstantTime.equals(try compute(metadata, identity: identity, dataKey: dataKey), mac) else {
            throw EncryptionError(.tamperDetected, "the gateway metadata of \(identity.bucket)/\(identity.key) fails its MAC: it was modified on the backend or belongs to another object")
        }
    }
}
