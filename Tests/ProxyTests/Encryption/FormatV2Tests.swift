import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// Version 2 metadata: the MAC over every field, records attached later, key references and upgrades from version 1.
@Suite struct FormatV2Tests {
    let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring(), layout: try! ChunkLayout(chunkSize: 4096))
    let id = ObjectIdentity(bucket: "b", key: "dir/file.txt")

    private func store(_ plaintext: [UInt8], md5: [UInt8]? = nil) throws -> (EncryptionMetadata, [UInt8]) {
        let (meta, sealer) = try encryptor.beginObject(id, plaintextMD5: md5, plaintextLength: plaintext.count)
        var body: [UInt8] = []
        try sealer.update(plaintext) { body += $0 }
        try sealer.finish { body += $0 }
        return (meta, body)
    }

    private func open(_ meta: EncryptionMetadata, _ body: [UInt8], as identity: ObjectIdentity? = nil) throws -> [UInt8] {
        let opener = try encryptor.opener(for: meta, identity: identity ?? id)
        var out: [UInt8] = []
        try opener.update(body) { out += $0 }
        try opener.finish { out += $0 }
        return out
    }

    private func code(_ body: () throws -> Void) -> EncryptionError.Code? {
        do {
            try body()
            return nil
        } catch let error as EncryptionError {
            return error.code
        } catch {
            return .internalFailure
        }
    }

    @Test func writesVersion2WithAMACOverEveryField() throws {
        let plaintext = Array("hello".utf8)
        let (meta, body) = try store(plaintext, md5: Digest.hash(.md5, plaintext))
        #expect(meta.version == .v2 && meta.mac?.count == 32)
        #expect(meta.keyReference == (try KeyReference(provider: "password", keyID: EncryptionFixtures.kek("test").idHex)))
        #expect(meta.headers["x-amz-meta-s3eg-provider"] == "password")
        #expect(try open(meta, body) == plaintext)
        #expect(meta.authenticatedMD5 == Digest.hash(.md5, plaintext))

        // Editing any stored field on the backend (here: through the headers, as a reader sees them) fails the
        // MAC or the wrap; the ETag record in particular is no longer trusted.
        let stored = meta.headers
        let edits: [(String, String?)] = [
            ("x-amz-meta-s3eg-etag", Encoding.hex([UInt8](repeating: 0, count: 16))),
            ("x-amz-meta-s3eg-etag", nil),
            ("x-amz-meta-s3eg-checksum", "CRC32:AAAAAA=="),
            ("x-amz-meta-s3eg-chunk-size", "8192"),
            ("x-amz-meta-s3eg-cipher", "CHACHA20-POLY1305"),
            ("x-amz-meta-s3eg-salt", Encoding.hex([UInt8](repeating: 1, count: 16))),
            ("x-amz-meta-s3eg-mac", Data([UInt8](repeating: 7, count: 32)).base64EncodedString()),
        ]
        for (name, value) in edits {
            var headers = stored
            headers[name] = value
            let edited = try #require(try EncryptionMetadata.parse(headers: headers))
            #expect(code { _ = try encryptor.dataKey(of: edited, identity: id) } == .tamperDetected, "\(name)")
        }
        // The same metadata under another name fails (wrap and MAC both bind bucket and key).
        #expect(code { _ = try encryptor.dataKey(of: meta, identity: ObjectIdentity(bucket: "b", key: "other")) } == .tamperDetected)
        #expect(code { _ = try encryptor.dataKey(of: meta, identity: ObjectIdentity(bucket: "c", key: id.key)) } == .tamperDetected)
    }

    @Test func recordsAttachedLaterAreAuthenticatedAndBound() throws {
        let plaintext = [UInt8](repeating: 3, count: 10_000)
        let (meta, body) = try store(plaintext)
        #expect(meta.plaintextMD5 == nil && meta.authenticatedMD5 == nil)
        let md5 = Digest.hash(.md5, plaintext)
        let withETag = try encryptor.attachETag(meta, plaintextMD5: md5, identity: id)
        #expect(withETag.authenticatedMD5 == md5 && withETag.wrappedKey == meta.wrappedKey, "attaching keeps the wrap")
        let checksum = try ChecksumRecord(algorithm: "CRC32C", value: [9, 8, 7, 6])
        let withBoth = try encryptor.attachChecksum(withETag, checksum, identity: id)
        #expect(withBoth.checksum == checksum && withBoth.plaintextMD5 == md5)
        let parsed = try #require(try EncryptionMetadata.parse(headers: withBoth.headers))
        _ = try encryptor.dataKey(of: parsed, identity: id)
        #expect(try open(parsed, body) == plaintext)
        #expect(parsed.headers["x-amz-meta-s3eg-checksum"] == "CRC32C:CQgHBg==")

        // A record transplanted from another object (or an older version of this key: another DEK) fails.
        let (other, _) = try store(plaintext)
        var transplanted = other
        transplanted.plaintextMD5 = md5
        transplanted.mac = withETag.mac
        #expect(code { _ = try encryptor.dataKey(of: transplanted, identity: id) } == .tamperDetected)
        // Records survive CopyObject, bound to the destination.
        let dest = ObjectIdentity(bucket: "b2", key: "copy")
        let copied = try encryptor.rewrap(withBoth, from: id, to: dest)
        #expect(copied.plaintextMD5 == md5 && copied.checksum == checksum)
        _ = try encryptor.dataKey(of: copied, identity: dest)
        #expect(code { _ = try encryptor.dataKey(of: copied, identity: id) } == .tamperDetected)
        #expect(throws: EncryptionError.self) { try encryptor.attachETag(meta, plaintextMD5: [1, 2, 3], identity: id) }
    }

    /// A version 1 object as an older gateway wrote it.
    private func storeV1(_ plaintext: [UInt8], md5: [UInt8]?) throws -> (EncryptionMetadata, [UInt8]) {
        let ring = EncryptionFixtures.ring()
        let dek = DataKey.generate()
        let salt = SecureRandom.bytes(16)
        let binding = WrapBinding(identity: id, cipher: .aes256GCM, chunkSize: 4096, layout: .single)
        let (keyID, wrapped) = try ring.wrap(dek, binding: binding)
        let meta = EncryptionMetadata(version: .v1, cipher: .aes256GCM, chunkSize: 4096, layout: .single(salt: salt),
                                      wrappedKey: try WrappedDataKey(reference: KeyReference(provider: "password", keyID: Encoding.hex(keyID)),
                                                                     bytes: wrapped),
                                      plaintextMD5: md5)
        let sealer = try ChunkSealer(cipher: .aes256GCM, segmentKey: dek.segmentKey(salt: salt, partNumber: 0), layout: try ChunkLayout(chunkSize: 4096))
        var body: [UInt8] = []
        try sealer.update(plaintext) { body += $0 }
        try sealer.finish { body += $0 }
        return (meta, body)
    }

    @Test func version1StaysReadableAndUpgradesOnRewrite() throws {
        let plaintext = Array("written by version 1".utf8)
        let md5 = Digest.hash(.md5, plaintext)
        let (v1, body) = try storeV1(plaintext, md5: md5)
        let parsed = try #require(try EncryptionMetadata.parse(headers: v1.headers))
        #expect(parsed.version == .v1 && parsed.headers["x-amz-meta-s3eg-provider"] == nil && parsed.headers["x-amz-meta-s3eg-mac"] == nil)
        #expect(try open(parsed, body) == plaintext)
        #expect(parsed.plaintextMD5 == md5 && parsed.authenticatedMD5 == nil, "a version 1 ETag is not authenticated")

        // Re-wrapping (rotation, copy) and attaching a record write version 2 over the unchanged body.
        let rotated = try encryptor.rewrap(parsed, from: id, to: id)
        #expect(rotated.version == .v2 && rotated.authenticatedMD5 == md5 && rotated.layout == parsed.layout)
        #expect(try open(try #require(try EncryptionMetadata.parse(headers: rotated.headers)), body) == plaintext)
        let (v1NoETag, _) = try storeV1(plaintext, md5: nil)
        let attached = try encryptor.attachETag(v1NoETag, plaintextMD5: md5, identity: id)
        #expect(attached.version == .v2 && attached.authenticatedMD5 == md5)
        _ = try encryptor.dataKey(of: attached, identity: id)
        // The version 1 wrap still binds its fields: a changed chunk size fails the unwrap.
        var edited = parsed
        edited.chunkSize = 8192
        #expect(code { _ = try encryptor.dataKey(of: edited, identity: id) } == .tamperDetected)
    }

    @Test func keyReferencesResolveThroughTheProvider() throws {
        let (meta, _) = try store([1, 2, 3])
        // Another provider's reference is unknown to the password provider, not damage.
        var foreign = meta
        foreign.wrappedKey = try WrappedDataKey(reference: KeyReference(provider: "aws-kms", keyID: "arn:aws:kms:x", wrappedIntermediateKey: [1]),
                                                bytes: meta.wrappedKey.bytes)
        #expect(code { _ = try encryptor.dataKey(of: foreign, identity: id) } == .unknownKeyID)
        let withoutKey = ObjectEncryptor(keyRing: EncryptionFixtures.ring("other"))
        #expect(code { _ = try withoutKey.dataKey(of: meta, identity: id) } == .unknownKeyID)
        #expect(EncryptionFixtures.ring().isActive(meta.keyReference))
        #expect(!EncryptionFixtures.ring("next", previous: ["test"]).isActive(meta.keyReference))
        // Grammar of references.
        for (provider, keyID) in [("", "k"), ("AWS", "k"), ("a", ""), ("a", "x,y"), ("a", "x y"), ("a", String(repeating: "x", count: 257))] {
            #expect(throws: EncryptionError.self) { try KeyReference(provider: provider, keyID: keyID) }
        }
        #expect(throws: EncryptionError.self) { try KeyReference(provider: "kmip", keyID: "1", wrappedIntermediateKey: []) }
    }

    /// A provider with an intermediate key, as key managers use it (LocalKeyWrap under W = the intermediate key).
    struct IntermediateKeyProvider: DataKeyWrapping {
        let intermediate = try! WrappingKey(reference: KeyReference(provider: "kmip", keyID: "uid-42",
                                                                    wrappedIntermediateKey: Array(repeating: 0xab, count: 120)),
                                            bytes: Array(repeating: 0x11, count: 32))
        func wrap(_ dataKey: DataKey, context: WrapContext) throws(EncryptionError) -> WrappedDataKey {
            try LocalKeyWrap.seal(dataKey, with: intermediate, context: context)
        }
        func unwrap(_ wrapped: WrappedDataKey, context: WrapContext) throws(EncryptionError) -> DataKey {
            guard wrapped.reference.provider == "kmip", wrapped.reference.keyID == "uid-42" else {
                throw EncryptionError(.unknownKeyID, "unknown")
            }
            // W is recovered from the wrapped intermediate key (here: known); the AAD binds the reference as stored.
            return try LocalKeyWrap.open(wrapped, with: try WrappingKey(reference: wrapped.reference, bytes: intermediate.bytes), context: context)
        }
        func v1Key(id: [UInt8]) -> KeyEncryptionKey? { nil }
        func isActive(_ reference: KeyReference) -> Bool { reference.provider == "kmip" && reference.keyID == "uid-42" }
    }

    @Test func intermediateKeysTravelInTheMetadataAndAreBound() throws {
        let kms = ObjectEncryptor(keys: IntermediateKeyProvider(), layout: try ChunkLayout(chunkSize: 4096))
        let (meta, sealer) = try kms.beginObject(id, plaintextLength: 3)
        var body: [UInt8] = []
        try sealer.update([1, 2, 3]) { body += $0 }
        try sealer.finish { body += $0 }
        #expect(meta.headers["x-amz-meta-s3eg-ik"] == Data(Array(repeating: 0xab, count: 120)).base64EncodedString())
        let parsed = try #require(try EncryptionMetadata.parse(headers: meta.headers))
        #expect(parsed == meta)
        let opener = try kms.opener(for: parsed, identity: id)
        var out: [UInt8] = []
        try opener.update(body) { out += $0 }
        try opener.finish { out += $0 }
        #expect(out == [1, 2, 3])
        // Another intermediate key blob in the metadata fails the wrap (the blob is in the wrap AAD).
        var headers = meta.headers
        headers["x-amz-meta-s3eg-ik"] = Data(Array(repeating: 0xac, count: 120)).base64EncodedString()
        let swapped = try #require(try EncryptionMetadata.parse(headers: headers))
        #expect(code { _ = try kms.dataKey(of: swapped, identity: id) } == .tamperDetected)
        #expect(meta.metadataBudget < 800)
    }

    /// An object begun before its records are known (a body sealed as it is read): the records given afterwards
    /// are authenticated under the data key it kept, the body opens, and the draft's budget already counted them.
    @Test func aPendingObjectGetsItsRecordsAfterItsBody() throws {
        let plaintext = Array("sealed before its MD5 was known".utf8)
        let pending = try encryptor.beginPendingObject(id, plaintextLength: plaintext.count)
        var body: [UInt8] = []
        try pending.sealer.update(plaintext) { body += $0 }
        try pending.sealer.finish { body += $0 }
        let checksum = try ChecksumRecord(algorithm: "CRC32", value: [9, 8, 7, 6])
        let meta = try pending.metadata(plaintextMD5: Digest.hash(.md5, plaintext), checksum: checksum)
        let parsed = try #require(try EncryptionMetadata.parse(headers: meta.headers))
        #expect(parsed == meta && parsed.authenticatedMD5 == Digest.hash(.md5, plaintext) && parsed.checksum == checksum)
        #expect(try open(parsed, body) == plaintext)
        #expect(pending.draft.mac == nil && pending.draft.plaintextMD5 == nil)
        #expect(pending.draft.metadataBudget >= meta.metadataBudget, "the draft reserves room for what is recorded later")
        // Another object's MD5 in its place fails the MAC.
        var headers = meta.headers
        headers["x-amz-meta-s3eg-etag"] = Encoding.hex(Digest.hash(.md5, [1]))
        #expect(code { _ = try encryptor.dataKey(of: try #require(try EncryptionMetadata.parse(headers: headers)), identity: id) } == .tamperDetected)
        #expect(code { _ = try pending.metadata(plaintextMD5: [1, 2, 3], checksum: nil) } == .invalidParameter)
    }

    /// The fields are built in their names' bytewise order (nothing is sorted per upload): with every optional
    /// field present, and without them, the list is sorted, names are unique, and it is `headers` as a list.
    @Test func fieldsComeInTheOrderTheMACCovers() throws {
        let kms = ObjectEncryptor(keys: IntermediateKeyProvider(), layout: try ChunkLayout(chunkSize: 4096))
        let full = try kms.beginObject(id, plaintextMD5: Digest.hash(.md5, [1]),
                                       checksum: try ChecksumRecord(algorithm: "CRC32", value: [1, 2, 3, 4]), plaintextLength: 1).metadata
        let bare = try encryptor.beginObject(id, plaintextLength: 1).metadata
        let v1 = try storeV1([1], md5: Digest.hash(.md5, [1])).0
        for meta in [full, bare, v1] {
            let names = meta.fields.map(\.name)
            #expect(names == names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
            #expect(Set(names).count == names.count)
            #expect(Dictionary(uniqueKeysWithValues: meta.fields.map { ($0.name, $0.value) }) == meta.headers)
            #expect(meta.fieldsWithoutMAC.map(\.name) == names.filter { $0 != "x-amz-meta-s3eg-mac" })
        }
        #expect(full.fields.count == 12)
    }
}

