import Foundation
import Shared
import Synchronization
import Testing
@testable import Proxy

@Suite struct CredentialsFileTests {
    static func parse(_ text: String) throws(CredentialsFile.Invalid) -> [Credential] { try CredentialsFile.parse(Array(text.utf8)) }
    static func error(_ text: String) -> String? {
        do { _ = try parse(text); return nil } catch { return error.message }
    }

    @Test func fullAndMinimalEntries() throws {
        let credentials = try Self.parse("""
        {"credentials": [
          {"accessKey": "TEAMA", "secretKey": "team-a-secret-123", "buckets": ["team-a", "shared"], "readOnly": true,
           "backend": {"accessKey": "CEPHUSERA", "secretKey": "ceph-secret"}},
          {"accessKey": "ADMIN", "secretKey": "admin-secret-456"}
        ]}
        """)
        #expect(credentials == [
            Credential(accessKey: "TEAMA", secretKey: "team-a-secret-123", buckets: ["team-a", "shared"], readOnly: true,
                       backend: BackendCredential(accessKey: "CEPHUSERA", secretKey: "ceph-secret")),
            Credential(accessKey: "ADMIN", secretKey: "admin-secret-456"),
        ])
        #expect(credentials[0].allows(bucket: "shared") && !credentials[0].allows(bucket: "other"))
        #expect(credentials[1].allows(bucket: "anything"))
    }

    @Test(arguments: [
        ("[]", "JSON object"),
        ("{\"credentials\": []}", "no credentials"),
        ("{\"credentials\": [], \"extra\": 1}", "unknown top-level field \"extra\""),
        ("{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"longenough\", \"readonly\": true}]}", "unknown field \"readonly\""),
        ("{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"longenough\", \"readOnly\": \"yes\"}]}", "readOnly must be true or false"),
        ("{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"longenough\", \"readOnly\": 1}]}", "readOnly must be true or false"),
        ("{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"longenough\", \"buckets\": []}]}", "non-empty list"),
        ("{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"longenough\", \"buckets\": [\"Bad_Name\"]}]}", "invalid bucket name \"Bad_Name\""),
        ("{\"credentials\": [{\"accessKey\": \"A K\", \"secretKey\": \"longenough\"}]}", "accessKey must be"),
        ("{\"credentials\": [{\"secretKey\": \"longenough\"}]}", "accessKey is required"),
        ("{\"credentials\": [{\"accessKey\": \"AK1\"}]}", "secretKey is required"),
        ("{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"short\"}]}", "8 to 1024"),
        ("{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"longenough\", \"backend\": {\"accessKey\": \"BK1\"}}]}", "backend: secretKey is required"),
        ("{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"longenough\"}, {\"accessKey\": \"AK1\", \"secretKey\": \"longenough2\"}]}", "listed twice"),
        ("{\"credentials\": [{\"accessKey\": \"AK1\",\n \"secretKey\": \"hunter2hunter2\" oops}]}", "not valid JSON"),
    ])
    func invalidFilesAreExplained(text: String, expected: String) {
        let message = Self.error(text)
        #expect(message?.contains(expected) == true, "\(message ?? "accepted")")
    }

    @Test func messagesNeverQuoteSecrets() {
        let secret = "Zz9-very-secret-value"
        for text in [
            "{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"\(secret) x\"}]}",
            "{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"\(secret)\", \"buckets\": 5}]}",
            "{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"\(secret)\" \(secret)}]}",
            "{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \(secret)}]}",
            "{\"credentials\": [{\"accessKey\": \"AK1\", \"secretKey\": \"ok-secret-1\", \"backend\": {\"accessKey\": \"B1\", \"secretKey\": 7, \"x\": \"\(secret)\"}}]}",
        ] {
            let message = Self.error(text) ?? ""
            #expect(!message.isEmpty)
            #expect(!message.contains("very-secret"), "\(message)")
        }
    }
}

@Suite struct CredentialsWatcherTests {
    final class Recorder: CredentialsReloadObserver, @unchecked Sendable {
        let events = Mutex<[String]>([])
        func credentialsLoaded(count: Int, path: String) { events.withLock { $0.append("loaded \(count)") } }
        func credentialsReloadFailed(path: String, reason: String) { events.withLock { $0.append("failed \(reason)") } }
    }

    static func file(_ entries: [(String, String)]) -> String {
        "{\"credentials\": [" + entries.map { "{\"accessKey\": \"\($0.0)\", \"secretKey\": \"\($0.1)\"}" }.joined(separator: ",") + "]}"
    }

