import Foundation
import Testing
import TestSupport
@testable import Proxy
@testable import Shared

@Suite struct VerifiedMetadataCacheTests {
    static let identity = ObjectIdentity(bucket: "b", key: "k")

    /// A sealed version 2 object's backend headers (with two foreign ones) and its data key.
    static func stored(_ encryptor: ObjectEncryptor, _ identity: ObjectIdentity = identity) throws
        -> (fields: [(name: String, value: String)], metadata: EncryptionMetadata) {
        let (metadata, _) = try encryptor.beginObject(identity, plaintextMD5: Array(repeating: 7, count: 16))
        let fields = [(name: "Content-Type", value: "text/plain")]
            + metadata.headers.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
            + [(name: "ETag", value: "\"abc\"")]
        return (fields, metadata)
    }

    @Test(arguments: [
        ("x-amz-meta-s3eg-version", true), ("X-Amz-Meta-S3eg-Mac", true), ("X-AMZ-META-S3EG-", true),
        ("x-amz-meta-s3eg", false), ("x-amz-meta-s3e", false), ("", false), ("x-amz-meta-owner", false),
        ("content-type", false), ("x-amz-meta_s3eg-version", false), ("x-amz-meta-s3eğ-version", false),
        (" x-amz-meta-s3eg-version", false), ("x-amz-meta-s3egx", false),
    ])
    func reservedNamesFoldOnlyASCIICase(name: String, reserved: Bool) {
        #expect(EncryptionMetadata.isReserved(headerName: name) == reserved)
        #expect(EncryptionMetadata.isReserved(headerName: name) == name.lowercased().hasPrefix("x-amz-meta-s3eg-"))
    }

