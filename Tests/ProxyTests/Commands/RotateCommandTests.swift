import Foundation
import Testing
@testable import Proxy
@testable import Shared

@Suite struct RotateCommandTests {
    @Test func parsesFlags() throws {
        let o = try RotateCommand.Options.parse(["--bucket", "b", "--prefix=logs/", "--resume-after", "logs/9", "--dry-run", "--page-size", "7"])
        #expect(o == RotateCommand.Options(bucket: "b", prefix: "logs/", resumeAfter: "logs/9", dryRun: true, pageSize: 7))
        #expect(try RotateCommand.Options.parse(["--bucket=b"]) == RotateCommand.Options(bucket: "b"))
    }

    @Test(arguments: [
        [], ["--prefix", "p"], ["--bucket"], ["--bucket", ""], ["--bucket", "b", "--bucket", "c"],
        ["--bucket", "b", "extra"], ["--bucket", "b", "--dry-run=yes"], ["--bucket", "b", "--force"],
        ["--bucket", "b", "--page-size", "0"], ["--bucket", "b", "--page-size", "1001"], ["--bucket", "b", "--page-size", "x"],
    ])
    func rejectsBadFlags(_ arguments: [String]) {
        #expect(throws: UsageError.self) { try RotateCommand.Options.parse(arguments) }
    }

