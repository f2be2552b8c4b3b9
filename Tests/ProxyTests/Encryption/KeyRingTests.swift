import Testing
@testable import Proxy
@testable import Shared

@Suite struct KeyRingTests {
    let identity = ObjectIdentity(bucket: "photos", key: "2024/cat.jpg")

    private func binding(_ identity: ObjectIdentity, cipher: AEADAlgorithm = .aes256GCM, chunk: Int = 65536,
                         layout: ObjectLayout.Kind = .single) -> WrapBinding {
        WrapBinding(identity: identity, cipher: cipher, chunkSize: chunk, layout: layout)
    }

    @Test func passwordDerivationIsDeterministicAndKeyIDsDiffer() throws {
        let a1 = try KeyEncryptionKey.derive(password: "correct horse battery staple")
        let a2 = try KeyEncryptionKey.derive(password: "correct horse battery staple")
        let b = try KeyEncryptionKey.derive(password: "correct horse battery stapler")
        #expect(a1.id == a2.id && a1.key == a2.key)
        #expect(a1.id != b.id && a1.key != b.key)
        #expect(a1.id.count == 8 && a1.key.count == 32)
        #expect(a1.idHex.count == 16)
        // The id is not a prefix of the key.
        #expect(Array(a1.key.prefix(8)) != a1.id)
        #expect(throws: EncryptionError.self) { try KeyRing.derive(activePassword: "") }
    }

    /// A key carrying a segment key derived ahead returns exactly what HKDF gives, and only for that segment:
    /// another salt or part number is derived as usual; equality is the key bytes alone.
    @Test(arguments: [
        (salt: UInt8(2), part: 0), (salt: 3, part: 0), (salt: 2, part: 1), (salt: 3, part: 7),
    ])
    func segmentKeysDerivedAheadServeOnlyTheirSegment(salt: UInt8, part: Int) throws {
        let plain = try DataKey(bytes: [UInt8](repeating: 9, count: 32))
        let ahead = try plain.derivingSegmentKey(salt: [UInt8](repeating: 2, count: 16), partNumber: 0)
        #expect(ahead == plain)
        #expect(ahead.derivedSegment?.partNumber == 0 && plain.derivedSegment == nil)
        let asked = [UInt8](repeating: salt, count: 16)
        let expected = try KDF.hkdfSHA256(key: plain.bytes, salt: asked, info: FormatV1.segmentInfoLabel + [0, 0, 0, UInt8(part)],
                                          length: 32)
        #expect(try ahead.segmentKey(salt: asked, partNumber: part) == expected)
        #expect(try plain.segmentKey(salt: asked, partNumber: part) == expected)
        // Another key with the same segment derived ahead gives its own.
        let other = try DataKey(bytes: [UInt8](repeating: 8, count: 32)).derivingSegmentKey(salt: asked, partNumber: part)
        #expect(try other.segmentKey(salt: asked, partNumber: part) != expected)
        // The checks of the salt and part number still apply.
        #expect(throws: EncryptionError.self) { try ahead.segmentKey(salt: [2], partNumber: 0) }
        #expect(throws: EncryptionError.self) { try ahead.segmentKey(salt: asked, partNumber: -1) }
    }

