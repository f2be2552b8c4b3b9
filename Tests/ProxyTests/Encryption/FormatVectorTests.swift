import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// The worked example of docs/FORMAT.md §10. The expected values were produced by this
/// implementation and cross-checked with an independent decryptor written from FORMAT.md alone
/// (Python `cryptography`); this test keeps the format from drifting.
@Suite struct FormatVectorTests {
    static let password = "correct horse battery staple"
    static let identity = ObjectIdentity(bucket: "example-bucket", key: "docs/hello.txt")

    /// name → value, in document order.
    static func vectors() throws -> [(String, String)] {
        var out: [(String, String)] = []
        let master = try KDF.scrypt(password: Array(password.utf8), salt: FormatV1.kdfSalt,
                                    n: FormatV1.scryptN, r: FormatV1.scryptR, p: FormatV1.scryptP, length: 32)
        let kek = try KeyEncryptionKey.derive(master: master)
        out.append(("master", Encoding.hex(master)))
        out.append(("kek", Encoding.hex(kek.key)))
        out.append(("key-id", kek.idHex))

        let ring = try KeyRing(active: kek)
        let dek = try DataKey(bytes: Array(0x00...0x1f))
        let salt: [UInt8] = Array(0xa0...0xaf)
        let wrapNonce: [UInt8] = Array(0xb0...0xbb)

        // Object A: default chunk size, 16-byte plaintext, one (final) chunk.
        let bindingA = WrapBinding(identity: identity, cipher: .aes256GCM, chunkSize: 65536, layout: .single)
        let (_, wrappedA) = try ring.wrap(dek, binding: bindingA, nonce: wrapNonce)
        out.append(("A.wrap-aad", Encoding.hex(bindingA.associatedData(keyID: kek.id))))
        out.append(("A.wrapped-key", Data(wrappedA).base64EncodedString()))
        let segmentKey = try dek.segmentKey(salt: salt, partNumber: 0)
        out.append(("segment-key", Encoding.hex(segmentKey)))
        let plaintextA = Array("Hello, gateway!\n".utf8)
        let sealerA = try ChunkSealer(cipher: .aes256GCM, segmentKey: segmentKey, layout: .default)
        var bodyA: [UInt8] = []
        try sealerA.update(plaintextA) { bodyA += $0 }
        try sealerA.finish { bodyA += $0 }
        let nonceAAD = ChunkNonceAAD(cipher: .aes256GCM, chunkSize: 65536, partNumber: 0)
        nonceAAD.set(index: 0, final: true)
        out.append(("A.chunk0.nonce", Encoding.hex(UnsafeRawBufferPointer(nonceAAD.nonce))))
        out.append(("A.chunk0.aad", Encoding.hex(UnsafeRawBufferPointer(nonceAAD.aad))))
        out.append(("A.body", Encoding.hex(bodyA)))

        // Object B: chunk size 4096, 4100 bytes (i mod 251), two chunks, same DEK and salt.
        let bindingB = WrapBinding(identity: identity, cipher: .aes256GCM, chunkSize: 4096, layout: .single)
        let (_, wrappedB) = try ring.wrap(dek, binding: bindingB, nonce: wrapNonce)
        out.append(("B.wrapped-key", Data(wrappedB).base64EncodedString()))
        let plaintextB = (0..<4100).map { UInt8($0 % 251) }
        let sealerB = try ChunkSealer(cipher: .aes256GCM, segmentKey: segmentKey, layout: try ChunkLayout(chunkSize: 4096))
        var bodyB: [UInt8] = []
        try sealerB.update(plaintextB) { bodyB += $0 }
        try sealerB.finish { bodyB += $0 }
        let nonceAADB = ChunkNonceAAD(cipher: .aes256GCM, chunkSize: 4096, partNumber: 0)
        nonceAADB.set(index: 1, final: true)
        out.append(("B.chunk1.nonce", Encoding.hex(UnsafeRawBufferPointer(nonceAADB.nonce))))
        out.append(("B.chunk1.aad", Encoding.hex(UnsafeRawBufferPointer(nonceAADB.aad))))
        out.append(("B.length", String(bodyB.count)))
        out.append(("B.chunk0.tag", Encoding.hex(bodyB[4096..<4112])))
        out.append(("B.chunk1", Encoding.hex(bodyB[4112...])))
        out.append(("B.sha256", Encoding.hex(Digest.hash(.sha256, bodyB))))
        return out
    }

