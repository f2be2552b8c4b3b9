import Testing
@testable import Shared

@Suite struct RequestIDTests {
    /// The text keeps the format the header, logs and error documents always had: 16 uppercase hex digits,
    /// most significant first.
    @Test(arguments: [
        (UInt64(0), "0000000000000000"), (0xABC, "0000000000000ABC"), (0x0123_4567_89AB_CDEF, "0123456789ABCDEF"),
        (0xFEDC_BA98_7654_3210, "FEDCBA9876543210"), (UInt64.max, "FFFFFFFFFFFFFFFF"),
    ])
    func rendersSixteenUppercaseHexDigits(value: UInt64, text: String) {
        let id = RequestID(value)
        #expect(id.text == text)
        #expect(id.description == text)
        #expect("\(id)" == text)
        #expect(id.withUTF8 { Array($0) } == Array(text.utf8))
    }

    @Test func theGeneratorPutsThePrefixAboveTheCounter() {
        #expect(RequestIDGenerator.make(prefix: 0xDEAD_BEEF, count: 1).text == "DEADBEEF00000001")
        #expect(RequestIDGenerator.make(prefix: 0, count: .max).text == "00000000FFFFFFFF")
    }

    @Test func generatedIDsAreUniqueUppercaseHex() {
        let ids = (0..<1000).map { _ in RequestIDGenerator.next() }
        #expect(Set(ids).count == 1000)
        #expect(Set(ids.map(\.text)).count == 1000)
        #expect(ids.allSatisfy { $0.text.utf8.count == 16 && $0.text.utf8.allSatisfy { (48...57).contains($0) || (65...70).contains($0) } })
    }
}