    /// The word compare matches the prefix in any ASCII case and nothing else: every byte of the prefix replaced by
    /// every other byte value (including those one case bit away from `-` and `3`, and non-ASCII) is not the prefix.
    @Test func reservedPrefixWordsMatchExactlyTheCaseFoldedPrefix() {
        let prefix = Array(FormatV1.metadataPrefix.utf8)
        #expect(prefix.count == 16)
        func word(_ bytes: ArraySlice<UInt8>) -> UInt64 {
            bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        let caseBits = prefix.map { UInt8(ascii: "a")...UInt8(ascii: "z") ~= $0 ? UInt8(0x20) : 0 }
        #expect(EncryptionMetadata.reservedPrefixWords == (word(prefix[0..<8]), word(prefix[8..<16])))
        #expect(EncryptionMetadata.reservedPrefixCaseBits == (word(caseBits[0..<8]), word(caseBits[8..<16])))
        for position in prefix.indices {
            for byte in UInt8(0)...UInt8(255) {
                var name = prefix
                name[position] = byte
                name += Array("version".utf8)
                let reserved = name.withUnsafeBytes { EncryptionMetadata.hasReservedPrefix($0) }
                let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
                #expect(reserved == (folded == prefix[position]), "byte \(byte) at \(position)")
                if byte < 0x80 {
                    #expect(EncryptionMetadata.isReserved(headerName: String(decoding: name, as: UTF8.self)) == reserved)
                }
            }
        }
        // Shorter than the prefix, however it starts.
        for length in 0..<16 {
            #expect(!prefix[0..<length].withUnsafeBytes { EncryptionMetadata.hasReservedPrefix($0) })
        }
    }

    @Test func fingerprintsCoverEveryGatewayByteAndTheIdentity() throws {
        let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring())
        let (fields, _) = try Self.stored(encryptor)
        let base = MetadataFingerprint(fields: fields, identity: Self.identity)
        // Other headers do not count.
        let foreign = fields.filter { !EncryptionMetadata.isReserved(headerName: $0.name) }
        #expect(MetadataFingerprint(fields: fields + [(name: "x-amz-request-id", value: "1")], identity: Self.identity) == base)
        #expect(MetadataFingerprint(fields: fields.filter { EncryptionMetadata.isReserved(headerName: $0.name) },
                                    identity: Self.identity) == base)
        #expect(MetadataFingerprint(fields: foreign, identity: Self.identity) != base)
        // Every gateway name and value, their case and their order count.
        for (i, field) in fields.enumerated() where EncryptionMetadata.isReserved(headerName: field.name) {
            var edited = fields
            edited[i].value += "x"
            #expect(MetadataFingerprint(fields: edited, identity: Self.identity) != base, "\(field.name)")
            edited = fields
            edited[i].name = field.name.uppercased()
            #expect(MetadataFingerprint(fields: edited, identity: Self.identity) != base, "\(field.name)")
            edited = fields
            edited.remove(at: i)
            #expect(MetadataFingerprint(fields: edited, identity: Self.identity) != base, "\(field.name)")
            edited = fields
            edited.append(field)
            #expect(MetadataFingerprint(fields: edited, identity: Self.identity) != base, "\(field.name)")
        }
        #expect(MetadataFingerprint(fields: fields.reversed(), identity: Self.identity) != base)
        // The identity counts, and pieces cannot slide into each other.
        #expect(MetadataFingerprint(fields: fields, identity: ObjectIdentity(bucket: "b", key: "k2")) != base)
        #expect(MetadataFingerprint(fields: fields, identity: ObjectIdentity(bucket: "bk", key: "")) != base)
        #expect(MetadataFingerprint(fields: [], identity: ObjectIdentity(bucket: "ab", key: "c"))
                != MetadataFingerprint(fields: [], identity: ObjectIdentity(bucket: "a", key: "bc")))
        #expect(MetadataFingerprint(fields: [(name: "x-amz-meta-s3eg-a", value: "1:b")], identity: Self.identity)
                != MetadataFingerprint(fields: [(name: "x-amz-meta-s3eg-a1", value: ":b")], identity: Self.identity))
    }

    /// Where the gateway's fields sit among the others (before, after or across the 64th field, up to 200 fields),
    /// only they, their bytes and their order make the fingerprint.
    @Test(arguments: [0, 1, 55, 60, 63, 64, 65, 150])
    func fingerprintsOfLongHeadsSeeEveryGatewayField(foreignBefore: Int) throws {
        let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring())
        let (fields, _) = try Self.stored(encryptor)
        let ours = fields.filter { EncryptionMetadata.isReserved(headerName: $0.name) }
        let foreign = (0..<foreignBefore).map { (name: "x-amz-meta-other-\($0)", value: String(repeating: "v", count: $0)) }
        let long = foreign + ours + foreign.prefix(50)
        #expect(MetadataFingerprint(fields: long, identity: Self.identity) == MetadataFingerprint(fields: ours, identity: Self.identity))
        for i in ours.indices {
            var edited = ours
            edited[i].value += "x"
            #expect(MetadataFingerprint(fields: foreign + edited, identity: Self.identity)
                    != MetadataFingerprint(fields: long, identity: Self.identity))
            edited = ours
            edited.remove(at: i)
            #expect(MetadataFingerprint(fields: foreign + edited + foreign, identity: Self.identity)
                    != MetadataFingerprint(fields: long, identity: Self.identity))
        }
        #expect(MetadataFingerprint(fields: foreign + ours.reversed(), identity: Self.identity)
                != MetadataFingerprint(fields: long, identity: Self.identity))
    }

    /// A request's fingerprint is compared in place with the laid-out one the cache keeps: every edit that makes two
    /// probes differ makes the probe miss the kept one too, and one that does not still hits.
    @Test func probesMatchTheKeptLayoutExactly() throws {
        let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring())
        let (fields, metadata) = try Self.stored(encryptor)
        let dataKey = try encryptor.dataKey(of: metadata, identity: Self.identity)
        let cache = VerifiedMetadataCache(capacity: 64, ttl: .seconds(60))
        cache.insert(metadata, dataKey: dataKey, for: MetadataFingerprint(fields: fields, identity: Self.identity))
        let kept = MetadataFingerprint(fields: fields, identity: Self.identity).stored
        func hits(_ fields: [(name: String, value: String)], _ identity: ObjectIdentity = Self.identity) -> Bool {
            let probe = MetadataFingerprint(fields: fields, identity: identity)
            #expect((probe == kept) == (kept == probe))
            #expect((probe == kept) == (probe.stored == kept), "the probe's own layout agrees")
            return cache.lookup(probe) != nil && probe == kept
        }
        #expect(hits(fields))
        #expect(hits(fields + [(name: "x-amz-request-id", value: "1")]))
        #expect(hits([(name: "Date", value: "now")] + fields.filter { EncryptionMetadata.isReserved(headerName: $0.name) }))
        #expect(!hits(fields.filter { !EncryptionMetadata.isReserved(headerName: $0.name) }))
        for (i, field) in fields.enumerated() where EncryptionMetadata.isReserved(headerName: field.name) {
            var edited = fields
            edited[i].value += "x"
            #expect(!hits(edited), "\(field.name)")
            edited = fields
            edited[i].name = field.name.uppercased()
            #expect(!hits(edited), "\(field.name)")
            edited = fields
            edited.remove(at: i)
            #expect(!hits(edited), "\(field.name)")
            edited = fields
            edited.append(field)
            #expect(!hits(edited), "\(field.name)")
            // Same length and last 8 bytes (what the digest reads): only the comparison tells them apart.
            edited = fields
            let value = Array(field.value.utf8)
            if let first = value.first, value.count > 8 {
                edited[i].value = String(decoding: [first == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")] + value.dropFirst(), as: UTF8.self)
                #expect(!hits(edited), "\(field.name)")
            }
        }
        #expect(!hits(fields.reversed()))
        #expect(!hits(fields, ObjectIdentity(bucket: "b", key: "k2")))
        #expect(!hits(fields, ObjectIdentity(bucket: "bk", key: "")))
        #expect(!hits(fields, ObjectIdentity(bucket: "", key: "bk")))
    }

    /// The in-place comparison agrees with comparing the two laid-out byte arrays (the composition it replaced),
    /// and equal fingerprints hash equally, over seeded field sets built to collide often: few names and values,
    /// values shorter and longer than the 8 tail bytes the digest reads, empty ones, non-ASCII, foreign fields.
    @Test func inPlaceComparisonAgreesWithTheLaidOutBytes() {
        var rng = SplitMix64(seed: 12)
        let names = ["x-amz-meta-s3eg-mac", "X-Amz-Meta-S3eg-Mac", "x-amz-meta-s3eg-key", "x-amz-meta-s3eg-", "Content-Type", "x-amz-meta-s3e"]
        let values = ["", "a", "abcdefg", "abcdefgh", "Xbcdefgh", "abcdefghi", "0123456789abcdef", "1123456789abcdef", "é", "ée", "\u{0}"]
        let identities = [ObjectIdentity(bucket: "b", key: "k"), ObjectIdentity(bucket: "bk", key: ""), ObjectIdentity(bucket: "", key: "bk"),
                          ObjectIdentity(bucket: "b", key: "ké")]
        func fieldSet() -> ([(name: String, value: String)], ObjectIdentity) {
            let fields = (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                (name: names.randomElement(using: &rng)!, value: values.randomElement(using: &rng)!)
            }
            return (fields, identities.randomElement(using: &rng)!)
        }
        var equalCount = 0
        for _ in 0..<3000 {
            let (f1, i1) = fieldSet()
            let (f2, i2) = Bool.random(using: &rng) ? (f1, i1) : fieldSet()
            let a = MetadataFingerprint(fields: f1, identity: i1)
            let b = MetadataFingerprint(fields: f2, identity: i2)
            let laidOut = a.stored.layout == b.stored.layout
            #expect((a == b.stored) == laidOut, "\(f1) \(i1) vs \(f2) \(i2)")
            #expect((a.stored == b) == laidOut)
            #expect((a == b) == laidOut)
            if laidOut {
                equalCount += 1
                #expect(a.hashValue == b.hashValue && a.hashValue == b.stored.hashValue)
            }
        }
        #expect(equalCount > 1000 && equalCount < 3000)
    }

    /// Fingerprints whose digests are equal by construction (same identity, same value lengths and tails) are
    /// still told apart, whichever side is kept: the digest only picks the bucket.
    @Test func equalDigestsDoNotMakeEqualFingerprints() throws {
        let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring())
        let (_, metadata) = try Self.stored(encryptor)
        let dataKey = try encryptor.dataKey(of: metadata, identity: Self.identity)
        let a = [(name: "x-amz-meta-s3eg-mac", value: "AAAAAAAA12345678")]
        let b = [(name: "x-amz-meta-s3eg-mac", value: "BBBBBBBB12345678")]
        let c = [(name: "x-amz-meta-s3eg-maC", value: "AAAAAAAA12345678")]
        let prints = [a, b, c].map { MetadataFingerprint(fields: $0, identity: Self.identity) }
        #expect(prints[0].hashValue == prints[1].hashValue && prints[0].hashValue == prints[2].hashValue)
        #expect(prints[0] != prints[1] && prints[0] != prints[2] && prints[1] != prints[2])
        let cache = VerifiedMetadataCache(capacity: 8, ttl: .seconds(60))
        cache.insert(metadata, dataKey: dataKey, for: prints[0])
        #expect(cache.lookup(prints[0]) != nil)
        #expect(cache.lookup(prints[1]) == nil)
        #expect(cache.lookup(prints[2]) == nil)
        cache.insert(metadata, dataKey: dataKey, for: prints[1])
        #expect(cache.count == 2)
    }

    @Test func entriesExpireAndTheLeastRecentlyUsedGoFirst() throws {
        let clock = ManualClock()
        let cache = VerifiedMetadataCache(capacity: 8, ttl: .seconds(60), clock: clock.read)
        let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring())
        let (_, metadata) = try Self.stored(encryptor)
        let dataKey = try encryptor.dataKey(of: metadata, identity: Self.identity)
        func print(_ i: Int) -> MetadataFingerprint {
            MetadataFingerprint(fields: [], identity: ObjectIdentity(bucket: "b", key: "k\(i)"))
        }
        cache.insert(metadata, dataKey: dataKey, for: print(0))
        #expect(cache.lookup(print(0))?.metadata == metadata)
        #expect(cache.lookup(print(0))?.dataKey == dataKey)
        clock.advance(.seconds(59))
        #expect(cache.lookup(print(0)) != nil)
        clock.advance(.seconds(2))
        #expect(cache.lookup(print(0)) == nil)
        #expect(cache.lookup(print(0)) == nil)
        // Checked again, it is kept again (in place of the expired entry).
        cache.insert(metadata, dataKey: dataKey, for: print(0))
        #expect(cache.lookup(print(0)) != nil)
        #expect(cache.count == 1)
        // Eviction drops expired entries first, then the least recently used down to 7/8 of capacity.
        clock.advance(.seconds(61))
        for i in 1...8 { cache.insert(metadata, dataKey: dataKey, for: print(i)) }
        #expect(cache.count == 7)
        #expect(cache.lookup(print(0)) == nil)
        #expect(cache.lookup(print(1)) == nil)
        for i in 2...8 { #expect(cache.lookup(print(i)) != nil) }
        clock.advance(.seconds(61))

        for i in 0..<8 { cache.insert(metadata, dataKey: dataKey, for: print(i)) }
        _ = cache.lookup(print(0))  // recently used: survives
        cache.insert(metadata, dataKey: dataKey, for: print(99))
        #expect(cache.count <= 8)
        #expect(cache.lookup(print(0)) != nil)
        #expect(cache.lookup(print(99)) != nil)
        #expect(cache.lookup(print(1)) == nil)

        for disabled in [VerifiedMetadataCache(capacity: 0, ttl: .seconds(60)), VerifiedMetadataCache(capacity: 8, ttl: .zero)] {
            disabled.insert(metadata, dataKey: dataKey, for: print(0))
            #expect(disabled.lookup(print(0)) == nil)
            #expect(disabled.count == 0)
        }
    }

    @Test func onlyVerifiedMetadataIsRemembered() throws {
        let cache = VerifiedMetadataCache(capacity: 16, ttl: .seconds(60))
        let encryptor = ObjectEncryptor(keys: EncryptionFixtures.ring(), verified: cache)
        let (fields, metadata) = try Self.stored(encryptor)
        let fingerprint = MetadataFingerprint(fields: fields, identity: Self.identity)
        #expect(encryptor.verifiedMetadata(fingerprint) == nil)
        let dataKey = try encryptor.dataKey(of: metadata, identity: Self.identity, remembering: fingerprint)
        #expect(encryptor.verifiedMetadata(fingerprint)?.dataKey == dataKey)
        #expect(encryptor.verifiedMetadata(fingerprint)?.metadata == metadata)
        // The remembered key opens the body with the segment key it carries (what HKDF gives for the object's salt).
        guard case .single(let salt) = metadata.layout else { Issue.record("single-part expected"); return }
        let remembered = try #require(encryptor.verifiedMetadata(fingerprint)?.dataKey)
        #expect(remembered.derivedSegment?.salt == salt && remembered.derivedSegment?.partNumber == 0)
        #expect(dataKey.derivedSegment?.salt == salt, "the first read uses it too")
        let unwrapped = try encryptor.dataKey(of: metadata, identity: Self.identity)
        #expect(try remembered.segmentKey(salt: salt, partNumber: 0)
                == KDF.hkdfSHA256(key: unwrapped.bytes, salt: salt, info: FormatV1.segmentInfoLabel + [0, 0, 0, 0], length: 32))

        // The same headers under another key fail their MAC and are not remembered.
        let elsewhere = ObjectIdentity(bucket: "b", key: "other")
        let moved = MetadataFingerprint(fields: fields, identity: elsewhere)
        #expect(encryptor.verifiedMetadata(moved) == nil)
        #expect(throws: EncryptionError.self) { try encryptor.dataKey(of: metadata, identity: elsewhere, remembering: moved) }
        #expect(encryptor.verifiedMetadata(moved) == nil)

        // An edited record fails (and stays failing), the original stays served.
        var forged = fields
        let etag = forged.firstIndex { $0.name == "x-amz-meta-s3eg-etag" }!
        forged[etag].value = String(repeating: "ab", count: 16)
        let forgedMetadata = try #require(try EncryptionMetadata.parse(fields: forged))
        let forgedPrint = MetadataFingerprint(fields: forged, identity: Self.identity)
        for _ in 0..<2 {
            #expect(encryptor.verifiedMetadata(forgedPrint) == nil)
            #expect(throws: EncryptionError.self) {
                try encryptor.dataKey(of: forgedMetadata, identity: Self.identity, remembering: forgedPrint)
            }
        }
        #expect(cache.count == 1)
        #expect(encryptor.verifiedMetadata(fingerprint)?.dataKey == dataKey)

        // Without a cache nothing is remembered (nor derived ahead).
        let plain = ObjectEncryptor(keyRing: EncryptionFixtures.ring())
        #expect(try plain.dataKey(of: metadata, identity: Self.identity, remembering: fingerprint).derivedSegment == nil)
        #expect(plain.verifiedMetadata(fingerprint) == nil)
    }
}
