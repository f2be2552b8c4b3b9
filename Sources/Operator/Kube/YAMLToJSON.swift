import CYAML

/// Strict, bounded YAML → `JSONValue` conversion over libyaml's event API (for kubeconfig files).
///
/// Core-schema scalars (null, true/false, ints incl. 0x/0o, floats, .inf/.nan); quoted or `!!str`-tagged
/// scalars stay strings. Anchors and aliases are resolved with a budget on the total expanded node count
/// (no "billion laughs"); `<<` merge keys are honoured. Duplicate keys, non-scalar keys, excessive depth or
/// size are errors.
enum YAMLToJSON {
    struct Limits: Sendable {
        var maxInputBytes = 4 << 20
        var maxDepth = 64
        /// Nodes after alias expansion.
        var maxNodes = 200_000
        var maxDocuments = 16
    }

    struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        var message: String
        var line: Int?
        var description: String { line.map { "line \($0): \(message)" } ?? message }
    }

    /// Exactly one document (an empty input is `null`).
    static func parse(_ text: String, limits: Limits = Limits()) throws(YAMLToJSON.Error) -> JSONValue {
        let docs = try parseDocuments(Array(text.utf8), limits: limits)
        guard docs.count <= 1 else { throw Error(message: "expected one YAML document, found \(docs.count)") }
        return docs.first ?? .null
    }

    static func parse(bytes: [UInt8], limits: Limits = Limits()) throws(YAMLToJSON.Error) -> JSONValue {
        let docs = try parseDocuments(bytes, limits: limits)
        guard docs.count <= 1 else { throw Error(message: "expected one YAML document, found \(docs.count)") }
        return docs.first ?? .null
    }

    static func parseDocuments(_ bytes: [UInt8], limits: Limits = Limits()) throws(YAMLToJSON.Error) -> [JSONValue] {
        guard bytes.count <= limits.maxInputBytes else {
            throw Error(message: "YAML input larger than \(limits.maxInputBytes) bytes")
        }
        var builder = Builder(parser: YAMLParser(bytes), limits: limits)
        return try builder.stream()
    }

    /// Scalar resolution per the YAML 1.2 core schema (what sigs.k8s.io/yaml effectively accepts for config).
    static func resolvePlainScalar(_ s: String) -> JSONValue {
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .number(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .number(-.infinity)
        case ".nan", ".NaN", ".NAN": return .number(.nan)
        default: break
        }
        let u = Array(s.utf8)
        guard let first = u.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
                || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else { return .string(s) }
        if isDecimalInteger(u) {
            if let i = Int64(s.hasPrefix("+") ? String(s.dropFirst()) : s) { return .integer(i) }
            if let d = Double(s) { return .number(d) }
        }
        if s.hasPrefix("0x"), s.count > 2, let i = Int64(s.dropFirst(2), radix: 16) { return .integer(i) }
        if s.hasPrefix("0o"), s.count > 2, let i = Int64(s.dropFirst(2), radix: 8) { return .integer(i) }
        if isFloat(u), let d = Double(s) { return .number(d) }
        return .string(s)
    }

    private static func isDecimalInteger(_ u: [UInt8]) -> Bool {
        var i = 0
        if u.first == UInt8(ascii: "-") || u.first == UInt8(ascii: "+") { i = 1 }
        guard i < u.count else { return false }
        return u[i...].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    private static func isFloat(_ u: [UInt8]) -> Bool {
        func digit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        var i = 0
        if i < u.count, u[i] == UInt8(ascii: "-") || u[i] == UInt8(ascii: "+") { i += 1 }
        var mantissaDigits = 0
        while i < u.count, digit(u[i]) { i += 1; mantissaDigits += 1 }
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            while i < u.count, digit(u[i]) { i += 1; mantissaDigits += 1 }
        }
        guard mantissaDigits > 0 else { return false }
        if i < u.count, u[i] == UInt8(ascii: "e") || u[i] == UInt8(ascii: "E") {
            i += 1
            if i < u.count, u[i] == UInt8(ascii: "-") || u[i] == UInt8(ascii: "+") { i += 1 }
            var expDigits = 0
            while i < u.count, digit(u[i]) { i += 1; expDigits += 1 }
            guard expDigits > 0 else { return false }
        }
        return i == u.count
    }
}

