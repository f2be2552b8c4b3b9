/// A Swift value that has an OpenAPI schema and converts to and from JSON.
protocol SchemaValue: Sendable, Equatable {
    /// The schema of the type itself; `Field` adds the description, constraints and default.
    static var schema: Schema { get }
    /// Converts JSON that already passed `schema.validate` (so the shape is right). Types with rules append
    /// their violations to `problems`, prefixed by `path`.
    init(json: JSONValue, path: String, problems: inout [String])
    /// The JSON form; nil leaves the field out.
    var json: JSONValue? { get }
}

/// An object type of the API: its fields (name, schema, where the value lives) and cross-field rules.
/// `init()` holds the defaults; the CRD's `default:` values are read from it.
protocol APIObject: SchemaValue {
    init()
    static var description: String { get }
    static var fields: [Field<Self>] { get }
    static var rules: [Rule<Self>] { get }
}

extension APIObject {
    static var rules: [Rule<Self>] { [] }

    static var schema: Schema {
        var s = Schema(.object, description: description)
        for field in fields {
            s.properties[field.name] = field.schema
            if field.required { s.required.append(field.name) }
        }
        s.validations = rules.map { ($0.cel, $0.message) }
        return s
    }

    init(json: JSONValue, path: String, problems: inout [String]) {
        self.init()
        for field in Self.fields {
            if let v = json[field.name], v != .null { field.read(&self, v, "\(path).\(field.name)", &problems) }
        }
        for rule in Self.rules where !rule.check(self) {
            problems.append("\(path): \(rule.message)")
        }
    }

    var json: JSONValue? {
        var o: [String: JSONValue] = [:]
        for field in Self.fields {
            if let v = field.write(self) { o[field.name] = v }
        }
        return .object(o)
    }

    /// Defaults, validates and decodes `json` (e.g. a resource's `spec`) the way the API server and this type's
    /// rules would; `problems` is empty when the value is acceptable.
    static func decode(_ json: JSONValue, path: String) -> (value: Self, problems: [String]) {
        let schema = Self.schema
        let defaulted = schema.applyingDefaults(to: json)
        var problems = schema.validate(defaulted, path: path)
        guard problems.isEmpty else { return (Self(), problems) }
        let value = Self(json: defaulted, path: path, problems: &problems)
        return (value, problems)
    }
}

/// One field of an API object: its JSON name, its full schema (with the default taken from `Root()`), and how to
/// read and write it in the Swift value.
struct Field<Root: APIObject>: Sendable {
    let name: String
    let required: Bool
    let schema: Schema
    let read: @Sendable (inout Root, JSONValue, String, inout [String]) -> Void
    let write: @Sendable (Root) -> JSONValue?

    /// - `defaulted`: write `Root()`'s value as the CRD default (nil: scalars, non-empty lists/maps and objects
    ///   without required fields get one; empty values and required fields do not).
    init<V: SchemaValue>(_ name: String, _ keyPath: WritableKeyPath<Root, V> & Sendable, _ description: String,
                         required: Bool = false, defaulted: Bool? = nil,
                         _ constrain: (inout Schema) -> Void = { _ in }) {
        self.name = name
        self.required = required
        var s = V.schema
        s.description = description
        constrain(&s)
        if !required, var value = Root()[keyPath: keyPath].json {
            let useful: Bool
            if V.self is any APIObject.Type {
                // A nested object defaults to {} and the API server fills in its own fields' defaults.
                value = .object([:])
                useful = s.required.isEmpty
            } else {
                switch value {
                case .string(let x): useful = !x.isEmpty
                case .array(let a): useful = !a.isEmpty
                case .object(let o): useful = !o.isEmpty
                case .null: useful = false
                default: useful = true
                }
            }
            if defaulted ?? useful { s.defaultValue = value }
        }
        schema = s
        read = { root, json, path, problems in root[keyPath: keyPath] = V(json: json, path: path, problems: &problems) }
        write = { root in root[keyPath: keyPath].json }
    }
}

