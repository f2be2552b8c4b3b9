import Testing
@testable import Proxy
@testable import Shared

// Keeps the ProxyTests target non-empty after HTTPFieldsTests moved to SharedTests.
@Suite struct ProxySmokeTests {
    @Test func sharedIsLinked() {
        let f: HTTPFields = ["A": "1"]
        #expect(f["a"] == "1")
    }
}