/// Owns a libyaml parser and the input it reads from (libyaml keeps pointers to both, so both live on the heap).
final class YAMLParser {
    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private let input: UnsafeMutableBufferPointer<UInt8>

    init(_ bytes: [UInt8]) {
        parser = .allocate(capacity: 1)
        input = .allocate(capacity: max(bytes.count, 1))
        _ = input.initialize(from: bytes)
        // yaml_parser_initialize only fails on malloc failure.
        _ = yaml_parser_initialize(parser)
        yaml_parser_set_input_string(parser, input.baseAddress, bytes.count)
    }

    deinit {
        yaml_parser_delete(parser)
        parser.deallocate()
        input.deallocate()
    }

    /// Next event, converted to a Swift value (the C event is freed before returning).
    func next() throws(YAMLToJSON.Error) -> YAMLEvent {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else {
            let problem = parser.pointee.problem.map { String(cString: $0) } ?? "invalid YAML"
            let context = parser.pointee.context.map { String(cString: $0) + " " } ?? ""
            throw YAMLToJSON.Error(message: context + problem, line: Int(parser.pointee.problem_mark.line) + 1)
        }
        defer { yaml_event_delete(&event) }
        let line = Int(event.start_mark.line) + 1
        func str(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            p.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        }
        switch event.type {
        case YAML_STREAM_START_EVENT: return .streamStart
        case YAML_STREAM_END_EVENT: return .streamEnd
        case YAML_DOCUMENT_START_EVENT: return .documentStart
        case YAML_DOCUMENT_END_EVENT: return .documentEnd
        case YAML_ALIAS_EVENT: return .alias(anchor: str(event.data.alias.anchor) ?? "", line: line)
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let value: String
            if let p = s.value {
                value = String(decoding: UnsafeBufferPointer(start: p, count: Int(s.length)), as: UTF8.self)
            } else {
                value = ""
            }
            return .scalar(value: value, anchor: str(s.anchor), tag: str(s.tag),
                           plain: s.style == YAML_PLAIN_SCALAR_STYLE, line: line)
        case YAML_SEQUENCE_START_EVENT:
            return .sequenceStart(anchor: str(event.data.sequence_start.anchor), line: line)
        case YAML_SEQUENCE_END_EVENT: return .sequenceEnd
        case YAML_MAPPING_START_EVENT:
            return .mappingStart(anchor: str(event.data.mapping_start.anchor), line: line)
        case YAML_MAPPING_END_EVENT: return .mappingEnd
        default: throw YAMLToJSON.Error(message: "unexpected YAML event", line: line)
        }
    }
}

enum YAMLEvent {
    case streamStart, streamEnd, documentStart, documentEnd
    case alias(anchor: String, line: Int)
    case scalar(value: String, anchor: String?, tag: String?, plain: Bool, line: Int)
    case sequenceStart(anchor: String?, line: Int)
    case sequenceEnd
    case mappingStart(anchor: String?, line: Int)
    case mappingEnd
}

private struct Builder {
    let parser: YAMLParser
    let limits: YAMLToJSON.Limits
    var anchors: [String: (value: JSONValue, nodes: Int)] = [:]
    var nodes = 0

    init(parser: YAMLParser, limits: YAMLToJSON.Limits) {
        self.parser = parser
        self.limits = limits
    }

    mutating func stream() throws(YAMLToJSON.Error) -> [JSONValue] {
        guard case .streamStart = try parser.next() else { throw .init(message: "missing YAML stream start") }
        var docs: [JSONValue] = []
        while true {
            switch try parser.next() {
            case .streamEnd: return docs
            case .documentStart:
                guard docs.count < limits.maxDocuments else {
                    throw .init(message: "more than \(limits.maxDocuments) YAML documents")
                }
                anchors = [:]  // anchors are document-scoped
                let root = try node(try parser.next(), depth: 0)
                guard case .documentEnd = try parser.next() else { throw .init(message: "expected end of YAML document") }
                docs.append(root.value)
            default: throw .init(message: "unexpected YAML structure")
            }
        }
    }