/// A rule the schema alone cannot express: a CEL expression for the CRD (`x-kubernetes-validations`, enforced by
/// API servers from 1.25 on) and the same check in Swift, which the operator applies on every cluster.
struct Rule<Root>: Sendable {
    let cel: String
    let message: String
    let check: @Sendable (Root) -> Bool
}

// MARK: Leaf types

extension String: SchemaValue {
    static var schema: Schema { Schema(.string) }
    init(json: JSONValue, path: String, problems: inout [String]) { self = json.string ?? "" }
    var json: JSONValue? { .string(self) }
}

extension Int: SchemaValue {
    static var schema: Schema {
        var s = Schema(.integer)
        s.format = "int32"
        return s
    }
    init(json: JSONValue, path: String, problems: inout [String]) { self = json.int ?? 0 }
    var json: JSONValue? { .integer(Int64(self)) }
}

extension Bool: SchemaValue {
    static var schema: Schema { Schema(.boolean) }
    init(json: JSONValue, path: String, problems: inout [String]) { self = json.bool ?? false }
    var json: JSONValue? { .bool(self) }
}

extension Optional: SchemaValue where Wrapped: SchemaValue {
    static var schema: Schema { Wrapped.schema }
    init(json: JSONValue, path: String, problems: inout [String]) {
        self = json == .null ? nil : Wrapped(json: json, path: path, problems: &problems)
    }
    var json: JSONValue? { self?.json }
}

extension Array: SchemaValue where Element: SchemaValue {
    static var schema: Schema {
        var s = Schema(.array)
        s.items = Element.schema
        return s
    }
    init(json: JSONValue, path: String, problems: inout [String]) {
        self = (json.array ?? []).enumerated().map { Element(json: $1, path: "\(path)[\($0)]", problems: &problems) }
    }
    var json: JSONValue? { .array(compactMap(\.json)) }
}

extension Dictionary: SchemaValue where Key == String, Value: SchemaValue {
    static var schema: Schema {
        var s = Schema(.object)
        s.additionalProperties = Value.schema
        return s
    }
    init(json: JSONValue, path: String, problems: inout [String]) {
        var d: [String: Value] = [:]
        for (k, v) in json.object ?? [:] { d[k] = Value(json: v, path: "\(path).\(k)", problems: &problems) }
        self = d
    }
    var json: JSONValue? { .object(compactMapValues(\.json)) }
}

/// Kubernetes `IntOrString` (e.g. a PodDisruptionBudget's `maxUnavailable`: `1` or `"25%"`).
enum IntOrString: SchemaValue, Hashable {
    case int(Int)
    case string(String)

    static var schema: Schema { Schema(.intOrString) }
    init(json: JSONValue, path: String, problems: inout [String]) {
        if let i = json.int { self = .int(i) } else { self = .string(json.string ?? "") }
    }
    var json: JSONValue? {
        switch self {
        case .int(let i): return .integer(Int64(i))
        case .string(let s): return .string(s)
        }
    }
}

/// A Kubernetes resource quantity (`100m`, `128Mi`, `1`), kept as written.
struct Quantity: SchemaValue, Hashable, ExpressibleByStringLiteral {
    var text: String
    init(stringLiteral value: String) { text = value }
    init(_ text: String) { self.text = text }

    static let pattern = #"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"#
    static var schema: Schema {
        var s = Schema(.intOrString)
        s.pattern = pattern
        return s
    }
    init(json: JSONValue, path: String, problems: inout [String]) {
        text = json.string ?? json.int.map(String.init) ?? ""
    }
    var json: JSONValue? { .string(text) }
}

/// Any JSON object passed through unchanged (e.g. `affinity`, a toleration): Kubernetes validates it when the
/// operator applies the Deployment, and a rejection becomes a `Degraded` condition naming the field.
struct OpaqueObject: SchemaValue, Hashable {
    var value: JSONValue
    init(_ value: JSONValue) { self.value = value }

    static var schema: Schema {
        var s = Schema(.object)
        s.preserveUnknownFields = true
        return s
    }
    init(json: JSONValue, path: String, problems: inout [String]) { value = json }
    var json: JSONValue? { value }
}
