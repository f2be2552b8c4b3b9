import Shared

/// The single round trip of an encrypted GET (docs/FORMAT.md §7): without knowing the object, the gateway asks
/// for the ciphertext the client's range would cover if the object had the default chunk size, and decides
/// on the answer's head, which carries the metadata and the stored size, whether those bytes are the ones
/// the plan needs. Only when they are not (another chunk size, a plain or multipart object) is the read redone.
public struct OptimisticRead: Sendable, Equatable {
    /// The client's `Range` header (nil: the whole object).
    public let rangeHeader: String?
    /// The `Range` to send to the backend; nil fetches the whole object.
    public let backendRange: String?

    /// Nil when the covering ciphertext cannot be known before the object's size (a suffix range `bytes=-n`,
    /// or numbers beyond what a ciphertext offset can be): such reads start with a HEAD.
    public init?(rangeHeader: String?, assuming layout: ChunkLayout = .default) {
        self.rangeHeader = rangeHeader
        // Headers that must be ignored (bad syntax, several ranges) mean the whole object, as in `ReadPlan`.
        guard let header = rangeHeader, let range = ByteRange.parse(header) else {
            backendRange = nil
            return
        }
        let sealed = layout.sealedChunkSize
        switch range {
        case .suffix:
            return nil
        case .closed(let first, let last):
            let (start, o1) = (first / layout.chunkSize).multipliedReportingOverflow(by: sealed)
            guard !o1 else { return nil }
            let (end, o2) = (last / layout.chunkSize + 1).multipliedReportingOverflow(by: sealed)
            // A `last` past any possible object reads to the end.
            backendRange = o2 ? "bytes=\(start)-" : "bytes=\(start)-\(end - 1)"
        case .from(let first):
            let (start, o1) = (first / layout.chunkSize).multipliedReportingOverflow(by: sealed)
            guard !o1 else { return nil }
            backendRange = "bytes=\(start)-"
        }
    }

    /// What to do with the backend's answer to the optimistic GET, for an object of `layout`.
    public enum Decision: Sendable, Equatable {
        /// The answer's body is exactly the ciphertext `plan` needs: decrypt it.
        case read(ReadPlan)
        /// The client's range selects nothing: answer 416 as `plan` says (the body is not needed).
        case unsatisfiable(ReadPlan)
        /// The answer holds other bytes than the plan needs (the object's chunk size is not the default, or the
        /// backend ignored the range): read again, knowing the stored size.
        case redo(storedLength: Int)
    }

    /// Decides on a 200 or 206 answer. Nil when the answer does not say how large the stored object is
    /// (then only a HEAD can).
    public func decide(status: Int, headers: [(name: String, value: String)], layout: ChunkLayout) throws(EncryptionError) -> Decision? {
        guard let received = Self.receivedRange(status: status, headers: headers) else { return nil }
        let plan = try ReadPlan(storedLength: received.storedLength, layout: layout, rangeHeader: rangeHeader)
        if plan.status == 416 { return .unsatisfiable(plan) }
        // The same range string means the same bytes: both come from the one mapping of §7.
        let matches = plan.backendRange == nil
            ? received.range == nil && backendRange == nil
            : received.range == plan.backendRange
        return matches ? .read(plan) : .redo(storedLength: received.storedLength)
    }

    /// The stored object's size and, for a 206, the range the body holds (as a `Range` value, `bytes=a-b`).
    static func receivedRange(status: Int, headers: [(name: String, value: String)]) -> (storedLength: Int, range: String?)? {
        func header(_ name: String) -> Substring? {
            guard let value = headers.first(where: { $0.name.caseInsensitiveEquals(name) })?.value else { return nil }
            // Backends send these without surrounding whitespace: then there is nothing to trim.
            if let first = value.utf8.first, let last = value.utf8.last, first != 0x20, first != 0x09, last != 0x20, last != 0x09 {
                return Substring(value)
            }
            var trimmed = Substring(value)
            while let first = trimmed.first, first == " " || first == "\t" { trimmed = trimmed.dropFirst() }
            while let last = trimmed.last, last == " " || last == "\t" { trimmed = trimmed.dropLast() }
            return trimmed
        }
        switch status {
        case 200:
            guard let length = header("content-length").flatMap({ Int($0) }), length >= 0 else { return nil }
            return (length, nil)
        case 206:
            // `bytes first-last/total`; a `*` total (unknown size) is no use here.
            guard let value = header("content-range"), value.hasPrefix("bytes ") else { return nil }
            let spec = value.dropFirst("bytes ".count)
            guard let slash = spec.firstIndex(of: "/"), let dash = spec[..<slash].firstIndex(of: "-"),
                  let first = Int(spec[..<dash]), let last = Int(spec[spec.index(after: dash)..<slash]),
                  let total = Int(spec[spec.index(after: slash)...]), first >= 0, first <= last, last < total else { return nil }
            return (total, "bytes=\(first)-\(last)")
        default:
            return nil
        }
    }
}
