import Foundation
@testable import Proxy
@testable import Shared

enum EncryptionFixtures {
    /// A KEK without the scrypt cost, for tests that are not about key derivation.
    static func kek(_ label: String) -> KeyEncryptionKey {
        try! KeyEncryptionKey.derive(master: Digest.sha256(label))
    }

    static func ring(_ label: String = "test", previous: [String] = []) -> KeyRing {
        try! KeyRing(active: kek(label), previous: previous.map(kek))
    }

    /// Seals `plaintext` feeding it in random pieces.
    static func seal(_ plaintext: [UInt8], with sealer: ChunkSealer, rng: inout SplitMix64, maxPiece: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < plaintext.count {
            let piece = min(plaintext.count - offset, Int.random(in: 0...maxPiece, using: &rng))
            try sealer.update(Array(plaintext[offset..<(offset + piece)])) { out.append(contentsOf: $0) }
            offset += piece
        }
        try sealer.finish { out.append(contentsOf: $0) }
        return out
    }

    /// Opens `ciphertext` feeding it in random pieces.
    static func open(_ ciphertext: [UInt8], with opener: ChunkOpener, rng: inout SplitMix64, maxPiece: Int,
                     lastChunkIsFinal: Bool = true) throws -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < ciphertext.count {
            let piece = min(ciphertext.count - offset, Int.random(in: 0...maxPiece, using: &rng))
            try opener.update(Array(ciphertext[offset..<(offset + piece)])) { out.append(contentsOf: $0) }
            offset += piece
        }
        try opener.finish(lastChunkIsFinal: lastChunkIsFinal) { out.append(contentsOf: $0) }
        return out
    }

    /// A multipart object as the gateway stores it: metadata from CreateMultipartUpload and the parts' bodies
    /// (`36-byte header || segment` each) concatenated in order, numbered `numbers` (default 1…n).
    /// A multipart upload begun for `identity` and opened from its upload id, as UploadPart sees it.
    static func upload(_ encryptor: ObjectEncryptor, _ identity: ObjectIdentity,
                       backendUploadID: String = "backend-upload-1") throws -> (metadata: EncryptionMetadata, upload: MultipartUpload) {
        let pending = try encryptor.beginMultipartObject(identity)
        let upload = try encryptor.openUpload(encryptor.uploadID(for: pending, backendUploadID: backendUploadID), identity: identity)
        return (pending.metadata, upload)
    }

    static func multipart(_ encryptor: ObjectEncryptor, _ identity: ObjectIdentity, parts: [[UInt8]], numbers: [Int]? = nil,
                          rng: inout SplitMix64, maxPiece: Int = 5000) throws -> (metadata: EncryptionMetadata, body: [UInt8]) {
        let (metadata, upload) = try upload(encryptor, identity)
        var body: [UInt8] = []
        for (i, part) in parts.enumerated() {
            let (header, sealer) = try encryptor.beginPart(of: upload, partNumber: numbers?[i] ?? i + 1, plaintextLength: part.count)
            body += header
            body += try seal(part, with: sealer, rng: &rng, maxPiece: maxPiece)
        }
        return (metadata, body)
    }

    static func segmentKey(_ seed: UInt8 = 1, salt: UInt8 = 2, part: Int = 0) -> [UInt8] {
        try! DataKey(bytes: [UInt8](repeating: seed, count: 32)).segmentKey(salt: [UInt8](repeating: salt, count: 16), partNumber: part)
    }
}
