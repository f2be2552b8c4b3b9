import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// The spare opening context a cached segment key keeps between reads.
@Suite struct SpareOpenContextTests {
    static let identity = ObjectIdentity(bucket: "b", key: "k")

    private static func box(_ cipher: AEADAlgorithm, sealing: Bool = false) throws -> OpenContextBox {
        OpenContextBox(try AEADContext(algorithm: cipher, key: [UInt8](repeating: 1, count: 32), sealing: sealing))
    }

    @Test func oneSpareAtATimeOnlyForItsCipherAndOnlyForOpening() throws {
        let spare = SpareOpenContext()
        #expect(spare.take(.aes256GCM) == nil)
        let first = try Self.box(.aes256GCM)
        spare.giveBack(first)
        #expect(spare.isHolding)
        // A second one given back while the slot is full is dropped.
        spare.giveBack(try Self.box(.aes256GCM))
        #expect(spare.take(.aes256GCM) === first)
        #expect(!spare.isHolding)
        #expect(spare.take(.aes256GCM) == nil, "taken: nobody else gets it")
        // Another cipher's (or a sealing) context is never handed out, and not kept either.
        spare.giveBack(first)
        #expect(spare.take(.chacha20Poly1305) == nil)
        #expect(!spare.isHolding)
        spare.giveBack(try Self.box(.aes256GCM, sealing: true))
        #expect(spare.take(.aes256GCM) == nil)
        #expect(!spare.isHolding)
    }

    /// Reads of a cached object reuse one context: in turn, at the same time (each its own), after a read failed
    /// (that one's context is not kept), and every read decrypts what was sealed.
    @Test(arguments: AEADAlgorithm.allCases)
    func readsOfACachedKeyShareItsSpareOneAtATime(cipher: AEADAlgorithm) throws {
        let cache = VerifiedMetadataCache(capacity: 16, ttl: .seconds(60))
        let encryptor = ObjectEncryptor(keys: EncryptionFixtures.ring(), cipher: cipher, layout: try ChunkLayout(chunkSize: 4096),
                                        verified: cache)
        let plaintext = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let (metadata, sealer) = try encryptor.beginObject(Self.identity, plaintextLength: plaintext.count)
        var body: [UInt8] = []
        try sealer.update(plaintext) { body += $0 }
        try sealer.finish { body += $0 }
        let fingerprint = MetadataFingerprint(fields: metadata.headers.map { (name: $0.key, value: $0.value) }, identity: Self.identity)
        let dataKey = try encryptor.dataKey(of: metadata, identity: Self.identity, remembering: fingerprint)
        guard case .single(let salt) = metadata.layout else { Issue.record("single-part expected"); return }
        let spare = try #require(dataKey.spareOpenContext(salt: salt, partNumber: 0))
        #expect(dataKey.spareOpenContext(salt: salt, partNumber: 1) == nil)
        #expect(dataKey.spareOpenContext(salt: salt.reversed(), partNumber: 0) == nil)

        func read(_ body: [UInt8], _ opener: ChunkOpener) throws -> [UInt8] {
            var out: [UInt8] = []
            try opener.update(body) { out += $0 }
            try opener.finish { out += $0 }
            return out
        }
        #expect(!spare.isHolding)
        #expect(try read(body, encryptor.opener(for: metadata, dataKey: dataKey)) == plaintext)
        #expect(spare.isHolding, "the first read's context is kept")
        let cached = try #require(encryptor.verifiedMetadata(fingerprint)).dataKey
        #expect(try read(body, encryptor.opener(for: metadata, dataKey: cached)) == plaintext)
        #expect(spare.isHolding)
        do {
            // Two at once: one has the spare, the other its own; fed interleaved, both open right.
            let a = try encryptor.opener(for: metadata, dataKey: cached)
            #expect(!spare.isHolding)
            let b = try encryptor.opener(for: metadata, dataKey: cached)
            var outA: [UInt8] = [], outB: [UInt8] = []
            for start in stride(from: 0, to: body.count, by: 1000) {
                let piece = Array(body[start..<min(start + 1000, body.count)])
                try a.update(piece) { outA += $0 }
                try b.update(piece) { outB += $0 }
            }
            try a.finish { outA += $0 }
            try b.finish { outB += $0 }
            #expect(outA == plaintext && outB == plaintext)
        }
        #expect(spare.isHolding)
        // A tampered body fails with the spare, which is then not kept; the next read opens right.
        var tampered = body
        tampered[100] ^= 1
        #expect(throws: EncryptionError.self) { try read(tampered, encryptor.opener(for: metadata, dataKey: cached)) }
        #expect(!spare.isHolding)
        #expect(try read(body, encryptor.opener(for: metadata, dataKey: cached)) == plaintext)
        #expect(spare.isHolding)
        // A range read (from a later chunk) with the spare opens from there.
        let second = try encryptor.opener(for: metadata, dataKey: cached, firstChunkIndex: 1)
        #expect(try read(Array(body[metadata.chunkLayout.sealedChunkSize...]), second) == Array(plaintext[4096...]))
        // A key that carries no segment has no spare: its reads make their own.
        let uncached = try encryptor.dataKey(of: metadata, identity: Self.identity)
        #expect(uncached.spareOpenContext(salt: salt, partNumber: 0) == nil)
        #expect(try read(body, encryptor.opener(for: metadata, dataKey: uncached)) == plaintext)
    }
}
