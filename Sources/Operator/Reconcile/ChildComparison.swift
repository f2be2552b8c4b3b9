import Foundation

/// Decides whether a child must be applied, so that an unchanged fleet costs no API writes at all.
///
/// Each applied child carries `s3gateway.dev/desired-hash`, a hash of what the operator last applied. A child is
/// applied again when it is missing, when that hash differs (the operator wants something else — including fields it
/// no longer sets, which a comparison of values alone would miss), or when the live object no longer contains
/// every desired value (someone edited or removed a field the operator owns: drift). Fields the API server adds
/// (defaults, status, other managers' fields) are ignored.
enum ChildComparison {
    static let hashAnnotation = "s3gateway.dev/desired-hash"

    /// `desired` with its hash annotation set.
    static func stamped(_ desired: JSONValue) -> JSONValue {
        var o = desired
        let hash = sha256Hex(desired.jsonString)
        var metadata = o["metadata"] ?? .object([:])
        var annotations = metadata["annotations"]?.object ?? [:]
        annotations[hashAnnotation] = .string(hash)
        metadata["annotations"] = .object(annotations)
        o["metadata"] = metadata
        return o
    }

    /// Whether `stampedDesired` must be applied over `live` (nil: the child does not exist).
    static func needsApply(_ stampedDesired: JSONValue, live: JSONValue?) -> Bool {
        guard let live else { return true }
        let want = stampedDesired[path: "metadata", "annotations", hashAnnotation]
        guard want != nil, live[path: "metadata", "annotations", hashAnnotation] == want else { return true }
        return !contains(live, stampedDesired)
    }

    /// Whether every value of `desired` is present and equal in `live`. Lists must have the same length and each
    /// desired element must match its own live element, in any order (Kubernetes 1.20 stores autoscaling/v2beta2
    /// metrics through autoscaling/v1 and hands them back reordered); an empty desired object or list also matches
    /// a missing one (the server drops them); quantities match by value ("0.5" equals "500m").
    static func contains(_ live: JSONValue?, _ desired: JSONValue) -> Bool {
        switch desired {
        case .object(let d):
            guard let live else { return d.isEmpty }
            guard case .object(let l) = live else { return false }
            for (k, v) in d where !contains(l[k], v) { return false }
            return true
        case .array(let d):
            guard let live else { return d.isEmpty }
            guard case .array(let l) = live, l.count == d.count else { return false }
            var unused = Array(l.indices)
            for want in d {
                // In order first (the usual case), else any unused element.
                guard let i = unused.first(where: { contains(l[$0], want) }) else { return false }
                unused.removeAll { $0 == i }
            }
            return true
        case .string(let s):
            guard let live else { return false }
            if live == desired { return true }
            if let ls = live.string, let a = quantityValue(ls), let b = quantityValue(s) { return a == b }
            return false
        default:
            return live == desired
        }
    }

    /// The value of a Kubernetes quantity string, or nil when `s` is not one.
    static func quantityValue(_ s: String) -> Decimal? {
        guard Schema.matches(s, Quantity.pattern) else { return nil }
        let suffixes: [(String, Decimal)] = [
            ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", Decimal(1_099_511_627_776)),
            ("Pi", Decimal(1_125_899_906_842_624)), ("Ei", Decimal(string: "1152921504606846976")!),
            ("n", Decimal(string: "0.000000001")!), ("u", Decimal(string: "0.000001")!), ("m", Decimal(string: "0.001")!),
            ("k", 1000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", Decimal(string: "1e12")!),
            ("P", Decimal(string: "1e15")!), ("E", Decimal(string: "1e18")!),
        ]
        for (suffix, factor) in suffixes where s.hasSuffix(suffix) {
            guard let n = Decimal(string: String(s.dropLast(suffix.count))) else { return nil }
            return n * factor
        }
        return Decimal(string: s)
    }
}