    /// `withSegmentKey` hands over the same bytes `segmentKey` returns; a carried segment's are its own storage (the
    /// same address every time: no copy), any other segment's are derived; bad salts and parts still throw.
    @Test(arguments: [
        (salt: UInt8(2), part: 0, carried: true), (salt: 3, part: 0, carried: false), (salt: 2, part: 1, carried: false),
    ])
    func segmentKeysLentWithoutACopy(salt: UInt8, part: Int, carried: Bool) throws {
        let ahead = try DataKey(bytes: [UInt8](repeating: 9, count: 32)).derivingSegmentKey(salt: [UInt8](repeating: 2, count: 16),
                                                                                          partNumber: 0)
        let asked = [UInt8](repeating: salt, count: 16)
        let expected = try ahead.segmentKey(salt: asked, partNumber: part)
        let first = try ahead.withSegmentKey(salt: asked, partNumber: part) { (raw) throws(EncryptionError) in (Array(raw), raw.baseAddress) }
        let second = try ahead.withSegmentKey(salt: asked, partNumber: part) { (raw) throws(EncryptionError) in raw.baseAddress }
        #expect(first.0 == expected)
        if carried { #expect(first.1 == second) }
        #expect(throws: EncryptionError.self) {
            try ahead.withSegmentKey(salt: [2], partNumber: 0) { (_) throws(EncryptionError) in 0 }
        }
        #expect(throws: EncryptionError.self) {
            try ahead.withSegmentKey(salt: asked, partNumber: -1) { (_) throws(EncryptionError) in 0 }
        }
        // The body's own error comes out as it was thrown.
        #expect(throws: EncryptionError.self) {
            try ahead.withSegmentKey(salt: asked, partNumber: part) { (_) throws(EncryptionError) in
                throw EncryptionError(.tamperDetected, "from the body")
            }
        }
    }

    @Test func wrapUnwrapRoundTripAndBinding() throws {
        let ring = EncryptionFixtures.ring()
        let dek = DataKey.generate()
        let (keyID, wrapped) = try ring.wrap(dek, binding: binding(identity))
        #expect(wrapped.count == 60)
        #expect(keyID == ring.active.id)
        #expect(try ring.unwrap(wrapped, keyID: keyID, binding: binding(identity)) == dek)

        let others: [WrapBinding] = [
            binding(ObjectIdentity(bucket: "photos", key: "2024/dog.jpg")),
            binding(ObjectIdentity(bucket: "photos2", key: "2024/cat.jpg")),
            // Length prefixes keep "ab"+"c" and "a"+"bc" apart.
            binding(ObjectIdentity(bucket: "photos2", key: "024/cat.jpg")),
            binding(identity, cipher: .chacha20Poly1305),
            binding(identity, chunk: 4096),
            binding(identity, layout: .multipart),
        ]
        for other in others {
            do {
                _ = try ring.unwrap(wrapped, keyID: keyID, binding: other)
                Issue.record("unwrapped under \(other)")
            } catch {
                #expect(error.code == .tamperDetected)
            }
        }
        var damaged = wrapped
        damaged[30] ^= 0x01
        #expect(throws: EncryptionError.self) { try ring.unwrap(damaged, keyID: keyID, binding: binding(identity)) }
        #expect(throws: EncryptionError.self) { try ring.unwrap(Array(wrapped.dropLast()), keyID: keyID, binding: binding(identity)) }
    }

    @Test func previousKeysReadButNeverWrite() throws {
        let old = EncryptionFixtures.ring("old")
        let dek = DataKey.generate()
        let (oldID, wrapped) = try old.wrap(dek, binding: binding(identity))

        let rotated = EncryptionFixtures.ring("new", previous: ["old"])
        #expect(rotated.keys.count == 2)
        #expect(try rotated.unwrap(wrapped, keyID: oldID, binding: binding(identity)) == dek)
        #expect(try rotated.wrap(dek, binding: binding(identity)).keyID == EncryptionFixtures.kek("new").id)

        let unrelated = EncryptionFixtures.ring("other")
        do {
            _ = try unrelated.unwrap(wrapped, keyID: oldID, binding: binding(identity))
            Issue.record("unknown key id accepted")
        } catch {
            #expect(error.code == .unknownKeyID)
        }
        // Listing the active key again as previous is harmless.
        #expect(EncryptionFixtures.ring("new", previous: ["new", "old"]).keys.count == 2)
    }

    @Test func swappedObjectsFailAndCopyRewrapsOnlyTheKey() throws {
        let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring(), layout: try ChunkLayout(chunkSize: 4096))
        let a = ObjectIdentity(bucket: "b", key: "a.txt")
        let b = ObjectIdentity(bucket: "b", key: "b.txt")
        let (metaA, sealerA) = try encryptor.beginObject(a)
        var bodyA: [UInt8] = []
        try sealerA.update(Array("secret of a".utf8)) { bodyA += $0 }
        try sealerA.finish { bodyA += $0 }

        // The backend swaps bodies + metadata of a and b: a's metadata read as b fails at the unwrap.
        do {
            _ = try encryptor.opener(for: metaA, identity: b)
            Issue.record("a's data key opened under b's name")
        } catch {
            #expect(error.code == .tamperDetected)
        }

        // CopyObject a → b: same body, re-wrapped key, opens under b and no longer under a.
        let metaB = try encryptor.rewrap(metaA, from: a, to: b)
        #expect(metaB.wrappedKey != metaA.wrappedKey)
        #expect(metaB.layout == metaA.layout && metaB.chunkSize == metaA.chunkSize)
        let opener = try encryptor.opener(for: metaB, identity: b)
        var plain: [UInt8] = []
        try opener.update(bodyA) { plain += $0 }
        try opener.finish { plain += $0 }
        #expect(plain == Array("secret of a".utf8))
        #expect(throws: EncryptionError.self) { try encryptor.opener(for: metaB, identity: a) }

        // Rotation by copying onto itself with a new active key.
        let rotated = ObjectEncryptor(keyRing: try KeyRing(active: EncryptionFixtures.kek("next"), previous: [EncryptionFixtures.kek("test")]))
        let metaRotated = try rotated.rewrap(metaA, from: a, to: a)
        #expect(metaRotated.keyReference.keyID == EncryptionFixtures.kek("next").idHex)
        _ = try rotated.opener(for: metaRotated, identity: a)
    }

    @Test func multipartPartsAreIndependentSegments() throws {
        let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring(), layout: try ChunkLayout(chunkSize: 4096))
        let id = ObjectIdentity(bucket: "b", key: "big.bin")
        let (meta, upload) = try EncryptionFixtures.upload(encryptor, id)
        #expect(meta.layout == .multipart)
        let plain = Array(repeating: UInt8(7), count: 5000)
        // The same part number uploaded twice gets two salts, hence two keys: different ciphertext.
        var bodies: [[UInt8]] = []
        var headers: [[UInt8]] = []
        for _ in 0..<2 {
            let (header, sealer) = try encryptor.beginPart(of: upload, partNumber: 3, plaintextLength: plain.count)
            var body: [UInt8] = []
            try sealer.update(plain) { body += $0 }
            try sealer.finish { body += $0 }
            #expect(header.count == PartHeader.size)
            headers.append(header)
            bodies.append(body)
        }
        #expect(headers[0] != headers[1] && bodies[0] != bodies[1])
        for (header, body) in zip(headers, bodies) {
            let parsed = try PartHeader.parse(header)
            #expect(parsed.partNumber == 3 && parsed.plaintextLength == 5000)
            let opener = try encryptor.partOpener(for: meta, identity: id, header: parsed)
            var out: [UInt8] = []
            try opener.update(body) { out += $0 }
            try opener.finish { out += $0 }
            #expect(out == plain)
        }
        // Body of attempt 1 behind the header of attempt 2: other salt, other key.
        let wrongOpener = try encryptor.partOpener(for: meta, identity: id, header: try PartHeader.parse(headers[1]))
        #expect(throws: EncryptionError.self) {
            try wrongOpener.update(bodies[0]) { _ in }
            try wrongOpener.finish { _ in }
        }
    }

    @Test func partHeaderParsingIsStrict() throws {
        let header = try PartHeader(partNumber: 10_000, plaintextLength: 5 << 30, salt: Array(0..<16)).bytes
        #expect(try PartHeader.parse(header).plaintextLength == 5 << 30)
        var rng = SplitMix64(seed: 5)
        for _ in 0..<2000 {
            var mutated = header
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            if Bool.random(using: &rng) { mutated = Array(mutated.prefix(Int.random(in: 0...40, using: &rng))) }
            if let parsed = try? PartHeader.parse(mutated) {
                // Whatever parses re-encodes to the same bytes.
                #expect(parsed.bytes == mutated)
            }
        }
        #expect(throws: EncryptionError.self) { try PartHeader(partNumber: 0, plaintextLength: 1, salt: Array(0..<16)) }
    }
}

