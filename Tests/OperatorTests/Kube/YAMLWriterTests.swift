import Testing
@testable import Operator

@Suite struct YAMLWriterTests {
    @Test func roundTripsThroughTheYAMLReader() throws {
        let value: JSONValue = [
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "x"],
            "data": [
                "plain": "hello", "colon": "a: b", "hash": "a #b", "yes": "yes", "null": "null", "number": "123",
                "octal": "0755", "float": "1.5", "dash": "-x", "empty": "", "space": " x ", "unicode": "é",
                "newline": "a\nb", "quote": "\"q\"", "star": "*a", "percent": "50%", "duration": "5m",
            ],
            "list": [1, "two", ["three": 3], [], [:], [true, false], .null],
            "nested": ["deep": ["deeper": [["a": 1, "b": ["c"]]]]],
        ]
        let text = YAMLWriter.document(value)
        #expect(try YAMLToJSON.parse(text) == value)
        #expect(text.hasPrefix("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"))
        let two = YAMLWriter.documents([value, ["a": 1]])
        #expect(try YAMLToJSON.parseDocuments(Array(two.utf8)) == [value, ["a": 1]])
    }

    @Test func outputIsDeterministic() {
        let a: JSONValue = ["b": 1, "a": 2, "c": ["z": 1, "y": 2]]
        let b: JSONValue = ["c": ["y": 2, "z": 1], "a": 2, "b": 1]
        #expect(YAMLWriter.document(a) == YAMLWriter.document(b))
    }
}