    static let expected: [(String, String)] = [
        ("master", "1f0279b531de74f1903be7489929f3b0d5671e98eaf53280fb83c513a9f2acf8"),
        ("kek", "d3fbaa64598001999dac8474e02563f991c4c4feb2392f042f20e708853f392f"),
        ("key-id", "cf2cd6307db37bc2"),
        ("A.wrap-aad", "733365672f76312064656b00010001000001cf2cd6307db37bc20000000e6578616d706c652d6275636b65740000000e646f63732f68656c6c6f2e747874"),
        ("A.wrapped-key", "sLGys7S1tre4ubq78FfWM1OJe69wRWpxotDQoNZ4LSIQEf0z9hUv8QOocuumzCISQUIdraXAG647eiNJ"),
        ("segment-key", "85897c316dfb32cdfd1293efe10b7c89bc12276912d2f942c1ab4ef396a40644"),
        ("A.chunk0.nonce", "800000000000000000000000"),
        ("A.chunk0.aad", "733365670101010000010000000000000000000000000000"),
        ("A.body", "2a663d6c022361b80c6f43bf59a3673e84ac0fab3e133421123479071f316c6e"),
        ("B.wrapped-key", "sLGys7S1tre4ubq78FfWM1OJe69wRWpxotDQoNZ4LSIQEf0z9hUv8QOocutKvR77vQJgtNdyQc3A6IAW"),
        ("B.chunk1.nonce", "800000000000000000000001"),
        ("B.chunk1.aad", "733365670101010000001000000000000000000000000001"),
        ("B.length", "4132"),
        ("B.chunk0.tag", "b1265f71ef2c49f36517a9820bc3f4a0"),
        ("B.chunk1", "7305b4655d7a407c3b79bc599d2ad1042cd98fec"),
        ("B.sha256", "c64b4c07d4df9b36444016575c4a7eee4e8c08cd002b51339766ec2e81c0520f"),
    ]

