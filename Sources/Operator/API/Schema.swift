import Foundation

/// A structural OpenAPI v3 schema node, as a CustomResourceDefinition's `openAPIV3Schema` holds it.
///
/// The EncryptionGateway API is declared once, as Swift types with `Field` lists (API/EncryptionGatewayTypes.swift);
/// their schema is derived from those fields and serves three purposes with one source: the CRD
/// (`config/crd`, generated, drift-tested), defaulting and validation inside the operator (Kubernetes 1.20 drops
/// `x-kubernetes-validations`, and `render` runs without a cluster), and decoding into the Swift values.
struct Schema: Sendable, Equatable {
    enum Kind: String, Sendable {
        case object, string, integer, boolean, array
        /// `x-kubernetes-int-or-string` (no `type`).
        case intOrString
    }

    var kind: Kind
    var description: String?
    var format: String?
    var defaultValue: JSONValue?
    var enumValues: [String]?
    var pattern: String?
    var minimum: Int64?
    var maximum: Int64?
    var minLength: Int?
    var maxLength: Int?
    var maxItems: Int?
    var properties: [String: Schema] = [:]
    var required: [String] = []
    var preserveUnknownFields = false
    /// `x-kubernetes-list-type`: "atomic", "set" or "map".
    var listType: String?
    var listMapKeys: [String]?
    /// CEL rules (`x-kubernetes-validations`), each also checked in Swift by the owning type's `Rule`.
    var validations: [(rule: String, message: String)] = []
    private var boxedItems: [Schema] = []
    private var boxedAdditional: [Schema] = []

    init(_ kind: Kind, description: String? = nil) {
        self.kind = kind
        self.description = description
    }

    var items: Schema? {
        get { boxedItems.first }
        set { boxedItems = newValue.map { [$0] } ?? [] }
    }

    var additionalProperties: Schema? {
        get { boxedAdditional.first }
        set { boxedAdditional = newValue.map { [$0] } ?? [] }
    }

    static func == (a: Schema, b: Schema) -> Bool { a.json == b.json }

    // MARK: Rendering

