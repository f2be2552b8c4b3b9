/// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header that carries a trace
/// across processes, parsed strictly and formatted. Pure values, no I/O.

/// A 16-byte trace id; all zeros is invalid.
public struct TraceID: Hashable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> TraceID {
        while true {
            let id = TraceID(high: generator.next(), low: generator.next())
            if id.isValid { return id }
        }
    }

    public var isValid: Bool { high != 0 || low != 0 }
    public var bytes: [UInt8] { bigEndianBytes(high) + bigEndianBytes(low) }
    /// 32 lower-case hex digits.
    public var description: String { hex16(high) + hex16(low) }
}

/// An 8-byte span id; all zeros is invalid.
public struct SpanID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> SpanID {
        while true {
            let id = SpanID(generator.next())
            if id.isValid { return id }
        }
    }

    public var isValid: Bool { value != 0 }
    public var bytes: [UInt8] { bigEndianBytes(value) }
    /// 16 lower-case hex digits.
    public var description: String { hex16(value) }
}

/// Where a span sits in a trace: what crosses a process boundary.
public struct SpanContext: Hashable, Sendable {
    public var traceID: TraceID
    public var spanID: SpanID
    /// The `sampled` flag (bit 0 of trace-flags): the caller records this trace.
    public var sampled: Bool
    /// The vendor-specific `tracestate` header, passed on unchanged (nil when absent or invalid).
    public var traceState: String?
    /// True when the context came from another process (a parsed `traceparent`).
    public var isRemote: Bool

    public init(traceID: TraceID, spanID: SpanID, sampled: Bool, traceState: String? = nil, isRemote: Bool = false) {
        self.traceID = traceID
        self.spanID = spanID
        self.sampled = sampled
        self.traceState = traceState
        self.isRemote = isRemote
    }

    /// The `traceparent` header value for a request made inside this span (version 00).
    public var traceparent: String { "00-\(traceID)-\(spanID)-\(sampled ? "01" : "00")" }

    /// Reads `traceparent` (and `tracestate`) as the specification's parsing rules say: version 00 must be
    /// exactly 55 characters; a higher version may carry more fields after a dash, which are ignored; `ff`,
    /// upper-case hex, all-zero ids and malformed values are refused (nil), so the request starts a new trace.
    public static func parse(traceparent: String?, tracestate: String? = nil) -> SpanContext? {
        guard let traceparent else { return nil }
        let b = Array(traceparent.utf8)
        guard b.count >= 55, b.count <= 512 else { return nil }
        guard let version = hexByte(b, 0), version != 0xFF, b[2] == dash, b[35] == dash, b[52] == dash,
              let traceHigh = hexUInt64(b, 3), let traceLow = hexUInt64(b, 19), let span = hexUInt64(b, 36),
              let flags = hexByte(b, 53)
        else { return nil }
        if version == 0 {
            guard b.count == 55 else { return nil }
        } else if b.count > 55 {
            guard b[55] == dash else { return nil }
        }
        let traceID = TraceID(high: traceHigh, low: traceLow)
        let spanID = SpanID(span)
        guard traceID.isValid, spanID.isValid else { return nil }
        return SpanContext(traceID: traceID, spanID: spanID, sampled: flags & 1 == 1,
                           traceState: validTraceState(tracestate), isRemote: true)
    }

    /// `tracestate` is opaque to us; it is passed on only when it has the shape the specification allows
    /// (at most 512 bytes of printable ASCII, at most 32 list members), else dropped.
    static func validTraceState(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= 512,
              value.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else { return nil }
        let members = value.split(separator: ",", omittingEmptySubsequences: true)
        guard members.count <= 32, members.allSatisfy({ $0.contains("=") }) else { return nil }
        return value
    }
}

private let dash = UInt8(ascii: "-")

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    default: return nil  // upper case is invalid in traceparent
    }
}

private func hexByte(_ b: [UInt8], _ at: Int) -> UInt8? {
    guard let hi = hexValue(b[at]), let lo = hexValue(b[at + 1]) else { return nil }
    return hi << 4 | lo
}

private func hexUInt64(_ b: [UInt8], _ at: Int) -> UInt64? {
    var v: UInt64 = 0
    for i in 0..<16 {
        guard let d = hexValue(b[at + i]) else { return nil }
        v = v << 4 | UInt64(d)
    }
    return v
}

private func hex16(_ v: UInt64) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8](repeating: 0, count: 16)
    for i in 0..<16 { out[15 - i] = digits[Int((v >> (UInt64(i) * 4)) & 0xF)] }
    return String(decoding: out, as: UTF8.self)
}

private func bigEndianBytes(_ v: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - UInt64($0) * 8)) }
}
