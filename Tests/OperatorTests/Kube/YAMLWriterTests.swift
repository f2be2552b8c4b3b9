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

    /// Long prose (CRD descriptions) is folded under the line limit and reads back unchanged; strings a folded
    /// scalar would alter (repeated, leading or trailing spaces, line breaks) stay on one quoted line.
    @Test func longStringsAreFoldedAndReadBackUnchanged() throws {
        let prose = (1...60).map { "word\($0)" }.joined(separator: " ")
        let tricky = "- starts like a list: then a colon, a #hash, \"quotes\", 'single', {braces} [brackets] & more " + prose
        let longWord = String(repeating: "x", count: 200) + " tail " + prose
        let value: JSONValue = [
            "description": .string(prose), "tricky": .string(tricky), "longWord": .string(longWord),
            "doubleSpace": .string(prose.replacingOccurrences(of: "word7 ", with: "word7  ")),
            "trailing": .string(prose + " "), "newline": .string(prose + "\nmore"),
            "deep": ["deeper": ["deepest": ["list": [.string(prose), .string(tricky)]]]],
        ]
        let text = YAMLWriter.document(value)
        #expect(try YAMLToJSON.parse(text) == value)
        #expect(text.contains("description: >-\n  word1 word2"))
        #expect(text.contains("doubleSpace: word1 "))  // stays one (long) line
        let unfoldable = ["doubleSpace:", "trailing:", "newline:", "xxxxxxxx"]
        for line in text.split(separator: "\n") where !unfoldable.contains(where: { line.contains($0) }) {
            #expect(line.count <= YAMLWriter.lineWidth, "\(line)")
        }
    }

    @Test func outputIsDeterministic() {
        let a: JSONValue = ["b": 1, "a": 2, "c": ["z": 1, "y": 2]]
        let b: JSONValue = ["c": ["y": 2, "z": 1], "a": 2, "b": 1]
        #expect(YAMLWriter.document(a) == YAMLWriter.document(b))
    }
}
