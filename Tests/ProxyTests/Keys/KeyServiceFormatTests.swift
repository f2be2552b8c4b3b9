import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// The KeyService as the object format's key interface: metadata written by one replica opens on another,
/// and a reload of the policy file changes new objects only.
@Suite struct KeyServiceFormatTests {
    let identity = ObjectIdentity(bucket: "photos", key: "2024/cat.jpg")

    @Test func objectsWrittenWithAnIntermediateKeyOpenOnAnotherReplica() throws {
        let kms = InMemoryKeyManager(kind: .awsKMS)
        let raw = try LocalKeyring(active: LocalKey.raw(Array(repeating: 1, count: 32)))
        func replica() throws -> KeyService {
            try KeyService(local: [raw], remote: [kms], policy: BucketPolicy(defaultKey: KeySpec(provider: .awsKMS, name: "k1")))
        }
        let writer = ObjectEncryptor(keys: try replica())
        let (metadata, _) = try writer.beginObject(identity, plaintextMD5: Array(repeating: 7, count: 16))
        let headers = metadata.headers
        #expect(headers["x-amz-meta-s3eg-provider"] == "aws-kms")
        #expect(headers["x-amz-meta-s3eg-key-id"] == "k1:v1")
        #expect(headers["x-amz-meta-s3eg-ik"] != nil)
        let parsed = try #require(try EncryptionMetadata.parse(headers: headers))
        let reader = ObjectEncryptor(keys: try replica())
        let dataKey = try reader.dataKey(of: parsed, identity: identity)
        #expect(try writer.dataKey(of: parsed, identity: identity) == dataKey)
        #expect(kms.unwraps == 1)  // the reader's first access; the writer had its key cached
        #expect(throws: EncryptionError.self) { try reader.dataKey(of: parsed, identity: ObjectIdentity(bucket: "photos", key: "dog.jpg")) }
        // CopyObject to another bucket gets that bucket's own intermediate key.
        let copied = try reader.rewrap(parsed, from: identity, to: ObjectIdentity(bucket: "archive", key: "cat.jpg"))
        #expect(copied.keyReference.wrappedIntermediateKey != parsed.keyReference.wrappedIntermediateKey)
        #expect(try reader.dataKey(of: copied, identity: ObjectIdentity(bucket: "archive", key: "cat.jpg")) == dataKey)
    }

    @Test func thePolicyWatcherReloadsGoodFilesAndKeepsThePolicyOnBadOnes() throws {
        let dir = TempDir(prefix: "policy")
        let path = dir.path + "/policy.json"
        try "{}".write(toFile: path, atomically: true, encoding: .utf8)
        let raw = try LocalKeyring(active: LocalKey.raw(Array(repeating: 1, count: 32)))
        let keys = try KeyService(local: [raw], remote: [], policy: BucketPolicy(defaultKey: KeySpec(provider: .raw)))
        let registry = MetricsRegistry()
        let sink = LogSink(capturing: ())
        let telemetry = KeyTelemetry(registry: registry, logger: Logger(level: .info, sink: sink))
        let watcher = PolicyWatcher(path: path, keys: keys, defaultKey: KeySpec(provider: .raw), logger: Logger(level: .info, sink: sink),
                                    telemetry: telemetry)
        #expect(!watcher.check())
        // A ConfigMap update: a new file renamed over the old one.
        try "{\"buckets\": [{\"match\": \"restic-*\", \"action\": \"plain\"}]}".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(watcher.check())
        #expect(keys.decision(bucket: "restic-1") == .plain)
        try "{\"buckets\": [{\"match\": \"restic-*\", \"action\": \"nope\"}]}".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!watcher.check())
        #expect(keys.decision(bucket: "restic-1") == .plain)
        #expect(telemetry.policyReloads.value(["ok"]) == 1)
        #expect(telemetry.policyReloads.value(["error"]) == 1)
        #expect(sink.capturedLines.contains { $0.contains("previous policy stays in force") && $0.contains("nope") == false && $0.contains("action") })
        // A policy naming a provider without settings is refused the same way.
        try "{\"keys\": {\"v\": {\"provider\": \"vault-transit\", \"key\": \"x\"}}}".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!watcher.check())
        #expect(telemetry.policyReloads.value(["error"]) == 2)
    }
}