    /// Version 2 (FORMAT.md §10.2): the same password, DEK, salt and wrap nonce as version 1.
    static func vectorsV2() throws -> [(String, String)] {
        var out: [(String, String)] = []
        let kek = try KeyEncryptionKey.derive(password: password)
        let ring = try KeyRing(active: kek)
        let dek = try DataKey(bytes: Array(0x00...0x1f))
        let salt: [UInt8] = Array(0xa0...0xaf)
        let wrapNonce: [UInt8] = Array(0xb0...0xbb)
        let context = WrapContext(identity: identity)
        let wrapping = KeyRing.wrappingKey(ring.active)
        out.append(("wrap-aad", Encoding.hex(context.associatedData(reference: wrapping.reference))))
        let wrapped = try LocalKeyWrap.seal(dek, with: wrapping, context: context, nonce: wrapNonce)
        out.append(("wrapped-key", Data(wrapped.bytes).base64EncodedString()))
        out.append(("mac-key", Encoding.hex(try MetadataMAC.key(dek))))

        // Object C: object A of version 1 (same body) with version 2 metadata and an ETag record.
        let plaintextC = Array("Hello, gateway!\n".utf8)
        var metaC = EncryptionMetadata(cipher: .aes256GCM, chunkSize: 65536, layout: .single(salt: salt), wrappedKey: wrapped,
                                       plaintextMD5: Digest.hash(.md5, plaintextC))
        out.append(("C.mac-input", Encoding.hex(MetadataMAC.input(metaC, identity: identity))))
        metaC.mac = try MetadataMAC.compute(metaC, identity: identity, dataKey: dek)
        for (name, value) in metaC.headers.sorted(by: { $0.key < $1.key }) { out.append(("C." + name, value)) }
        #expect(try ObjectEncryptor(keyRing: ring).dataKey(of: metaC, identity: identity) == dek)

        // Object D: multipart, chunk size 4096, part 1 = 8192 bytes (i mod 251), part 2 = 100 bytes ((i + 7) mod 251).
        var metaD = EncryptionMetadata(cipher: .aes256GCM, chunkSize: 4096, layout: .multipart, wrappedKey: wrapped)
        metaD.mac = try MetadataMAC.compute(metaD, identity: identity, dataKey: dek)
        out.append(("D.mac", metaD.headers[FormatV2.macHeader]!))
        let layoutD = try ChunkLayout(chunkSize: 4096)
        let parts: [(Int, [UInt8], [UInt8])] = [
            (1, (0..<8192).map { UInt8($0 % 251) }, Array(0xc0...0xcf)),
            (2, (0..<100).map { UInt8(($0 + 7) % 251) }, Array(0xd0...0xdf)),
        ]
        var bodyD: [UInt8] = []
        for (pn, plain, partSalt) in parts {
            let header = try PartHeader(partNumber: pn, plaintextLength: plain.count, salt: partSalt)
            out.append(("D.part\(pn).header", Encoding.hex(header.bytes)))
            let sealer = try ChunkSealer(cipher: .aes256GCM, segmentKey: dek.segmentKey(salt: partSalt, partNumber: pn), layout: layoutD,
                                         partNumber: pn)
            var segment: [UInt8] = []
            try sealer.update(plain) { segment += $0 }
            try sealer.finish { segment += $0 }
            out.append(("D.part\(pn).last-chunk", Encoding.hex(segment.suffix(pn == 2 ? 116 : 16))))
            bodyD += header.bytes + segment
        }
        out.append(("D.length", String(bodyD.count)))
        out.append(("D.sha256", Encoding.hex(Digest.hash(.sha256, bodyD))))
        let upload = try UploadToken.encode(cipher: .aes256GCM, chunkSize: 4096, wrappedKey: wrapped, backendUploadID: "example-upload-id",
                                            identity: identity, dataKey: dek)
        out.append(("D.upload-id", upload))
        return out
    }

