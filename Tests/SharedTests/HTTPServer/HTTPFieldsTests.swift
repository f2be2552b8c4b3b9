import Testing
@testable import Shared

@Suite struct HTTPFieldsTests {
    @Test func lookupIsCaseInsensitiveAndOrdered() {
        var f: HTTPFields = ["Content-Type": "text/plain", "x-amz-meta-a": "1"]
        f.add("X-Amz-Meta-A", "2")
        #expect(f["content-type"] == "text/plain")
        #expect(f.values("X-AMZ-META-A") == ["1", "2"])
        f.set("x-amz-meta-a", "3")
        #expect(f.values("x-amz-meta-a") == ["3"])
        #expect(f["missing"] == nil)
    }

    @Test func headSplitsTarget() {
        let h = HTTPRequestHead(method: "GET", target: "/b/k%20x?list-type=2&prefix=a", headers: [:])
        #expect(h.rawPath == "/b/k%20x")
        #expect(h.rawQuery == "list-type=2&prefix=a")
        #expect(HTTPRequestHead(method: "GET", target: "/b", headers: [:]).rawQuery == nil)
        let odd = HTTPRequestHead(method: "GET", target: "/b/é?", headers: [:])
        #expect(odd.rawPath == "/b/é")
        #expect(odd.rawQuery == "")
        #expect(HTTPRequestHead(method: "GET", target: "/b?x=?é", headers: [:]).rawQuery == "x=?é")
    }

    @Test(arguments: [
        ("content-length", "Content-Length", true),
        ("X-AMZ-CONTENT-SHA256", "x-amz-content-sha256", true),
        ("x-amz-meta-a-rather-long-header-name", "X-Amz-Meta-A-Rather-Long-Header-Name", true),
        ("", "", true),
        ("etag", "etags", false),
        ("etag", "etaf", false),
        ("x-amz-meta-a-rather-long-header-name", "x-amz-meta-a-rather-long-header-namf", false),
        // ASCII only: no Unicode case folding, and '@'/'[' (next to 'A'/'Z') are not letters.
        ("é", "É", false),
        ("@", "`", false),
        ("[", "{", false),
    ])
    func caseInsensitiveEqualsIsASCIIOnly(a: String, b: String, equal: Bool) {
        #expect(a.caseInsensitiveEquals(b) == equal)
        #expect(b.caseInsensitiveEquals(a) == equal)
        // A String made from a Substring compares like any other.
        #expect(String(("." + a).dropFirst()).caseInsensitiveEquals(b) == equal)
    }

