import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// `rotate` in process against a real moto server, with objects sealed by the engine. Without moto_server the
/// tests fail (`MotoServer()` throws MissingDependency): CI installs it, so a missing one is a broken set-up, not a reason to skip.
@Suite struct RotateAgainstMotoTests {
    static func putEncrypted(_ backend: BackendClient, _ encryptor: ObjectEncryptor, bucket: String, key: String,
                             plaintext: [UInt8]) throws {
        let (metadata, sealer) = try encryptor.beginObject(ObjectIdentity(bucket: bucket, key: key))
        var body: [UInt8] = []
        try sealer.update(plaintext) { body.append(contentsOf: $0) }
        try sealer.finish { body.append(contentsOf: $0) }
        let headers = metadata.headers.map { (name: $0.key, value: $0.value) } + [("content-type", "text/x-moto")]
        #expect(try BackendOperationsTests.put(backend, bucket: bucket, key: key, body: body, headers: headers).status == 200)
    }

    @Test func rotatesResumesAndIsIdempotent() throws {
        let moto = try MotoServer()
        let backend = try BackendOperationsTests.client(moto)
        #expect(try BackendOperationsTests.put(backend, bucket: "rot", key: nil).status == 200)
        let old = ObjectEncryptor(keyRing: EncryptionFixtures.ring("old"))
        let new = ObjectEncryptor(keyRing: EncryptionFixtures.ring("new", previous: ["old"]))
        let keys = (0..<5).map { "obj/\($0)" }
        for key in keys { try Self.putEncrypted(backend, old, bucket: "rot", key: key, plaintext: Array(key.utf8)) }
        #expect(try BackendOperationsTests.put(backend, bucket: "rot", key: "plain", body: [1, 2, 3]).status == 200)
        let etags = try keys.map { try backend.headObject(bucket: "rot", key: $0).header("ETag") }

        var options = RotateCommand.Options(bucket: "rot", resumeAfter: "obj/2", pageSize: 1)
        var tally = RotateCommand.rotate(options: options, backend: backend, encryptor: new)
        #expect(tally == RotateCommand.Tally(examined: 3, rotated: 2, plain: 1, lastKey: "plain"))
        func keyID(_ key: String) throws -> String? { try backend.headObject(bucket: "rot", key: key).header(FormatV1.keyIDHeader) }
        #expect(try keys.map(keyID) == Array(repeating: EncryptionFixtures.kek("old").idHex, count: 3) + Array(repeating: EncryptionFixtures.kek("new").idHex, count: 2))

        options.resumeAfter = nil
        options.dryRun = true
        tally = RotateCommand.rotate(options: options, backend: backend, encryptor: new)
        #expect(tally.rotated == 3 && tally.current == 2)
        #expect(try keyID("obj/0") == EncryptionFixtures.kek("old").idHex, "a dry run changes nothing")

        options.dryRun = false
        tally = RotateCommand.rotate(options: options, backend: backend, encryptor: new)
        #expect(tally == RotateCommand.Tally(examined: 6, rotated: 3, current: 2, plain: 1, lastKey: "plain"))
        tally = RotateCommand.rotate(options: options, backend: backend, encryptor: new)
        #expect(tally == RotateCommand.Tally(examined: 6, current: 5, plain: 1, lastKey: "plain"))

        // Same ciphertext, content type kept, and the re-wrapped objects open with the new key alone.
        let onlyNew = ObjectEncryptor(keyRing: EncryptionFixtures.ring("new"))
        for (key, etag) in zip(keys, etags) {
            let head = try backend.headObject(bucket: "rot", key: key)
            #expect(head.header("ETag") == etag)
            #expect(head.header("Content-Type") == "text/x-moto")
            let metadata = try #require(try EncryptionMetadata.parse(fields: head.headers))
            _ = try onlyNew.dataKey(of: metadata, identity: ObjectIdentity(bucket: "rot", key: key))
        }

        // Without the old key, objects fail (exit code 1) but the run goes on.
        for key in ["z/0", "z/1"] { try Self.putEncrypted(backend, old, bucket: "rot", key: key, plaintext: [9]) }
        tally = RotateCommand.rotate(options: RotateCommand.Options(bucket: "rot", prefix: "z/"), backend: backend, encryptor: onlyNew)
        #expect(tally == RotateCommand.Tally(examined: 2, failed: 2, lastKey: "z/1"))
        #expect(tally.exitCode == 1)
    }
}
