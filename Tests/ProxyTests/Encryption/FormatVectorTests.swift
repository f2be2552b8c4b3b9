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
