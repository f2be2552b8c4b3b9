import Foundation

/// Generic JSON for Kubernetes objects we pass through untouched.
///
/// Integers are kept exact in `.integer` (resourceVersions, generations, ports and byte counts must not round-trip
/// through `Double`); `.number` holds only values that are not integral or do not fit in `Int64`.
/// `.integer(1) == .number(1.0)` so producers need not care which case they build.
enum JSONValue: Codable, Equatable, Hashable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .integer(i); return }
        if let d = try? c.decode(Double.self) {
            if d.rounded() == d, abs(d) < 9.0e15 { self = .integer(Int64(d)) } else { self = .number(d) }
            return
        }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        if let o = try? c.decode([String: JSONValue].self) { self = .object(o); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.integer(let a), .number(let b)), (.number(let b), .integer(let a)): return Double(a) == b && b.rounded() == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a == b
        default: return false
        }
    }

    func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let b): hasher.combine(b)
        case .integer(let i): hasher.combine(Double(i))
        case .number(let d): hasher.combine(d)
        case .string(let s): hasher.combine(s)
        case .array(let a): hasher.combine(a)
        case .object(let o): hasher.combine(o)
        }
    }

    // MARK: Access

    subscript(key: String) -> JSONValue? {
        get { if case .object(let o) = self { return o[key] } else { return nil } }
        set {
            guard case .object(var o) = self else { return }
            o[key] = newValue
            self = .object(o)
        }
    }

    subscript(index: Int) -> JSONValue? {
        if case .array(let a) = self, a.indices.contains(index) { return a[index] }
        return nil
    }

    var string: String? { if case .string(let s) = self { return s } else { return nil } }
    var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    var int: Int? {
        switch self {
        case .integer(let i): return Int(exactly: i)
        case .number(let d): return Int(exactly: d)
        default: return nil
        }
    }
    var double: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        default: return nil
        }
    }
    var object: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }
    var array: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    var isNull: Bool { if case .null = self { return true } else { return false } }

    /// Value at a dotted path of object keys, e.g. `value[path: "metadata", "name"]`.
    subscript(path keys: String...) -> JSONValue? {
        var cur: JSONValue? = self
        for k in keys { cur = cur?[k] }
        return cur
    }

    // MARK: Kubernetes object helpers

    var metadata: JSONValue? { self["metadata"] }
    var name: String? { self[path: "metadata", "name"]?.string }
    var namespace: String? { self[path: "metadata", "namespace"]?.string }
    var resourceVersion: String? { self[path: "metadata", "resourceVersion"]?.string }
    var uid: String? { self[path: "metadata", "uid"]?.string }

    // MARK: Encoding

    /// Deterministic JSON (sorted keys, no escaped slashes): same value, same bytes. Used for applies and hashes.
    func encoded() -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a JSONValue cannot fail: every case maps to a JSON primitive (non-finite doubles are the only
        // exception; they are written as null rather than trapping).
        if let data = try? enc.encode(self.replacingNonFinite()) { return Array(data) }
        return Array("null".utf8)
    }

    /// `encoded()` as a String.
    var jsonString: String { String(decoding: encoded(), as: UTF8.self) }

    /// Parses one JSON document.
    static func parse(_ bytes: some Collection<UInt8>) throws(KubeError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw .decoding("invalid JSON: \(error)")
        }
    }

    static func parse(_ text: String) throws(KubeError) -> JSONValue { try parse(Array(text.utf8)) }

    private func replacingNonFinite() -> JSONValue {
        switch self {
        case .number(let d) where !d.isFinite: return .null
        case .array(let a): return .array(a.map { $0.replacingNonFinite() })
        case .object(let o): return .object(o.mapValues { $0.replacingNonFinite() })
        default: return self
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int64) { self = .integer(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    init(nilLiteral: ()) { self = .null }
    init(floatLiteral value: Double) { self = .number(value) }
}
