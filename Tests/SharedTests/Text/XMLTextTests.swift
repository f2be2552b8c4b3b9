import FoundationXML
import Testing
@testable import Shared

@Suite struct XMLTextTests {
    @Test func escapesMarkupAndReplacesForbiddenControls() throws {
        let escaped = XMLText.escape("a<b>&\"c'\u{01}\tž")
        #expect(escaped == "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}\tž")
        // The result parses as element text and round-trips the allowed characters.
        let doc = "<x>\(escaped)</x>"
        let parsed = try XMLDocument(xmlString: doc).rootElement()?.stringValue
        #expect(parsed == "a<b>&\"c'\u{FFFD}\tž")
    }
}
