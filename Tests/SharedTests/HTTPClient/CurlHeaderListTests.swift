import Testing
@testable import Shared

@Suite struct CurlHeaderListTests {
    /// The line libcurl was given per header before (`curl_slist_append` of `name: value`, or `name;` for an empty
    /// value): the definition the reused list must keep.
    static func line(_ name: String, _ value: String) -> String { value.isEmpty ? "\(name);" : "\(name): \(value)" }

    static let headers: [[(String, String)]] = [
        [],
        [("Host", "127.0.0.1:9000")],
        [("x-amz-date", "20261129T090000Z"), ("X-Empty", ""), ("Authorization", "AWS4-HMAC-SHA256 Credential=a/b")],
        [("X-Long", String(repeating: "v", count: 3000)), ("a", "b"), ("X-Unicode", "grüße ✓")],
        (0..<40).map { ("X-Header-\($0)", String(repeating: "x", count: $0 * 7)) },
    ]

    @Test func linesAreTheAppendedDefinitionAcrossReuse() {
        let list = CurlHeaderList()
        // One list reused for requests in turn, long and short, as a handle reuses it.
        for round in 0..<3 {
            for headers in Self.headers + Self.headers.reversed() {
                list.reset()
                for (name, value) in headers { list.append(name: name, value: value) }
                list.append(line: "Accept:")
                #expect(list.lines == headers.map { Self.line($0.0, $0.1) } + ["Accept:"], "round \(round)")
            }
        }
    }

    @Test func anEmptyListIsNil() {
        let list = CurlHeaderList()
        #expect(list.list() == nil)
        list.append(line: "Expect:")
        list.reset()
        #expect(list.list() == nil)
    }
}
