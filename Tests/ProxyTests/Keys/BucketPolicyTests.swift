import Foundation
import Testing
@testable import Proxy

@Suite struct BucketPolicyTests {
    let defaultKey = KeySpec(provider: .raw)
    let all: Set<KeyProviderKind> = Set(KeyProviderKind.allCases)

    func parse(_ json: String, configured: Set<KeyProviderKind>? = nil) throws(PolicyError) -> BucketPolicy {
        try BucketPolicy.parse(Array(json.utf8), defaultKey: defaultKey, configured: configured ?? all)
    }

    @Test(arguments: [
        ("*", "anything", true), ("logs-*", "logs-2024", true), ("logs-*", "logs-", true), ("logs-*", "log-2024", false),
        ("a?c", "abc", true), ("a?c", "ac", false), ("*-backup", "db-backup", true), ("*-backup", "db-backups", false),
        ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false), ("exact", "exact", true), ("exact", "exact2", false),
        ("**a", "a", true), ("*a*a*a*a*b", String(repeating: "a", count: 60), false),
    ])
    func globs(pattern: String, name: String, matches: Bool) {
        #expect(BucketPolicy.matches(pattern: Array(pattern.utf8), name: Array(name.utf8)) == matches)
    }

    @Test func firstMatchWinsAndUnmatchedIsEncryptedWithTheDefault() throws {
        let policy = try parse("""
            {"keys": {"tenant-a": {"provider": "vault-transit", "key": "tenant-a"}, "legacy": {"provider": "password"}},
             "buckets": [
               {"match": "restic-*", "action": "plain"},
               {"match": "tenant-a-*", "action": "encrypt", "key": "tenant-a"},
               {"match": "tenant-*", "action": "encrypt"},
               {"match": "old", "action": "encrypt", "key": "legacy"}
             ]}
            """)
        #expect(policy.decision(bucket: "restic-repo") == .plain)
        #expect(policy.decision(bucket: "tenant-a-photos") == .encrypt(KeySpec(provider: .vaultTransit, name: "tenant-a"), keyName: "tenant-a"))
        #expect(policy.decision(bucket: "tenant-b") == .encrypt(defaultKey, keyName: "default"))
        #expect(policy.decision(bucket: "old") == .encrypt(KeySpec(provider: .password), keyName: "legacy"))
        #expect(policy.decision(bucket: "public-assets") == .encrypt(defaultKey, keyName: "default"))
        #expect(policy.writeKeys == [defaultKey, KeySpec(provider: .vaultTransit, name: "tenant-a"), KeySpec(provider: .password)])
        #expect(try parse("{}") == BucketPolicy(defaultKey: defaultKey))
    }

    @Test(arguments: [
        ("[]", "JSON object"),
        ("{\"rules\": []}", "unknown field"),
        ("{\"buckets\": [{\"match\": \"a\", \"action\": \"skip\"}]}", "\"encrypt\" or \"plain\""),
        ("{\"buckets\": [{\"match\": \"UPPER\", \"action\": \"plain\"}]}", "bucket name pattern"),
        ("{\"buckets\": [{\"match\": \"\", \"action\": \"plain\"}]}", "bucket name pattern"),
        ("{\"buckets\": [{\"match\": \"a\", \"action\": \"plain\", \"key\": \"default\"}]}", "no \"key\""),
        ("{\"buckets\": [{\"match\": \"a\", \"action\": \"encrypt\", \"key\": \"nope\"}]}", "must name a key"),
        ("{\"buckets\": [{\"match\": \"a\", \"action\": \"encrypt\", \"extra\": 1}]}", "unknown field"),
        ("{\"keys\": {\"default\": {\"provider\": \"raw\"}}}", "reserved"),
        ("{\"keys\": {\"k\": {\"provider\": \"gpg\"}}}", "\"provider\" must be one of"),
        ("{\"keys\": {\"k\": {\"provider\": \"aws-kms\"}}}", "printable ASCII"),
        ("{\"keys\": {\"k\": {\"provider\": \"aws-kms\", \"key\": \"a b\"}}}", "printable ASCII"),
        ("{\"keys\": {\"k\": {\"provider\": \"raw\", \"key\": \"x\"}}}", "drop \"key\""),
        ("{\"keys\": {\"bad name\": {\"provider\": \"raw\"}}}", "key name"),
        ("not json", "not valid JSON"),
    ])
    func invalidPoliciesAreRefusedWithAClearMessage(json: String, expected: String) {
        do {
            _ = try parse(json)
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func aProviderWithoutSettingsIsRefused() {
        #expect(throws: PolicyError.self) {
            try parse("{\"keys\": {\"k\": {\"provider\": \"kmip\", \"key\": \"1\"}}}", configured: [.raw])
        }
    }

    @Test func sizeAndRuleCountAreBounded() {
        let rules = Array(repeating: "{\"match\": \"a\", \"action\": \"plain\"}", count: BucketPolicy.maxRules + 1).joined(separator: ",")
        #expect(throws: PolicyError.self) { try parse("{\"buckets\": [\(rules)]}") }
        let huge = "{\"buckets\": [], \"x\": \"" + String(repeating: "a", count: BucketPolicy.maxFileSize) + "\"}"
        #expect(throws: PolicyError.self) { try parse(huge) }
    }
}