    @Test func badFlagsAndConfigurationExitTwo() {
        #expect(RotateCommand.run(arguments: ["--nope"], environment: [:]) == 2)
        // Missing backend settings; GATEWAY_* are never asked for.
        #expect(RotateCommand.run(arguments: ["--bucket", "b"], environment: ["ENCRYPTION_PASSWORD": "a-long-enough-password"]) == 2)
        #expect(RotateCommand.run(arguments: ["--bucket", "b"], environment: [
            "BACKEND_ENDPOINT": "http://127.0.0.1:1", "BACKEND_ACCESS_KEY": "a", "BACKEND_SECRET_KEY": "s",
            "ENCRYPTION_PASSWORD": "short"]) == 2)
    }

    @Test func previousPasswordsSplitOnCommasOnly() throws {
        #expect(try ToolSettings.previousPasswords(nil) == [])
        #expect(try ToolSettings.previousPasswords("") == [])
        #expect(try ToolSettings.previousPasswords(" first password 16,second-password-xx ") == [" first password 16", "second-password-xx "])
        #expect(throws: ConfigurationError.self) { try ToolSettings.previousPasswords("first-password-16,,second-password-xx") }
        #expect(throws: ConfigurationError.self) { try ToolSettings.previousPasswords("first-password-16,short") }
    }

    static let identity = ObjectIdentity(bucket: "bkt", key: "dir/obj")

    /// Headers of an object stored under `ring`.
    static func stored(ring: KeyRing, extra: [(name: String, value: String)] = []) throws -> [(name: String, value: String)] {
        let (metadata, _) = try ObjectEncryptor(keyRing: ring).beginObject(identity)
        return extra + metadata.headers.map { (name: $0.key, value: $0.value) }
    }

    @Test func decidesPlainCurrentTooLargeAndRewrap() throws {
        let old = EncryptionFixtures.ring("old")
        let new = ObjectEncryptor(keyRing: EncryptionFixtures.ring("new", previous: ["old"]))
        #expect(try RotateCommand.decide(headers: [("Content-Type", "text/plain"), ("x-amz-meta-a", "1")], size: 5,
                                         identity: Self.identity, encryptor: new) == .plain)
        let current = try Self.stored(ring: EncryptionFixtures.ring("new", previous: ["old"]))
        #expect(try RotateCommand.decide(headers: current, size: 100, identity: Self.identity, encryptor: new) == .current)
        let underOld = try Self.stored(ring: old)
        #expect(try RotateCommand.decide(headers: underOld, size: RotateCommand.maxCopySize + 1, identity: Self.identity,
                                         encryptor: new) == .tooLarge(size: RotateCommand.maxCopySize + 1))
        guard case .rewrap(let rewrapped) = try RotateCommand.decide(headers: underOld, size: RotateCommand.maxCopySize,
                                                                     identity: Self.identity, encryptor: new) else {
            Issue.record("expected a rewrap")
            return
        }
        let before = try #require(try EncryptionMetadata.parse(fields: underOld))
        #expect(rewrapped.keyReference.keyID == EncryptionFixtures.kek("new").idHex)
        #expect(rewrapped.wrappedKey != before.wrappedKey)
        // Same DEK, same body layout: only the wrap changed.
        #expect(try new.dataKey(of: rewrapped, identity: Self.identity) == new.dataKey(of: before, identity: Self.identity))
        #expect(rewrapped.layout == before.layout && rewrapped.chunkSize == before.chunkSize && rewrapped.cipher == before.cipher)
        // Once rewrapped, the object is current: a second run does nothing.
        let after = rewrapped.headers.map { (name: $0.key, value: $0.value) }
        #expect(try RotateCommand.decide(headers: after, size: 100, identity: Self.identity, encryptor: new) == .current)
    }

    @Test func unknownKeyAndTamperingAreErrors() throws {
        let underOld = try Self.stored(ring: EncryptionFixtures.ring("old"))
        let withoutOld = ObjectEncryptor(keyRing: EncryptionFixtures.ring("new"))
        #expect(throws: EncryptionError.self) {
            try RotateCommand.decide(headers: underOld, size: 1, identity: Self.identity, encryptor: withoutOld)
        }
        let withOld = ObjectEncryptor(keyRing: EncryptionFixtures.ring("new", previous: ["old"]))
        do {
            _ = try RotateCommand.decide(headers: underOld, size: 1, identity: ObjectIdentity(bucket: "bkt", key: "other"), encryptor: withOld)
            Issue.record("a wrap bound to another key must not unwrap")
        } catch {
            #expect(error.code == .tamperDetected)
        }
    }

    @Test func copyHeadersKeepMetadataAndReplaceGatewayFields() throws {
        let old = EncryptionFixtures.ring("old")
        let new = ObjectEncryptor(keyRing: EncryptionFixtures.ring("new", previous: ["old"]))
        let head = try Self.stored(ring: old, extra: [
            ("Content-Type", "application/x-thing"), ("Content-Length", "99"), ("ETag", "\"abc\""),
            ("Cache-Control", "no-cache"), ("Content-Disposition", "attachment"), ("X-Amz-Meta-Owner", "Ann"),
            ("Last-Modified", "x"), ("x-amz-request-id", "r"), ("x-amz-meta-s3eg-bogus", "dropped"),
        ])
        guard case .rewrap(let rewrapped) = try RotateCommand.decide(headers: head.filter { $0.name != "x-amz-meta-s3eg-bogus" },
                                                                     size: 99, identity: Self.identity, encryptor: new) else {
            Issue.record("expected a rewrap")
            return
        }
        let out = RotateCommand.copyHeaders(head: head, rewrapped: rewrapped)
        let dict = Dictionary(out.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(dict.count == out.count, "no duplicate header")
        #expect(dict["content-type"] == "application/x-thing")
        #expect(dict["cache-control"] == "no-cache")
        #expect(dict["content-disposition"] == "attachment")
        #expect(dict["x-amz-meta-owner"] == "Ann")
        #expect(dict["content-length"] == nil && dict["etag"] == nil && dict["last-modified"] == nil && dict["x-amz-request-id"] == nil)
        #expect(dict["x-amz-meta-s3eg-bogus"] == nil)
        #expect(dict["x-amz-meta-s3eg-key-id"] == EncryptionFixtures.kek("new").idHex)
        #expect(try EncryptionMetadata.parse(fields: out) == rewrapped)
    }

    @Test func tallyExitCode() {
        var t = RotateCommand.Tally()
        t.rotated = 3
        t.current = 2
        #expect(t.exitCode == 0)
        t.tooLarge = 1
        #expect(t.exitCode == 1)
        t.tooLarge = 0
        t.failed = 1
        #expect(t.exitCode == 1)
    }
}
