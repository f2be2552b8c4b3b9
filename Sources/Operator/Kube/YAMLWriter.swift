/// Deterministic YAML for `JSONValue` (the CRD file, `render` output, golden files): block style, two-space
/// indents, keys sorted except that `apiVersion`, `kind`, `metadata`, `spec` come first in that order.
/// Strings that a YAML 1.1 or 1.2 reader could take for something else are written JSON-quoted (valid YAML).
/// Long single-line prose (CRD descriptions) is written as a folded block scalar (`>-`) so that no line passes
/// `lineWidth`: the repository's yamllint limit (.yamllint.yaml) applies to generated files too, and fields
/// added later keep them clean.
enum YAMLWriter {
    /// Lines longer than this are folded where the string allows it (see `foldedLines`).
    static let lineWidth = 150
    /// Folded lines are filled up to this column.
    static let foldWidth = 120

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
                out += "\(pad)\(k): \(scalar(v, column: pad.count + k.count + 2, contentIndent: indent + 2))\n"
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
                out += "\(pad)- \(scalar(element, column: indent + 2, contentIndent: indent + 2))\n"
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

    /// `v` starting at `column`; a string that would pass `lineWidth` and folds cleanly becomes `>-` followed by
    /// its lines at `contentIndent`.
    static func scalar(_ v: JSONValue, column: Int, contentIndent: Int) -> String {
        let single = scalar(v)
        guard column + single.count > lineWidth, case .string(let s) = v,
            s.contains(" "), let lines = foldedLines(s, width: foldWidth - contentIndent)
        else { return single }
        let pad = String(repeating: " ", count: contentIndent)
        return ">-" + lines.map { "\n" + pad + $0 }.joined()
    }

    /// `s` split at single spaces into lines of at most `width` characters (a longer word gets its own line),
    /// such that a folded block scalar reads back exactly `s`: printable ASCII, no line break, no leading,
    /// trailing or repeated spaces (YAML keeps those only in "more-indented" lines). Nil when `s` does not qualify.
    static func foldedLines(_ s: String, width: Int) -> [String]? {
        guard !s.isEmpty, s.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) || $0 == " " }),
            !s.hasPrefix(" "), !s.hasSuffix(" "), !s.contains("  ")
        else { return nil }
        var lines: [String] = []
        var line = ""
        for word in s.split(separator: " ", omittingEmptySubsequences: false) {
            if line.isEmpty {
                line = String(word)
            } else if line.count + 1 + word.count <= width {
                line += " " + word
            } else {
                lines.append(line)
                line = String(word)
            }
        }
        lines.append(line)
        return lines
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
