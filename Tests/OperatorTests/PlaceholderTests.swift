import Testing
@testable import Operator
@testable import Shared

@Suite struct OperatorSmokeTests {
    @Test func sharedIsLinked() {
        #expect(Encoding.hex([0xab]) == "ab")
    }
}
