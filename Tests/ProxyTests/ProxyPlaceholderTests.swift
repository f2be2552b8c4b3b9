import Testing
@testable import Proxy
@testable import Shared

// Keeps the ProxyTests target non-empty after HTTPFieldsTests moved to SharedTests.
@Suite struct ProxySmokeTests {
    @Test func sharedIsLinked() {
        #expect(HTTPFields(["A": "1"])["a"] == "1")
    }
}
