/// The OTLP/HTTP trace request body (`opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`) in
/// protobuf's binary encoding. Only what the gateway sends is written: one resource, one scope, spans with
/// attributes and status. Field numbers are those of opentelemetry-proto's trace.proto, common.proto and
/// resource.proto. Pure: bytes in memory, no I/O.
enum OTLPProtobuf {
    /// The request for `spans` from one process (`resource`) and one instrumentation scope.
    static func exportTraceServiceRequest(resource: [(String, AttributeValue)], scopeName: String,
                                          scopeVersion: String, spans: [SpanData]) -> [UInt8] {
        var resourceMessage = ProtobufWriter()
        for (key, value) in resource { resourceMessage.message(1, keyValue(key, value)) }

        var scope = ProtobufWriter()
        scope.string(1, scopeName)
        scope.string(2, scopeVersion)

        var scopeSpans = ProtobufWriter()
        scopeSpans.message(1, scope.bytes)
        for span in spans { scopeSpans.message(2, encode(span)) }

        var resourceSpans = ProtobufWriter()
        resourceSpans.message(1, resourceMessage.bytes)
        resourceSpans.message(2, scopeSpans.bytes)

        var request = ProtobufWriter()
        request.message(1, resourceSpans.bytes)
        return request.bytes
    }

    static func encode(_ span: SpanData) -> [UInt8] {
        var w = ProtobufWriter()
        w.bytesField(1, span.context.traceID.bytes)
        w.bytesField(2, span.context.spanID.bytes)
        if let state = span.context.traceState { w.string(3, state) }
        if let parent = span.parentSpanID { w.bytesField(4, parent.bytes) }
        w.string(5, span.name)
        w.varintField(6, UInt64(span.kind.rawValue))
        w.fixed64(7, span.startNanos)
        w.fixed64(8, span.endNanos)
        for (key, value) in span.attributes { w.message(9, keyValue(key, value)) }
        var status = ProtobufWriter()
        switch span.status {
        case .unset: break
        case .ok: status.varintField(3, 1)
        case .error(let message):
            status.string(2, message)
            status.varintField(3, 2)
        }
        w.message(15, status.bytes)
        // Span.flags: the W3C trace flags in the low byte; bit 8: whether the parent is remote is known, bit 9: it is.
        var flags: UInt32 = span.context.sampled ? 1 : 0
        if span.parentSpanID != nil { flags |= 0x100 | (span.parentIsRemote ? 0x200 : 0) }
        w.fixed32(16, flags)
        return w.bytes
    }

    static func keyValue(_ key: String, _ value: AttributeValue) -> [UInt8] {
        var any = ProtobufWriter()
        switch value {
        case .string(let s): any.string(1, s, always: true)
        case .bool(let b): any.varintField(2, b ? 1 : 0, always: true)
        case .int(let i): any.varintField(3, UInt64(bitPattern: i), always: true)
        case .double(let d): any.fixed64(4, d.bitPattern, always: true)
        }
        var kv = ProtobufWriter()
        kv.string(1, key)
        kv.message(2, any.bytes)
        return kv.bytes
    }
}

/// Appends protobuf fields. Default values (0, empty) are skipped as proto3 does, except for the members of a
/// `oneof`, where presence matters (`always`).
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func tag(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    mutating func varintField(_ field: Int, _ value: UInt64, always: Bool = false) {
        guard value != 0 || always else { return }
        tag(field, 0)
        varint(value)
    }

    mutating func fixed64(_ field: Int, _ value: UInt64, always: Bool = false) {
        guard value != 0 || always else { return }
        tag(field, 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value >> (UInt64(i) * 8))) }
    }

    mutating func fixed32(_ field: Int, _ value: UInt32) {
        guard value != 0 else { return }
        tag(field, 5)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value >> (UInt32(i) * 8))) }
    }

    mutating func bytesField(_ field: Int, _ value: [UInt8], always: Bool = false) {
        guard !value.isEmpty || always else { return }
        tag(field, 2)
        varint(UInt64(value.count))
        bytes += value
    }

    mutating func string(_ field: Int, _ value: String, always: Bool = false) {
        bytesField(field, Array(value.utf8), always: always)
    }

    /// An embedded message; written even when empty (a present-but-empty message is meaningful).
    mutating func message(_ field: Int, _ encoded: [UInt8]) { bytesField(field, encoded, always: true) }
}
