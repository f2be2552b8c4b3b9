import Foundation
import Shared

/// A key the policy can name: a provider and, for remote providers, the provider's key (KMIP unique
/// identifier, AWS KMS key id/ARN/alias, Vault Transit key name). Local providers have one active key
/// each, so their `name` is empty.
public struct KeySpec: Sendable, Hashable, CustomStringConvertible {
    public var provider: KeyProviderKind
    public var name: String

    public init(provider: KeyProviderKind, name: String = "") {
        self.provider = provider
        self.name = provider.isLocal ? "" : name
    }

    public var description: String { name.isEmpty ? provider.rawValue : "\(provider.rawValue):\(name)" }
}

/// What the gateway does with new objects of one bucket.
public enum BucketDecision: Sendable, Equatable {
    /// Stored unencrypted; listings are passed through untouched. Objects already encrypted stay readable.
    case plain
    /// Encrypted under this key.
    case encrypt(KeySpec, keyName: String)
}

/// The per-bucket encryption policy (`ENCRYPTION_POLICY_FILE`): ordered bucket-name patterns, each
/// `plain` or `encrypt` with a named key; the first match wins; unmatched buckets are encrypted with
/// the default key. Reading never consults the policy: objects are opened by what their metadata says.
///
/// File format (JSON):
/// ```json
/// {
///   "keys": {"tenant-a": {"provider": "vault-transit", "key": "tenant-a"}},
///   "buckets": [
///     {"match": "restic-*", "action": "plain"},
///     {"match": "tenant-a-*", "action": "encrypt", "key": "tenant-a"}
///   ]
/// }
/// ```
/// `default` always names the gateway's configured key (`ENCRYPTION_KEY_PROVIDER` and its settings).
public struct BucketPolicy: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        public var pattern: String
        public var decision: BucketDecision
    }

    public static let defaultKeyName = "default"
    public static let maxFileSize = 1 << 20
    public static let maxRules = 10_000

    public private(set) var rules: [Rule]
    /// Named keys, `default` included.
    public private(set) var keys: [String: KeySpec]
    public let defaultKey: KeySpec

    /// The policy without a file: every bucket encrypted with the default key.
    public init(defaultKey: KeySpec) {
        self.rules = []
        self.keys = [Self.defaultKeyName: defaultKey]
        self.defaultKey = defaultKey
    }

    public func decision(bucket: String) -> BucketDecision {
        for rule in rules where Self.matches(pattern: Array(rule.pattern.utf8), name: Array(bucket.utf8)) {
            return rule.decision
        }
        return .encrypt(defaultKey, keyName: Self.defaultKeyName)
    }

    /// Every key the policy can write with (the default key first).
    public var writeKeys: [KeySpec] {
        var out = [defaultKey]
        for rule in rules {
            if case .encrypt(let spec, _) = rule.decision, !out.contains(spec) { out.append(spec) }
        }
        return out
    }

    /// Parses and validates a policy document. `configured` says which providers this gateway has, so
    /// a policy naming a provider without settings is refused (at start-up: exit 2; on reload: kept out).
    public static func parse(_ bytes: [UInt8], defaultKey: KeySpec,
                             configured: Set<KeyProviderKind>) throws(PolicyError) -> BucketPolicy {
        guard bytes.count <= maxFileSize else { throw PolicyError("the policy file is larger than \(maxFileSize) bytes") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            throw PolicyError("the policy file is not valid JSON: \((error as NSError).localizedDescription)")
        }
        guard let root = object as? [String: Any] else { throw PolicyError("the policy must be a JSON object with \"keys\" and \"buckets\"") }
        for field in root.keys where field != "keys" && field != "buckets" {
            throw PolicyError("unknown field \(JSON.quote(field)) (allowed: keys, buckets)")
        }
        var policy = BucketPolicy(defaultKey: defaultKey)
        if let keys = root["keys"] {
            guard let table = keys as? [String: Any] else { throw PolicyError("\"keys\" must be an object of named keys") }
            for (name, value) in table.sorted(by: { $0.key < $1.key }) {
                guard name != defaultKeyName else {
                    throw PolicyError("the key name \"default\" is reserved for the configured key (ENCRYPTION_KEY_PROVIDER)")
                }
                guard isKeyName(name) else {
                    throw PolicyError("key name \(JSON.quote(name)) must be 1-64 characters of a-z, A-Z, 0-9, '.', '_' or '-'")
                }
                policy.keys[name] = try keySpec(value, name: name, configured: configured)
            }
        }
        if let buckets = root["buckets"] {
            guard let list = buckets as? [Any] else { throw PolicyError("\"buckets\" must be a list of rules") }
            guard list.count <= maxRules else { throw PolicyError("more than \(maxRules) bucket rules") }
            for (index, item) in list.enumerated() {
                policy.rules.append(try rule(item, index: index, keys: policy.keys))
            }
        }
        return policy
    }

    private static func keySpec(_ value: Any, name: String, configured: Set<KeyProviderKind>) throws(PolicyError) -> KeySpec {
        guard let object = value as? [String: Any] else { throw PolicyError("key \(JSON.quote(name)) must be an object like {\"provider\": \"aws-kms\", \"key\": \"alias/tenant-a\"}") }
        for field in object.keys where field != "provider" && field != "key" {
            throw PolicyError("key \(JSON.quote(name)): unknown field \(JSON.quote(field)) (allowed: provider, key)")
        }
        guard let providerName = object["provider"] as? String, let provider = KeyProviderKind(rawValue: providerName) else {
            throw PolicyError("key \(JSON.quote(name)): \"provider\" must be one of \(KeyProviderKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard configured.contains(provider) else {
            throw PolicyError("key \(JSON.quote(name)) uses provider \(provider), which this gateway has no settings for")
        }
        let keyText = object["key"] as? String
        if object["key"] != nil && keyText == nil { throw PolicyError("key \(JSON.quote(name)): \"key\" must be a string") }
        if provider.isLocal {
            guard keyText == nil else {
                throw PolicyError("key \(JSON.quote(name)): provider \(provider) has one active key (set by its environment variables); drop \"key\"")
            }
            return KeySpec(provider: provider)
        }
        guard let keyText, !keyText.isEmpty, keyText.utf8.count <= 256,
              keyText.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") }) else {
            throw PolicyError("key \(JSON.quote(name)): \"key\" (the \(provider) key) must be 1-256 printable ASCII characters without spaces or commas")
        }
        return KeySpec(provider: provider, name: keyText)
    }

    private static func rule(_ value: Any, index: Int, keys: [String: KeySpec]) throws(PolicyError) -> Rule {
        let at = "buckets[\(index)]"
        guard let object = value as? [String: Any] else { throw PolicyError("\(at) must be an object like {\"match\": \"logs-*\", \"action\": \"plain\"}") }
        for field in object.keys where !["match", "action", "key"].contains(field) {
            throw PolicyError("\(at): unknown field \(JSON.quote(field)) (allowed: match, action, key)")
        }
        guard let pattern = object["match"] as? String, isPattern(pattern) else {
            throw PolicyError("\(at): \"match\" must be a bucket name pattern of 1-63 characters a-z, 0-9, '.', '-' and the wildcards '*' and '?'")
        }
        switch object["action"] as? String {
        case "plain":
            guard object["key"] == nil else { throw PolicyError("\(at): a plain rule takes no \"key\"") }
            return Rule(pattern: pattern, decision: .plain)
        case "encrypt":
            let keyName = object["key"].map { $0 as? String } ?? defaultKeyName
            guard let keyName, let spec = keys[keyName] else {
                throw PolicyError("\(at): \"key\" must name a key of \"keys\" (or \"default\")")
            }
            return Rule(pattern: pattern, decision: .encrypt(spec, keyName: keyName))
        default:
            throw PolicyError("\(at): \"action\" must be \"encrypt\" or \"plain\"")
        }
    }

    static func isKeyName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count <= 64 && bytes.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
    }

    static func isPattern(_ pattern: String) -> Bool {
        let bytes = Array(pattern.utf8)
        return !bytes.isEmpty && bytes.count <= 63 && bytes.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
                || $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?")
        }
    }

    /// Glob match of the whole name: `*` any run (also empty), `?` one character. Iterative with one
    /// backtrack point, so it runs in O(len(pattern) · len(name)) at worst, whatever the pattern.
    static func matches(pattern: [UInt8], name: [UInt8]) -> Bool {
        var p = 0, n = 0
        var star = -1, starName = 0
        while n < name.count {
            if p < pattern.count && (pattern[p] == UInt8(ascii: "?") || pattern[p] == name[n]) {
                p += 1
                n += 1
            } else if p < pattern.count && pattern[p] == UInt8(ascii: "*") {
                star = p
                starName = n
                p += 1
            } else if star >= 0 {
                p = star + 1
                starName += 1
                n = starName
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}

/// A policy document that cannot be used; the message says where and what is expected.
public struct PolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