    private mutating func count(_ n: Int, line: Int) throws(YAMLToJSON.Error) {
        nodes += n
        if nodes > limits.maxNodes {
            throw .init(message: "YAML expands to more than \(limits.maxNodes) nodes", line: line)
        }
    }

    /// Returns the value and its expanded node count (charged again whenever an alias repeats it).
    private mutating func node(_ event: YAMLEvent, depth: Int) throws(YAMLToJSON.Error) -> (value: JSONValue, nodes: Int) {
        switch event {
        case .alias(let anchor, let line):
            guard let a = anchors[anchor] else { throw .init(message: "unknown alias *\(anchor)", line: line) }
            try count(a.nodes, line: line)
            return a
        case .scalar(let value, let anchor, let tag, let plain, let line):
            try count(1, line: line)
            let v = try scalar(value, tag: tag, plain: plain, line: line)
            if let anchor { anchors[anchor] = (v, 1) }
            return (v, 1)
        case .sequenceStart(let anchor, let line):
            guard depth < limits.maxDepth else { throw .init(message: "YAML nested deeper than \(limits.maxDepth)", line: line) }
            try count(1, line: line)
            var items: [JSONValue] = []
            var total = 1
            while true {
                let e = try parser.next()
                if case .sequenceEnd = e { break }
                let child = try node(e, depth: depth + 1)
                items.append(child.value)
                total += child.nodes
            }
            if let anchor { anchors[anchor] = (.array(items), total) }
            return (.array(items), total)
        case .mappingStart(let anchor, let line):
            guard depth < limits.maxDepth else { throw .init(message: "YAML nested deeper than \(limits.maxDepth)", line: line) }
            try count(1, line: line)
            var object: [String: JSONValue] = [:]
            var merged: [String: JSONValue] = [:]
            var total = 1
            while true {
                let keyEvent = try parser.next()
                if case .mappingEnd = keyEvent { break }
                let key: String
                var isMerge = false
                switch keyEvent {
                case .scalar(let k, _, _, let plain, _):
                    key = k
                    isMerge = plain && k == "<<"
                    try count(1, line: line)
                case .alias(let a, let l):
                    guard let v = anchors[a]?.value, let s = v.string else {
                        throw .init(message: "mapping key alias *\(a) is not a string", line: l)
                    }
                    key = s
                default:
                    throw .init(message: "mapping keys must be scalars", line: line)
                }
                let value = try node(try parser.next(), depth: depth + 1)
                total += value.nodes + 1
                if isMerge {
                    // `<<: *base` or `<<: [*a, *b]`: earlier sources win, explicit keys win over all.
                    let sources: [JSONValue] = value.value.array ?? [value.value]
                    for src in sources {
                        guard let o = src.object else { throw .init(message: "merge key << needs a mapping", line: line) }
                        for (k, v) in o where merged[k] == nil { merged[k] = v }
                    }
                    continue
                }
                guard object[key] == nil else { throw .init(message: "duplicate key \"\(key.prefix(100))\"", line: line) }
                object[key] = value.value
            }
            for (k, v) in merged where object[k] == nil { object[k] = v }
            if let anchor { anchors[anchor] = (.object(object), total) }
            return (.object(object), total)
        default:
            throw .init(message: "unexpected YAML structure")
        }
    }

    private func scalar(_ value: String, tag: String?, plain: Bool, line: Int) throws(YAMLToJSON.Error) -> JSONValue {
        switch tag {
        case nil, "!":
            return plain ? YAMLToJSON.resolvePlainScalar(value) : .string(value)
        case "tag:yaml.org,2002:str", "tag:yaml.org,2002:binary":
            return .string(value)
        case "tag:yaml.org,2002:null":
            return .null
        case "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float":
            let v = YAMLToJSON.resolvePlainScalar(value)
            let ok: Bool
            switch (tag, v) {
            case ("tag:yaml.org,2002:bool", .bool): ok = true
            case ("tag:yaml.org,2002:int", .integer): ok = true
            case ("tag:yaml.org,2002:float", .number), ("tag:yaml.org,2002:float", .integer): ok = true
            default: ok = false
            }
            guard ok else { throw .init(message: "\"\(value.prefix(50))\" is not a valid \(tag!)", line: line) }
            return v
        default:
            throw .init(message: "unsupported YAML tag \(tag!)", line: line)
        }
    }
}