    /// The schema as it appears in a CRD.
    var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if kind == .intOrString {
            o["x-kubernetes-int-or-string"] = true
        } else {
            o["type"] = .string(kind.rawValue)
        }
        if let description { o["description"] = .string(description) }
        if let format { o["format"] = .string(format) }
        if let defaultValue { o["default"] = defaultValue }
        if let enumValues { o["enum"] = .array(enumValues.map(JSONValue.string)) }
        if let pattern { o["pattern"] = .string(pattern) }
        if let minimum { o["minimum"] = .integer(minimum) }
        if let maximum { o["maximum"] = .integer(maximum) }
        if let minLength { o["minLength"] = .integer(Int64(minLength)) }
        if let maxLength { o["maxLength"] = .integer(Int64(maxLength)) }
        if let maxItems { o["maxItems"] = .integer(Int64(maxItems)) }
        if !properties.isEmpty { o["properties"] = .object(properties.mapValues(\.json)) }
        if !required.isEmpty { o["required"] = .array(required.sorted().map(JSONValue.string)) }
        if let items { o["items"] = items.json }
        if let additionalProperties { o["additionalProperties"] = additionalProperties.json }
        if preserveUnknownFields { o["x-kubernetes-preserve-unknown-fields"] = true }
        if let listType { o["x-kubernetes-list-type"] = .string(listType) }
        if let listMapKeys { o["x-kubernetes-list-map-keys"] = .array(listMapKeys.map(JSONValue.string)) }
        if !validations.isEmpty {
            o["x-kubernetes-validations"] = .array(validations.map { ["rule": .string($0.rule), "message": .string($0.message)] })
        }
        return .object(o)
    }

    // MARK: Defaulting (what the API server does with `default`)

    /// Fills in absent properties that have a default, recursively (a defaulted object gets its own defaults too).
    func applyingDefaults(to value: JSONValue) -> JSONValue {
        switch kind {
        case .object:
            guard case .object(var o) = value else { return value }
            for (name, property) in properties {
                if o[name] == nil || o[name] == .null, let d = property.defaultValue { o[name] = d }
                if let present = o[name] { o[name] = property.applyingDefaults(to: present) }
            }
            if let additionalProperties {
                for (k, v) in o where properties[k] == nil { o[k] = additionalProperties.applyingDefaults(to: v) }
            }
            return .object(o)
        case .array:
            guard case .array(let a) = value, let items else { return value }
            return .array(a.map { items.applyingDefaults(to: $0) })
        default:
            return value
        }
    }

    // MARK: Validation (what the API server does with the structural schema)

    /// Problems of `value` against this schema, each prefixed by its field path (e.g. `spec.replicas: …`).
    /// Unknown fields are reported unless the schema preserves them (the API server would prune them).
    func validate(_ value: JSONValue, path: String) -> [String] {
        var problems: [String] = []
        validate(value, path: path, into: &problems)
        return problems
    }

    private func validate(_ value: JSONValue, path: String, into problems: inout [String]) {
        func problem(_ message: String) { problems.append("\(path): \(message)") }
        switch kind {
        case .object:
            guard case .object(let o) = value else { return problem("must be an object") }
            for name in required where o[name] == nil || o[name] == .null {
                problems.append("\(path).\(name): required value")
            }
            for (key, v) in o.sorted(by: { $0.key < $1.key }) {
                if let property = properties[key] {
                    if v == .null { continue }
                    property.validate(v, path: "\(path).\(key)", into: &problems)
                } else if let additionalProperties {
                    additionalProperties.validate(v, path: "\(path).\(key)", into: &problems)
                } else if !preserveUnknownFields {
                    problems.append("\(path).\(key): unknown field")
                }
            }
        case .array:
            guard case .array(let a) = value else { return problem("must be a list") }
            if let maxItems, a.count > maxItems { problem("must have at most \(maxItems) items") }
            if let items {
                for (i, element) in a.enumerated() { items.validate(element, path: "\(path)[\(i)]", into: &problems) }
            }
            if listType == "set", Set(a).count != a.count { problem("must not contain duplicates") }
        case .string:
            guard case .string(let s) = value else { return problem("must be a string") }
            checkString(s, problem)
        case .integer:
            guard let i = value.int, value.double.map({ $0.rounded() == $0 }) ?? false else { return problem("must be an integer") }
            if let minimum, Int64(i) < minimum { problem("must be at least \(minimum)") }
            if let maximum, Int64(i) > maximum { problem("must be at most \(maximum)") }
        case .boolean:
            guard value.bool != nil else { return problem("must be true or false") }
        case .intOrString:
            if let s = value.string {
                checkString(s, problem)
            } else if let i = value.int {
                if let minimum, Int64(i) < minimum { problem("must be at least \(minimum)") }
            } else {
                problem("must be an integer or a string")
            }
        }
    }

    private func checkString(_ s: String, _ problem: (String) -> Void) {
        if let enumValues, !enumValues.contains(s) {
            problem("must be one of \(enumValues.map { "\"\($0)\"" }.joined(separator: ", ")), got \(JSONValue.string(s).jsonString)")
        }
        if let minLength, s.count < minLength { problem(minLength == 1 ? "must not be empty" : "must be at least \(minLength) characters") }
        if let maxLength, s.count > maxLength { problem("must be at most \(maxLength) characters") }
        if let pattern, !Self.matches(s, pattern) {
            problem("\(JSONValue.string(s).jsonString) does not match \(pattern)")
        }
    }

    /// ECMA-style patterns as the API server uses them; the CRD's patterns stay within what both engines read alike.
    static func matches(_ s: String, _ pattern: String) -> Bool {
        guard let re = RegexCache.shared.regex(pattern) else { return false }
        return re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }
}

/// Compiled patterns, shared: the schema's patterns are few and reused on every reconcile.
private final class RegexCache: @unchecked Sendable {
    static let shared = RegexCache()
    // Guarded by `lock`. NSRegularExpression is immutable once made and safe to match from many threads.
    private let lock = NSLock()
    private var compiled: [String: NSRegularExpression] = [:]

    func regex(_ pattern: String) -> NSRegularExpression? {
        lock.lock()
        defer { lock.unlock() }
        if let re = compiled[pattern] { return re }
        guard let re = try? NSRegularExpression(pattern: pattern) else { return nil }
        compiled[pattern] = re
        return re
    }
}