@Suite struct UploadTokenTests {
    let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring(), layout: try! ChunkLayout(chunkSize: 8192))
    let id = ObjectIdentity(bucket: "bkt", key: "big/object.bin")

    @Test func roundTripsAndCarriesWhatUploadPartNeeds() throws {
        let pending = try encryptor.beginMultipartObject(id)
        #expect(pending.metadata.layout == .multipart && pending.metadata.version == .v2)
        _ = try encryptor.dataKey(of: pending.metadata, identity: id)
        let backendID = "2~aBcD_efGh-IjKlMnOpQrStUvWxYz0123456789"
        let uploadID = try encryptor.uploadID(for: pending, backendUploadID: backendID)
        #expect(uploadID.hasPrefix("s3eg2.") && uploadID.count < 300)
        #expect(uploadID.utf8.allSatisfy { $0 == 0x2e || $0 == 0x2d || $0 == 0x5f || (0x30...0x39).contains($0)
            || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) }, "safe in a query string and XML as is")
        let upload = try encryptor.openUpload(uploadID, identity: id)
        #expect(upload.backendUploadID == backendID && upload.chunkLayout.chunkSize == 8192 && upload.cipher == .aes256GCM)
        #expect(upload.dataKey == (try encryptor.dataKey(of: pending.metadata, identity: id)))
        #expect(ObjectEncryptor.backendUploadID(of: uploadID) == backendID)
        #expect(ObjectEncryptor.chunkLayout(of: uploadID)?.chunkSize == 8192)
        #expect(ObjectEncryptor.backendUploadID(of: backendID) == nil, "a backend id is not ours")
    }

    @Test func refusesMovedSwappedAndAlteredIDs() throws {
        let pendingA = try encryptor.beginMultipartObject(id)
        let pendingB = try encryptor.beginMultipartObject(id)
        let idA = try encryptor.uploadID(for: pendingA, backendUploadID: "upload-A")
        // Another object: the wrap binds bucket and key.
        #expect(throws: EncryptionError.self) { try encryptor.openUpload(idA, identity: ObjectIdentity(bucket: "bkt", key: "other")) }
        // Upload B's backend id with upload A's key (re-encoded honestly except for the MAC): refused.
        let fieldsA = try #require(UploadToken.decode(idA))
        let forged = try UploadToken.encode(cipher: fieldsA.cipher, chunkSize: fieldsA.chunkSize, wrappedKey: fieldsA.wrappedKey,
                                            backendUploadID: "upload-B", identity: id, dataKey: pendingB.dataKey)
        #expect(throws: EncryptionError.self) { try encryptor.openUpload(forged, identity: id) }
        // Every single-character change is refused (or decodes to something that does not verify).
        var rng = SplitMix64(seed: 11)
        let alphabet = Array("ABCabc019-_.=+/")
        for _ in 0..<500 {
            var chars = Array(idA)
            chars[Int.random(in: 0..<chars.count, using: &rng)] = alphabet.randomElement(using: &rng)!
            let mutated = String(chars)
            guard mutated != idA else { continue }
            #expect(throws: EncryptionError.self) { try encryptor.openUpload(mutated, identity: id) }
        }
        for garbage in ["", "s3eg2.", "s3eg2.AAAA", "s3eg2." + String(repeating: "A", count: 5000), "upload-A", "s3eg2.====", "S3EG2.AgE"] {
            #expect(UploadToken.decode(garbage) == nil, "\(garbage.prefix(20))")
        }
    }
}
