/// Deterministic YAML for `JSONValue` (the CRD file, `render` output, golden files): block style, two-space
/// indents, keys sorted except that `apiVersion`, `kind`, `metadata`, `spec` come first in that order.
/// Strings that a YAML 1.1 or 1.2 reader could take for something else are written JSON-quoted (valid YAML).
enum YAMLWriter {
    /// One document per value, separated by `---`.
    static func documents(_ values: [JSONValue]) -> String {
        values.map { document($0) }.joined(separator: "---\n")
    }

    static func document(_ value: JSONValue) -> String {
        var out = ""
        switch value {
        case .object(let o) where !o.isEmpty: writeObject(o, indent: 0, into: &out)
        case .array(let a) where !a.isEmpty: writeArray(a, indent: 0, into: &out)
        default: out += scalar(value) + "\n"
        }
        return out
    }

    private static let leading = ["apiVersion", "kind", "metadata", "spec"]

    static func orderedKeys(_ o: [String: JSONValue]) -> [String] {
        leading.filter { o[$0] != nil } + o.keys.filter { !leading.contains($0) }.sorted()
    }

    private static func writeObject(_ o: [String: JSONValue], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for key in orderedKeys(o) {
            let v = o[key]!
            let k = plainSafe(key) ? key : JSONValue.string(key).jsonString
            switch v {
            case .object(let child) where !child.isEmpty:
                out += "\(pad)\(k):\n"
                writeObject(child, indent: indent + 2, into: &out)
            case .array(let child) where !child.isEmpty:
                out += "\(pad)\(k):\n"
                writeArray(child, indent: indent, into: &out)
            default:
                out += "\(pad)\(k): \(scalar(v))\n"
            }
        }
    }

    /// Lists are written at the parent key's indentation ("- " then the item), as kubectl does.
    private static func writeArray(_ a: [JSONValue], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for element in a {
            switch element {
            case .object(let o) where !o.isEmpty:
                var inner = ""
                writeObject(o, indent: indent + 2, into: &inner)
                // Replace the first line's indentation with "- ".
                let dropped = inner.dropFirst(indent + 2)
                out += "\(pad)- " + dropped
            case .array(let inner) where !inner.isEmpty:
                out += "\(pad)-\n"
                writeArray(inner, indent: indent + 2, into: &out)
            default:
                out += "\(pad)- \(scalar(element))\n"
            }
        }
    }

    static func scalar(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number: return v.jsonString
        case .string(let s): return plainSafe(s) ? s : v.jsonString
        case .array: return "[]"
        case .object: return "{}"
        }
    }

    /// Whether `s` can be written unquoted and still read back as the same string.
    static func plainSafe(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, let last = s.unicodeScalars.last else { return false }
        if first == " " || last == " " { return false }
        if "-?:,[]{}#&*!|>'\"%@`~=".unicodeScalars.contains(first) { return false }
        for c in s.unicodeScalars {
            if c.value < 0x20 || c.value == 0x7F || c.value > 0x7E { return false }
        }
        if s.contains(": ") || s.contains(" #") || s.hasSuffix(":") { return false }
        let lower = s.lowercased()
        let reserved: Set<String> = ["null", "true", "false", "yes", "no", "on", "off", "y", "n", "~", ".inf", "-.inf", ".nan"]
        if reserved.contains(lower) { return false }
        // Anything that starts like a number (or a date, or an octal/hex literal) is quoted.
        if let f = s.unicodeScalars.first, ("0"..."9").contains(f) || f == "." || f == "+" { return false }
        return true
    }
}