@Suite struct MultipartOpenerTests {
    let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring(), cipher: .chacha20Poly1305, layout: try! ChunkLayout(chunkSize: 4096))
    let id = ObjectIdentity(bucket: "b", key: "mp.bin")

    /// Seals parts (number, plaintext) into one backend body, records as FORMAT.md §9 lays them out.
    private func object(_ upload: MultipartUpload, _ parts: [(Int, [UInt8])]) throws -> [[UInt8]] {
        try parts.map { (pn, plain) in
            let (header, sealer) = try encryptor.beginPart(of: upload, partNumber: pn, plaintextLength: plain.count)
            var body = header
            try sealer.update(plain) { body += $0 }
            try sealer.finish { body += $0 }
            return body
        }
    }

    private func open(_ meta: EncryptionMetadata, _ body: [UInt8], pieces: Int) throws -> [UInt8] {
        let opener = try MultipartOpener(encryptor: encryptor, metadata: meta, identity: id)
        var out: [UInt8] = []
        var rng = SplitMix64(seed: UInt64(pieces))
        var offset = 0
        while offset < body.count {
            let n = min(body.count - offset, Int.random(in: 1...pieces, using: &rng))
            try opener.update(Array(body[offset..<(offset + n)])) { out += $0 }
            offset += n
        }
        try opener.finish()
        return out
    }

    @Test func opensPartsInOrderAndConvertsSizes() throws {
        let (meta, upload) = try EncryptionFixtures.upload(encryptor, id)
        var rng = SplitMix64(seed: 1)
        let parts = [(1, rng.bytes(8192)), (2, rng.bytes(8192)), (5, rng.bytes(100))]
        let body = try object(upload, parts).flatMap { $0 }
        let plain = parts.flatMap { $0.1 }
        for pieces in [1, 37, 5000, 100_000] {
            #expect(try open(meta, body, pieces: pieces) == plain)
        }
        #expect(encryptor.layout.multipartPlaintextLength(ciphertextLength: body.count, partCount: 3) == plain.count)
    }

    @Test func rejectsReorderedDroppedAndTruncatedParts() throws {
        let (meta, upload) = try EncryptionFixtures.upload(encryptor, id)
        var rng = SplitMix64(seed: 2)
        let records = try object(upload, [(1, rng.bytes(5000)), (2, rng.bytes(5000)), (3, rng.bytes(10))])
        let cases: [[UInt8]] = [
            records[1] + records[0] + records[2],          // reordered
            records[0] + records[0] + records[2],          // duplicated
            records[0] + records[1],                       // last part dropped: still well-formed… see below
            Array((records[0] + records[1] + records[2]).dropLast(1)),
            Array((records[0] + records[1]).dropLast(16)),
            [],
        ]
        for (i, body) in cases.enumerated() where i != 2 {
            #expect(throws: EncryptionError.self, "case \(i)") { _ = try open(meta, body, pieces: 700) }
        }
        // Dropping whole trailing parts cannot be detected from the body alone (the metadata is
        // written before the parts exist); the backend's part count in the ETag (-N) is the check.
        #expect(try open(meta, cases[2], pieces: 700).count == 10_000)
        // A part from another object (other DEK) is rejected.
        let (_, otherUpload) = try EncryptionFixtures.upload(encryptor, id)
        let foreign = try object(otherUpload, [(2, rng.bytes(5000))])
        #expect(throws: EncryptionError.self) { _ = try open(meta, records[0] + foreign[0], pieces: 700) }
    }
}
