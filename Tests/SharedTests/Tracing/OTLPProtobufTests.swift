@testable import Shared
import Testing

struct OTLPProtobufTests {
    @Test func keyValueMatchesProtobufWireFormat() {
        // KeyValue{key:"a", value:AnyValue{string_value:"b"}}: field 1 "a", field 2 { field 1 "b" }.
        #expect(OTLPProtobuf.keyValue("a", .string("b")) == [0x0A, 0x01, 0x61, 0x12, 0x03, 0x0A, 0x01, 0x62])
        // int_value is a varint (field 3); -1 is ten bytes of two's complement.
        #expect(OTLPProtobuf.keyValue("n", .int(300)) == [0x0A, 0x01, 0x6E, 0x12, 0x03, 0x18, 0xAC, 0x02])
        #expect(OTLPProtobuf.keyValue("n", .int(-1)).count == 3 + 2 + 1 + 10)
        // A oneof member is written even when it holds the default value.
        #expect(OTLPProtobuf.keyValue("f", .bool(false)) == [0x0A, 0x01, 0x66, 0x12, 0x02, 0x10, 0x00])
        #expect(OTLPProtobuf.keyValue("d", .double(1.0)) ==
                [0x0A, 0x01, 0x64, 0x12, 0x09, 0x21, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
    }

    @Test func spanCarriesIdsTimesKindStatusAndFlags() {
        let span = SpanData(name: "GetObject", kind: .server,
                            context: SpanContext(traceID: TraceID(high: 1, low: 2), spanID: SpanID(3), sampled: true),
                            parentSpanID: SpanID(4), parentIsRemote: true, startNanos: 5, endNanos: 6,
                            attributes: [], status: .error("boom"))
        let bytes = OTLPProtobuf.encode(span)
        let traceID: [UInt8] = [0x0A, 16] + [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]
        #expect(Array(bytes.prefix(18)) == traceID)
        #expect(Array(bytes[18..<28]) == [0x12, 8, 0, 0, 0, 0, 0, 0, 0, 3])
        #expect(Array(bytes[28..<38]) == [0x22, 8, 0, 0, 0, 0, 0, 0, 0, 4])  // parent_span_id
        #expect(Array(bytes[38..<49]) == [0x2A, 9] + Array("GetObject".utf8))
        #expect(Array(bytes[49..<51]) == [0x30, 2])  // kind SERVER
        #expect(Array(bytes[51..<60]) == [0x39, 5, 0, 0, 0, 0, 0, 0, 0])  // start_time_unix_nano, fixed64
        #expect(Array(bytes[60..<69]) == [0x41, 6, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(bytes[69..<79]) == [0x7A, 8, 0x12, 4] + Array("boom".utf8) + [0x18, 2])  // status ERROR
        #expect(Array(bytes[79...]) == [0x85, 0x01, 0x01, 0x03, 0, 0])  // flags: sampled, parent known remote
    }
}
