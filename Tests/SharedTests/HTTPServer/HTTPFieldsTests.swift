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
    }
}