    @Test func reloadsOnChangeAndKeepsTheLastGoodSet() throws {
        let dir = TempDir(prefix: "creds")
        let path = dir.path + "/credentials.json"
        try Self.file([("ONE", "secret-one-1")]).write(toFile: path, atomically: true, encoding: .utf8)
        let recorder = Recorder()
        let watcher = try CredentialsFileWatcher(path: path, fixed: [Credential(accessKey: "ENVKEY", secretKey: "env-secret")],
                                                 observer: recorder)
        #expect(watcher.store.credential(forAccessKey: "ONE")?.secretKey == "secret-one-1")
        #expect(watcher.store.credential(forAccessKey: "ENVKEY") != nil)
        #expect(!watcher.reloadIfChanged())  // unchanged

        try Self.file([("ONE", "secret-one-2"), ("TWO", "secret-two-2")]).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(watcher.reloadIfChanged())
        #expect(watcher.store.credential(forAccessKey: "ONE")?.secretKey == "secret-one-2")
        #expect(watcher.store.credential(forAccessKey: "TWO") != nil)

        // Broken: the last good set stays; reported once, not on every poll.
        try "{\"credentials\": [".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!watcher.reloadIfChanged())
        #expect(!watcher.reloadIfChanged())
        #expect(watcher.store.credential(forAccessKey: "TWO") != nil)
        // Clashing with the environment's key is refused too.
        try Self.file([("ENVKEY", "secret-env-3")]).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!watcher.reloadIfChanged())
        // Removed: still the last good set.
        try FileManager.default.removeItem(atPath: path)
        #expect(!watcher.reloadIfChanged())
        #expect(watcher.store.credential(forAccessKey: "ONE")?.secretKey == "secret-one-2")
        try Self.file([("THREE", "secret-three")]).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(watcher.reloadIfChanged())
        #expect(watcher.store.credential(forAccessKey: "ONE") == nil)
        #expect(watcher.store.count == 2)
        let events = recorder.events.withLock { $0 }
        #expect(events.count == 6, "\(events)")
        #expect(events[0] == "loaded 2" && events[1] == "loaded 3" && events[5] == "loaded 2")
        #expect(events[2].hasPrefix("failed is not valid JSON"))
        #expect(events[3].contains("GATEWAY_ACCESS_KEY"))
        #expect(events[4] == "failed cannot be read")
    }

    @Test func startupRefusesABrokenFile() {
        #expect(throws: CredentialsFile.Invalid.self) {
            _ = try CredentialsFileWatcher(path: "/nonexistent/credentials.json", fixed: [], observer: Recorder())
        }
    }
}

@Suite struct AccessPolicyTests {
    static let readOnly = Credential(accessKey: "RO", secretKey: "x", buckets: ["a"], readOnly: true)
    static let limited = Credential(accessKey: "LIM", secretKey: "x", buckets: ["a", "b"])

    static func code(_ credential: Credential?, _ method: String, _ operation: S3Operation, bucket: String?, source: String? = nil) -> String? {
        s3ErrorCode { try AccessPolicy.check(credential, method: method, operation: operation, bucket: bucket, copySourceBucket: source) }
    }

    @Test func readOnlyAndBucketLists() {
        #expect(Self.code(Self.readOnly, "GET", .getObject, bucket: "a") == nil)
        #expect(Self.code(Self.readOnly, "HEAD", .headObject, bucket: "a") == nil)
        #expect(Self.code(Self.readOnly, "PUT", .putObject, bucket: "a") == "AccessDenied")
        #expect(Self.code(Self.readOnly, "DELETE", .deleteObject, bucket: "a") == "AccessDenied")
        #expect(Self.code(Self.readOnly, "POST", .deleteObjects, bucket: "a") == "AccessDenied")
        #expect(Self.code(Self.readOnly, "GET", .getObject, bucket: "b") == "AccessDenied")
        #expect(Self.code(Self.limited, "PUT", .putObject, bucket: "b") == nil)
        #expect(Self.code(Self.limited, "PUT", .putObject, bucket: "c") == "AccessDenied")
        #expect(Self.code(Self.limited, "GET", .listBuckets, bucket: nil) == nil)
        #expect(Self.code(Self.limited, "PUT", .copyObject, bucket: "a", source: "b") == nil)
        #expect(Self.code(Self.limited, "PUT", .copyObject, bucket: "a", source: "c") == "AccessDenied")
        #expect(Self.code(Credential(accessKey: "ALL", secretKey: "x"), "DELETE", .deleteBucket, bucket: "z") == nil)
        #expect(Self.code(nil, "GET", .getObject, bucket: "z") == nil)  // anonymous: the backend decides
    }
}
