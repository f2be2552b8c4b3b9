import Foundation
import Testing
@testable import Proxy
@testable import Shared

@Suite struct DecryptCommandTests {
    typealias Options = DecryptCommand.Options

    @Test func parsesFlags() throws {
        #expect(try Options.parse(["--bucket", "b", "--key", "k"]) == Options(bucket: "b", key: "k", source: .backend))
        #expect(try Options.parse(["--bucket=b", "--key=k", "--output", "-"]) == Options(bucket: "b", key: "k", source: .backend, output: "-"))
        #expect(try Options.parse(["--bucket", "b", "--key", "k", "--print-metadata"]) == Options(bucket: "b", key: "k", source: .printMetadata))
        #expect(try Options.parse(["--input", "c", "--metadata", "m.json", "--bucket", "b", "--key", "a/b", "--output", "o"])
                == Options(bucket: "b", key: "a/b", source: .local(input: "c", metadata: "m.json"), output: "o"))
    }

    @Test(arguments: [
        ["--key", "k"], ["--bucket", "b"], ["--bucket", "b", "--key", "k", "--input", "c"],
        ["--bucket", "b", "--key", "k", "--metadata", "m"], ["--bucket", "b", "--key", "k", "--print-metadata", "--output", "o"],
        ["--bucket", "b", "--key", "k", "--print-metadata", "--input", "c", "--metadata", "m"],
        ["--bucket", "b", "--key", "k", "--output", ""], ["--bucket", "b", "--key", "k", "k2"],
    ])
    func rejectsBadFlags(_ arguments: [String]) {
        #expect(throws: UsageError.self) { try Options.parse(arguments) }
    }

    @Test func badFlagsAndConfigurationExitTwo() {
        #expect(DecryptCommand.run(arguments: ["--bucket", "b"], environment: [:]) == 2)
        // Local mode needs only the password.
        #expect(DecryptCommand.run(arguments: ["--input", "x", "--metadata", "y", "--bucket", "b", "--key", "k"], environment: [:]) == 2)
        #expect(DecryptCommand.run(arguments: ["--bucket", "b", "--key", "k", "--print-metadata"], environment: [:]) == 2)
    }

    @Test func metadataDocumentRoundTrip() throws {
        let headers: [(name: String, value: String)] = [("Content-Type", "x"), ("X-Amz-Meta-S3eg-Version", "1"),
                                                         ("x-amz-meta-note", "quote \" and \\ and é"), ("ETag", "\"e\"")]
        let json = MetadataDocument.json(headers: headers)
        let parsed = try MetadataDocument.parse(Array(json.utf8))
        #expect(parsed.map(\.name) == ["x-amz-meta-note", "x-amz-meta-s3eg-version"])
        #expect(parsed.map(\.value) == ["quote \" and \\ and é", "1"])
        #expect(MetadataDocument.json(headers: [("Content-Type", "x")]) == "{}")
    }

    @Test(arguments: ["", "[]", "{\"a\": 1}", "{\"a\": null}", "not json", "{\"a\": [\"b\"]}"])
    func rejectsBadMetadataDocuments(_ text: String) {
        #expect(throws: DecryptCommand.Failure.self) { try MetadataDocument.parse(Array(text.utf8)) }
    }

    static let identity = ObjectIdentity(bucket: "bkt", key: "some/key")
    static let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring("dec"), layout: try! ChunkLayout(chunkSize: 4096))

    static func single(_ plaintext: [UInt8]) throws -> (headers: [(name: String, value: String)], body: [UInt8]) {
        var rng = SplitMix64(seed: 7)
        let (metadata, sealer) = try encryptor.beginObject(identity)
        let body = try EncryptionFixtures.seal(plaintext, with: sealer, rng: &rng, maxPiece: 5000)
        return (metadata.headers.map { (name: $0.key, value: $0.value) }, body)
    }

    static func multipart(_ parts: [[UInt8]]) throws -> (headers: [(name: String, value: String)], body: [UInt8]) {
        var rng = SplitMix64(seed: 8)
        let (metadata, body) = try EncryptionFixtures.multipart(encryptor, identity, parts: parts, rng: &rng)
        return (metadata.headers.map { (name: $0.key, value: $0.value) }, body)
    }

    static func decrypt(headers: [(name: String, value: String)], body: [UInt8], storedLength: Int?,
                        identity: ObjectIdentity = identity, piece: Int = 1000) throws -> [UInt8] {
        let d = try ObjectDecryptor(headers: headers, storedLength: storedLength, identity: identity, encryptor: encryptor)
        var out: [UInt8] = []
        var offset = 0
        while offset < body.count {
            let n = min(piece, body.count - offset)
            try Array(body[offset..<offset + n]).withUnsafeBytes { piece in try d.update(piece) { out.append(contentsOf: $0) } }
            offset += n
        }
        try d.finish { out.append(contentsOf: $0) }
        return out
    }

    static func pattern(_ n: Int, _ seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(n)
    }

    @Test(arguments: [0, 1, 4096, 4097, 20_000])
    func singleRoundTrip(_ size: Int) throws {
        let plaintext = Self.pattern(size, UInt64(size))
        let (headers, body) = try Self.single(plaintext)
        #expect(try Self.decrypt(headers: headers, body: body, storedLength: body.count) == plaintext)
        #expect(try Self.decrypt(headers: headers, body: body, storedLength: nil, piece: 7) == plaintext)
    }

    @Test func multipartRoundTrip() throws {
        let parts = [Self.pattern(8192, 1), Self.pattern(8192, 2), Self.pattern(100, 3)]
        let (headers, body) = try Self.multipart(parts)
        #expect(try Self.decrypt(headers: headers, body: body, storedLength: body.count) == parts.flatMap { $0 })
    }

    @Test func plainObjectsPassThrough() throws {
        let body = Self.pattern(3000, 9)
        #expect(try Self.decrypt(headers: [("x-amz-meta-color", "red")], body: body, storedLength: body.count) == body)
    }

    @Test func tamperTruncationAndWrongNameFail() throws {
        let (headers, body) = try Self.single(Self.pattern(10_000, 4))
        var flipped = body
        flipped[5000] ^= 1
        #expect(throws: EncryptionError(.tamperDetected, "chunk 1 failed authentication: the stored object was modified, reordered or spliced")) {
            try Self.decrypt(headers: headers, body: flipped, storedLength: flipped.count)
        }
        // A cut at a chunk boundary: the length check refuses it before any byte is opened.
        let cut = Array(body.prefix(4112 * 2))
        #expect(throws: EncryptionError.self) { try Self.decrypt(headers: headers, body: cut, storedLength: nil) }
        #expect(throws: EncryptionError.self) { try Self.decrypt(headers: headers, body: cut, storedLength: body.count) }
        #expect(throws: EncryptionError.self) { try Self.decrypt(headers: headers, body: body + [0], storedLength: body.count) }
        #expect(throws: EncryptionError.self) {
            try Self.decrypt(headers: headers, body: body, storedLength: body.count, identity: ObjectIdentity(bucket: "bkt", key: "other"))
        }
        // An impossible stored size is refused up front.
        #expect(throws: EncryptionError.self) { try Self.decrypt(headers: headers, body: Array(body.prefix(4112 + 5)), storedLength: 4112 + 5) }
    }

    /// Runs the local mode end to end through files: success renames, failure leaves nothing behind.
    @Test func localModeWritesOnlyVerifiedFiles() throws {
        let dir = TempDir(prefix: "dec")
        let plaintext = Self.pattern(50_000, 5)
        let (headers, body) = try Self.single(plaintext)
        let cipherPath = dir.url.appendingPathComponent("c").path
        let outPath = dir.url.appendingPathComponent("out").path
        _ = FileManager.default.createFile(atPath: cipherPath, contents: Data(body))

        try DecryptCommand.writeOutput(outPath) { sink in
            try DecryptCommand.decryptLocal(path: cipherPath, headers: headers, identity: Self.identity, encryptor: Self.encryptor, sink: sink)
        }
        #expect(FileManager.default.contents(atPath: outPath) == Data(plaintext))
        #expect(!FileManager.default.fileExists(atPath: outPath + ".partial"))

        var tampered = body
        tampered[body.count - 3] ^= 0x80
        _ = FileManager.default.createFile(atPath: cipherPath, contents: Data(tampered))
        let other = dir.url.appendingPathComponent("other").path
        #expect(throws: DecryptCommand.Failure.self) {
            try DecryptCommand.writeOutput(other) { sink in
                try DecryptCommand.decryptLocal(path: cipherPath, headers: headers, identity: Self.identity, encryptor: Self.encryptor, sink: sink)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: other))
        #expect(!FileManager.default.fileExists(atPath: other + ".partial"))
    }

    /// The FORMAT.md §10 object A, through the command with its real password (one scrypt run).
    @Test func formatVectorThroughTheCommand() throws {
        let dir = TempDir(prefix: "dec")
        let metadata = """
            {"x-amz-meta-s3eg-version": "1", "x-amz-meta-s3eg-cipher": "AES-256-GCM", "x-amz-meta-s3eg-chunk-size": "65536",
             "x-amz-meta-s3eg-key-id": "cf2cd6307db37bc2", "x-amz-meta-s3eg-layout": "single",
             "x-amz-meta-s3eg-wrapped-key": "sLGys7S1tre4ubq78FfWM1OJe69wRWpxotDQoNZ4LSIQEf0z9hUv8QOocuumzCISQUIdraXAG647eiNJ",
             "x-amz-meta-s3eg-salt": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"}
            """
        let m = dir.url.appendingPathComponent("m.json").path
        let c = dir.url.appendingPathComponent("c").path
        let o = dir.url.appendingPathComponent("o").path
        _ = FileManager.default.createFile(atPath: m, contents: Data(metadata.utf8))
        _ = FileManager.default.createFile(atPath: c, contents: Data(Encoding.fromHex("2a663d6c022361b80c6f43bf59a3673e84ac0fab3e133421123479071f316c6e")!))
        let env = ["ENCRYPTION_PASSWORD": "correct horse battery staple"]
        #expect(DecryptCommand.run(arguments: ["--input", c, "--metadata", m, "--bucket", "example-bucket", "--key", "docs/hello.txt",
                                               "--output", o], environment: env) == 0)
        #expect(FileManager.default.contents(atPath: o) == Data("Hello, gateway!\n".utf8))
        #expect(DecryptCommand.run(arguments: ["--input", c, "--metadata", m, "--bucket", "example-bucket", "--key", "docs/other.txt",
                                               "--output", o + "2"], environment: env) == 1)
        #expect(!FileManager.default.fileExists(atPath: o + "2") && !FileManager.default.fileExists(atPath: o + "2.partial"))

        // Object C of FORMAT.md §10.2: the same body with version 2 metadata; a changed ETag record fails the MAC.
        var v2: [String: String] = [:]
        for (name, value) in try FormatVectorTests.vectorsV2() where name.hasPrefix("C.x-amz-meta-") { v2[String(name.dropFirst(2))] = value }
        let m2 = dir.url.appendingPathComponent("m2.json").path
        _ = FileManager.default.createFile(atPath: m2, contents: try JSONSerialization.data(withJSONObject: v2))
        #expect(DecryptCommand.run(arguments: ["--input", c, "--metadata", m2, "--bucket", "example-bucket", "--key", "docs/hello.txt",
                                               "--output", o + "3"], environment: env) == 0)
        #expect(FileManager.default.contents(atPath: o + "3") == Data("Hello, gateway!\n".utf8))
        v2["x-amz-meta-s3eg-etag"] = String(repeating: "0", count: 32)
        _ = FileManager.default.createFile(atPath: m2, contents: try JSONSerialization.data(withJSONObject: v2))
        #expect(DecryptCommand.run(arguments: ["--input", c, "--metadata", m2, "--bucket", "example-bucket", "--key", "docs/hello.txt",
                                               "--output", o + "4"], environment: env) == 1)
    }
}
