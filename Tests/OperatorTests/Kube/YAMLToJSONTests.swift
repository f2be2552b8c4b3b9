import Testing
@testable import Operator

@Suite struct YAMLToJSONTests {
    @Test func scalarsResolvePerCoreSchema() throws {
        let v = try YAMLToJSON.parse("""
            a: 1
            b: -12
            c: 1.5
            d: true
            e: False
            f: ~
            g: null
            h: "1"
            i: '2'
            j: hello world
            k: 0x1F
            l: 1e3
            m: !!str 5
            n: "true"
            o:
            p: 9223372036854775807
            q: 0o17
            r: 1.2.3
            """)
        #expect(v["a"] == .integer(1))
        #expect(v["b"] == .integer(-12))
        #expect(v["c"] == .number(1.5))
        #expect(v["d"] == .bool(true))
        #expect(v["e"] == .bool(false))
        #expect(v["f"] == .null)
        #expect(v["g"] == .null)
        #expect(v["h"] == .string("1"))
        #expect(v["i"] == .string("2"))
        #expect(v["j"] == .string("hello world"))
        #expect(v["k"] == .integer(31))
        #expect(v["l"] == .integer(1000))
        #expect(v["m"] == .string("5"))
        #expect(v["n"] == .string("true"))
        #expect(v["o"] == .null)
        #expect(v["p"] == .integer(Int64.max))
        #expect(v["q"] == .integer(15))
        #expect(v["r"] == .string("1.2.3"))
    }

    @Test func blockAndFlowCollectionsAndMultilineStrings() throws {
        let v = try YAMLToJSON.parse("""
            list:
            - one
            - {x: 1, y: [a, b]}
            folded: >
              a
              b
            literal: |
              line1
              line2
            "quoted key": v
            """)
        #expect(v["list"] == ["one", ["x": 1, "y": ["a", "b"]]])
        #expect(v["folded"] == "a b\n")
        #expect(v["literal"] == "line1\nline2\n")
        #expect(v["quoted key"] == "v")
    }

    @Test func anchorsAliasesAndMergeKeys() throws {
        let v = try YAMLToJSON.parse("""
            base: &b
              server: https://x
              port: 1
            copy: *b
            merged:
              <<: *b
              port: 2
            """)
        #expect(v["copy"] == v["base"])
        #expect(v["merged"] == ["server": "https://x", "port": 2])
    }

    @Test(arguments: [
        "a: 1\na: 2\n",              // duplicate key
        "a: *nope\n",               // unknown alias
        "a: [1, 2\n",               // unterminated flow
        "? [a]\n: 1\n",             // non-scalar key
        "a: !!int hello\n",         // tag mismatch
        "a: !custom x\n",           // unknown tag
        "--- 1\n--- 2\n",           // two documents for parse()
        "\t- tab",                  // tabs for indentation
    ])
    func invalidInputsAreErrors(_ text: String) {
        #expect(throws: YAMLToJSON.Error.self) { try YAMLToJSON.parse(text) }
    }

    @Test func billionLaughsIsBounded() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<12 {
            text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        #expect(throws: YAMLToJSON.Error.self) { try YAMLToJSON.parse(text) }
    }

    @Test func depthIsBounded() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: YAMLToJSON.Error.self) { try YAMLToJSON.parse(deep) }
        var limits = YAMLToJSON.Limits()
        limits.maxDepth = 300
        #expect((try? YAMLToJSON.parse(deep, limits: limits)) != nil)
    }

    @Test func emptyInputIsNull() throws {
        #expect(try YAMLToJSON.parse("") == .null)
        #expect(try YAMLToJSON.parse("# only a comment\n") == .null)
    }

    /// Seeded mutation fuzz over a kubeconfig-like document: never crashes; successful parses re-encode to JSON.
    @Test func randomizedMutationsNeverCrash() {
        var rng = SplitMix64(seed: 0x5EED_0002)
        let base = Array(KubeConfigLoaderTests.sample.utf8)
        let alphabet: [UInt8] = Array(":-[]{}&*!|>'\"#? \n\t,%@`<=".utf8) + [0, 0xFF, 0xE2, 0x80]
        var parsed = 0
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[i] = alphabet.randomElement(using: &rng)!
                case 1: bytes.insert(alphabet.randomElement(using: &rng)!, at: i)
                case 2: bytes.remove(at: i)
                default:
                    // Duplicate a random slice (creates repeated keys, anchors, nesting).
                    let j = min(bytes.count, i + Int.random(in: 1...40, using: &rng))
                    bytes.insert(contentsOf: bytes[i..<j], at: i)
                }
                if bytes.isEmpty { bytes = [UInt8(ascii: "a")] }
            }
            if let v = try? YAMLToJSON.parse(bytes: bytes) {
                parsed += 1
                #expect(!v.encoded().isEmpty)
            }
        }
        // The mutations are mild enough that some documents survive: the success path is exercised too.
        #expect(parsed > 0)
    }
}