    /// ASCII lower-casing: header names for the backend's canonical request and the signed payload hash the
    /// pass-through path forwards (lower-case hex, whatever case the client sent); no Unicode case mapping.
    @Test(arguments: [
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85A", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85a"),
        ("X-Amz-Meta-Colour", "x-amz-meta-colour"),
        ("Host", "host"),
        ("", ""),
        ("@[`{", "@[`{"),
        ("É-Ü-A", "É-Ü-a"),
    ])
    func asciiLowercasedMapsOnlyASCIILetters(text: String, lower: String) {
        #expect(text.asciiLowercased() == lower)
        #expect(String(("." + text).dropFirst()).asciiLowercased() == lower)
    }

    /// The word forms agree with the byte rule (only A–Z fold) for every byte value in every lane of a word, next to
    /// seeded neighbours, and the whole-buffer helpers agree with byte loops on seeded strings of every length 0–40
    /// built from letters, their neighbours ('@', '[', '`', '{') and non-ASCII bytes.
    @Test func asciiCaseWordsAgreeWithTheByteRule() {
        func lower(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b + 32 : b }
        func bytes(_ w: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: w >> (8 * UInt64($0))) } }
        var state: UInt64 = 0x5eed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for lane in 0..<8 {
            for value in 0...255 {
                let shift = UInt64(8 * lane)
                let word = next() & ~(0xff << shift) | UInt64(value) << shift
                #expect(bytes(ASCIICase.lowered(word)) == bytes(word).map(lower), "\(word)")
                #expect((ASCIICase.upperMask(word) != 0) == bytes(word).contains { $0 >= 65 && $0 <= 90 })
            }
        }
        let alphabet: [UInt8] = Array(0x40...0x5b) + Array(0x60...0x7b) + [0x2d, 0x30, 0x39, 0x00, 0x7f, 0x80, 0xc3, 0xa9, 0xff]
        for _ in 0..<4000 {
            let n = Int(next() % 41)
            let a = (0..<n).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }
            // b: a with some bytes case-flipped (letters only) or replaced.
            let b = a.map { byte -> UInt8 in
                switch next() % 8 {
                case 0: return alphabet[Int(next() % UInt64(alphabet.count))]
                case 1, 2, 3: return byte ^ 0x20
                default: return byte
                }
            }
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    #expect(ASCIICase.containsUpper(pa) == a.contains { $0 >= 65 && $0 <= 90 })
                    guard n > 0 else { return }
                    #expect(ASCIICase.equalFolded(pa.baseAddress!, pb.baseAddress!, count: n) == (a.map(lower) == b.map(lower)), "\(a) \(b)")
                }
            }
            let sa = String(decoding: a, as: UTF8.self), sb = String(decoding: b, as: UTF8.self)
            if sa.utf8.elementsEqual(a), sb.utf8.elementsEqual(b) {
                #expect(sa.caseInsensitiveEquals(sb) == (a.map(lower) == b.map(lower)))
                #expect(Array(sa.asciiLowercased().utf8) == a.map(lower))
            }
        }
    }

    @Test(arguments: [
        ("X-Amz-Checksum-CRC32", "x-amz-checksum-", true),
        ("x-amz-checksum-", "X-AMZ-CHECKSUM-", true),
        ("anything", "", true),
        ("x-amz-checksum", "x-amz-checksum-", false),
        ("x-amz-checksun-crc32", "x-amz-checksum-", false),
        ("É-x", "é", false),
        ("@bc", "`", false),
    ])
    func caseInsensitiveHasPrefixIsASCIIOnly(s: String, prefix: String, expected: Bool) {
        #expect(s.caseInsensitiveHasPrefix(prefix) == expected)
        #expect(String(("." + s).dropFirst()).caseInsensitiveHasPrefix(prefix) == expected)
        // Agrees with lowercasing both (for ASCII input).
        if s.utf8.allSatisfy({ $0 < 128 }) && prefix.utf8.allSatisfy({ $0 < 128 }) {
            #expect(s.lowercased().hasPrefix(prefix.lowercased()) == expected)
        }
    }

    /// The lookups (length first, fields read in place) against the plain definition: a filter with
    /// ASCII lower-casing. Names of equal length, duplicates, case variants and the empty name.
    @Test func lookupsAgreeWithAFilterOverLowercasedNames() {
        let names = ["Host", "host", "HOST", "hosT", "date", "Date", "x-amz-date", "X-Amz-Date", "user-agent",
                     "connection", "Authorization", "x-amz-content-sha256", "X-AMZ-CONTENT-SHA256", "", "hosu", "é", "É"]
        let probes = names + ["missing", "x-amz-datf", "hos", "hostt", "authorizatioN"]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        func lower(_ s: String) -> String { String(decoding: s.utf8.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }, as: UTF8.self) }
        for round in 0..<300 {
            var fields = HTTPFields()
            var reference: [(name: String, value: String)] = []
            for i in 0..<next(12) {
                let name = names[next(names.count)]
                fields.add(name, "v\(round).\(i)")
                reference.append((name, "v\(round).\(i)"))
            }
            for probe in probes {
                let matching = reference.filter { lower($0.name) == lower(probe) }.map(\.value)
                #expect(fields[probe] == matching.first, "\(probe) in \(reference)")
                #expect(fields.values(probe) == matching, "\(probe) in \(reference)")
                #expect(fields.contains(probe) == !matching.isEmpty)
                var removed = fields
                removed.remove(probe)
                #expect(removed.map(\.value) == reference.filter { lower($0.name) != lower(probe) }.map(\.value))
                var replaced = fields
                replaced.set(probe, "new")
                #expect(replaced.values(probe) == ["new"])
                #expect(replaced.count == reference.count - matching.count + 1)
            }
        }
    }
}
