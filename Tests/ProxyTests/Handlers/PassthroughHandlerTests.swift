import Testing
@testable import Proxy

@Suite struct PassthroughHandlerTests {
    /// The signed payload hash goes to the backend in lower-case hex, whatever case the client sent; a
    /// lower-case one is passed on as it is.
    @Test(arguments: [
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85A", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85a"),
        ("0000000000000000000000000000000000000000000000000000000000000000", "0000000000000000000000000000000000000000000000000000000000000000"),
    ])
    func payloadHashIsForwardedInLowerCase(sent: String, forwarded: String) {
        #expect(PassthroughHandler.lowerCaseHex(sent) == forwarded)
        #expect(PassthroughHandler.lowerCaseHex(sent) == sent.lowercased())
    }
}
