import Testing
@testable import Operator

@Suite struct JSONValueTests {
    @Test func integersStayExactAndEncodingIsSorted() throws {
        let v = try JSONValue.parse(#"{"b":9007199254740993,"a":[1.5,true,null,"s"],"c":{"z":1,"y":-2}}"#)
        #expect(v["b"] == .integer(9_007_199_254_740_993))
        #expect(v["a"]?[0] == .number(1.5))
        #expect(v["a"]?[1] == .bool(true))
        #expect(v["a"]?[2] == .null)
        #expect(v.jsonString == #"{"a":[1.5,true,null,"s"],"b":9007199254740993,"c":{"y":-2,"z":1}}"#)
        #expect(try JSONValue.parse(v.encoded()) == v)
    }

    @Test func integerEqualsIntegralNumber() {
        #expect(JSONValue.integer(3) == .number(3.0))
        #expect(JSONValue.integer(3) != .number(3.5))
        #expect(JSONValue.bool(true) != .integer(1))
    }

    @Test func invalidJSONIsADecodingError() {
        #expect(throws: KubeError.self) { try JSONValue.parse("{") }
    }
}
