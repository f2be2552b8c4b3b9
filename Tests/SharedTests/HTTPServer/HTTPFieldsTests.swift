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
}