    static let expectedV2: [(String, String)] = [
        ("wrap-aad", "733365672f76322064656b000000000870617373776f72640000001063663263643633303764623337626332000000000000000e6578616d706c652d6275636b65740000000e646f63732f68656c6c6f2e747874"),
        ("wrapped-key", "sLGys7S1tre4ubq78FfWM1OJe69wRWpxotDQoNZ4LSIQEf0z9hUv8QOocuur2bHerVBmfQ8PG8bg4SlW"),
        ("mac-key", "ec2aff20d4f94b50574f7bbbce6933c5345d63ec718dbae16039b0807ddd709d"),
        ("C.mac-input", "733365672f7632206d65746164617461000000000e6578616d706c652d6275636b65740000000e646f63732f68656c6c6f2e7478740000001a782d616d7a2d6d6574612d733365672d6368756e6b2d73697a6500000005363535333600000016782d616d7a2d6d6574612d733365672d6369706865720000000b4145532d3235362d47434d00000014782d616d7a2d6d6574612d733365672d6574616700000020646163383134346536396530316464316663313937646437616437383662363400000016782d616d7a2d6d6574612d733365672d6b65792d6964000000106366326364363330376462333762633200000016782d616d7a2d6d6574612d733365672d6c61796f75740000000673696e676c6500000018782d616d7a2d6d6574612d733365672d70726f76696465720000000870617373776f726400000014782d616d7a2d6d6574612d733365672d73616c7400000020613061316132613361346135613661376138613961616162616361646165616600000017782d616d7a2d6d6574612d733365672d76657273696f6e00000001320000001b782d616d7a2d6d6574612d733365672d777261707065642d6b657900000050734c4779733753317472653475627137384666574d314f4a65363977525770786f7444516f4e5a344c5349514566307a3968557638514f6f63757572326248657256426d665138504738626734536c57"),
        ("C.x-amz-meta-s3eg-chunk-size", "65536"),
        ("C.x-amz-meta-s3eg-cipher", "AES-256-GCM"),
        ("C.x-amz-meta-s3eg-etag", "dac8144e69e01dd1fc197dd7ad786b64"),
        ("C.x-amz-meta-s3eg-key-id", "cf2cd6307db37bc2"),
        ("C.x-amz-meta-s3eg-layout", "single"),
        ("C.x-amz-meta-s3eg-mac", "M4eOpVHpdzeXGQpx/q7DUX6TRMHmnHkrBOKPlSuErgo="),
        ("C.x-amz-meta-s3eg-provider", "password"),
        ("C.x-amz-meta-s3eg-salt", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"),
        ("C.x-amz-meta-s3eg-version", "2"),
        ("C.x-amz-meta-s3eg-wrapped-key", "sLGys7S1tre4ubq78FfWM1OJe69wRWpxotDQoNZ4LSIQEf0z9hUv8QOocuur2bHerVBmfQ8PG8bg4SlW"),
        ("D.mac", "Ov3P7WRmwpNbwPIQMqCzVLIpF7T6DLj7dU85L5CrdQM="),
        ("D.part1.header", "7333656701500000000000010000000000002000c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"),
        ("D.part1.last-chunk", "9904bd4d70a035b3f1742e07446d0f5a"),
        ("D.part2.header", "7333656701500000000000020000000000000064d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"),
        ("D.part2.last-chunk", "f10d0ab506bf4a177e1fe833caf3270dc5074c4474b17bda64b81675a208965cb9e6793864875cf80cda47d8db8d3024108babbdfa79bd227a3c19dc3f21d9bcd0deb9861f475a237a800fed6467e55b3d88b7cea7a7dd0795c8253651503457ddd6f37eaf96b25ba11c24eee42ea865762d054f"),
        ("D.length", "8412"),
        ("D.sha256", "5a490082c93a3fca05bc35625405d8577e5b640edeb31ff48eab6c8517c33954"),
        ("D.upload-id", "s3eg2.AgEAABAACHBhc3N3b3JkABBjZjJjZDYzMDdkYjM3YmMyAAAAPLCxsrO0tba3uLm6u_BX1jNTiXuvcEVqcaLQ0KDWeC0iEBH9M_YVL_EDqHLrq9mx3q1QZn0PDxvG4OEpVgARZXhhbXBsZS11cGxvYWQtaWQ3oFgMpk5QtAVzTqRZsq0U"),
    ]

    @Test func vectorsV2MatchTheDocument() throws {
        let actual = try Self.vectorsV2()
        if ProcessInfo.processInfo.environment["PRINT_FORMAT_VECTORS"] != nil {
            for (name, value) in actual { print("VECTOR2 \(name) = \(value)") }
        }
        #expect(actual.count == Self.expectedV2.count)
        for ((name, value), (expectedName, expectedValue)) in zip(actual, Self.expectedV2) {
            #expect(name == expectedName)
            #expect(value == expectedValue, "\(name)")
        }
    }

    @Test func vectorsMatchTheDocument() throws {
        let actual = try Self.vectors()
        if ProcessInfo.processInfo.environment["PRINT_FORMAT_VECTORS"] != nil {
            for (name, value) in actual { print("VECTOR \(name) = \(value)") }
        }
        #expect(actual.count == Self.expected.count)
        for ((name, value), (expectedName, expectedValue)) in zip(actual, Self.expected) {
            #expect(name == expectedName)
            #expect(value == expectedValue, "\(name)")
        }
    }
}
