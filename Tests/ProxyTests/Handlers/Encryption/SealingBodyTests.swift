import Foundation
import Shared
import Testing
@testable import Proxy

@Suite struct SealingBodyTests {
    static let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring("sealing-body"), layout: try! ChunkLayout(chunkSize: 4096))
    let identity = ObjectIdentity(bucket: "b", key: "k")

    func drain(_ body: RequestBody, readSize: Int) -> (bytes: [UInt8], error: (any Error)?) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: readSize)
        do {
            while true {
                let n = try buffer.withUnsafeMutableBytes { try body.read(into: $0) }
                if n == 0 { return (out, nil) }
                out.append(contentsOf: buffer[0..<n])
            }
        } catch {
            return (out, error)
        }
    }

    @Test(arguments: [0, 1, 4095, 4096, 4097, 50_000])
    func yieldsExactlyTheDeclaredCiphertextThatOpens(size: Int) throws {
        var rng = SplitMix64(seed: UInt64(size))
        let plaintext = rng.bytes(size)
        let (metadata, sealer) = try Self.encryptor.beginObject(identity, plaintextLength: size)
        let length = Self.encryptor.layout.ciphertextLength(plaintextLength: size)
        let body = SealingBody(source: MemoryBody(plaintext, sliceSize: 1000), sealer: sealer, ciphertextLength: length)
        #expect(body.declaredLength == Int64(length))
        let (ciphertext, error) = drain(body, readSize: 777)
        #expect(error == nil)
        #expect(ciphertext.count == length)
        let opener = try Self.encryptor.opener(for: metadata, identity: identity)
        var opened: [UInt8] = []
        try opener.update(ciphertext) { opened.append(contentsOf: $0) }
        try opener.finish { opened.append(contentsOf: $0) }
        #expect(opened == plaintext)
    }

    /// Every read fills the consumer's buffer (short only at the end), whatever sizes the source returns: sealed
    /// output is longer than the plaintext read, and handing out the few leftover bytes alone would cost the
    /// consumer (curl) a tiny send every other read.
    @Test(arguments: [(1000, 4096), (65_536, 65_536), (300_000, 262_144), (4096, 777)])
    func readsFillTheBuffer(slice: Int, readSize: Int) throws {
        var rng = SplitMix64(seed: UInt64(slice))
        let plaintext = rng.bytes(200_000)
        let upload = try EncryptionFixtures.upload(Self.encryptor, identity).upload
        let (header, sealer) = try Self.encryptor.beginPart(of: upload, partNumber: 3, plaintextLength: plaintext.count)
        let length = header.count + Self.encryptor.layout.ciphertextLength(plaintextLength: plaintext.count)
        let body = SealingBody(source: MemoryBody(plaintext, sliceSize: slice), sealer: sealer, ciphertextLength: length,
                               hashingPlaintext: true, prefix: header)
        var sizes: [Int] = []
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: readSize)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try body.read(into: $0) }
            if n == 0 { break }
            sizes.append(n)
            out += buffer[0..<n]
        }
        #expect(out.count == length && Array(out.prefix(header.count)) == header)
        #expect(sizes.dropLast().allSatisfy { $0 == readSize }, "short reads before the end: \(sizes)")
        #expect(body.plaintextMD5 == Digest.hash(.md5, plaintext))
    }

    /// A body failing its Content-MD5 never lets the final chunk out, so the backend upload cannot complete.
    @Test func aBadDigestWithholdsTheFinalChunk() throws {
        let plaintext = [UInt8](repeating: 9, count: 20_000)
        let wrongMD5 = Data(Digest.hash(.md5, [1, 2, 3])).base64EncodedString()
        let verifying = try VerifyingBody(MemoryBody(plaintext, sliceSize: 3000), payload: .unsigned, contentMD5: wrongMD5)
        let (_, sealer) = try Self.encryptor.beginObject(identity, plaintextLength: plaintext.count)
        let length = Self.encryptor.layout.ciphertextLength(plaintextLength: plaintext.count)
        let (sent, error) = drain(SealingBody(source: verifying, sealer: sealer, ciphertextLength: length), readSize: 4096)
        #expect((error as? S3Error)?.code == "BadDigest")
        #expect(sent.count < length)
    }
}
