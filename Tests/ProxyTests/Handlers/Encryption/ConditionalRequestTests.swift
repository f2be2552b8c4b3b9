import Testing
@testable import Proxy
@testable import Shared

@Suite struct ConditionalRequestTests {
    static let lastModified = "Wed, 21 Oct 2015 07:28:00 GMT"

    /// A backend read of the ciphertext carries none of the client's conditions nor its `Range` (any case), keeps
    /// everything else in order (`If-Range` and other `If-`-like names too), and the covering range when given, last.
    @Test(arguments: [nil, "bytes=0-4111"] as [String?])
    func readHeadersDropConditionsAndTheClientsRange(range: String?) {
        let client = HTTPFields([
            ("Host", "h"), ("if-match", "\"a\""), ("Range", "bytes=0-1"), ("IF-NONE-MATCH", "\"b\""), ("x-amz-date", "d"),
            ("If-Modified-Since", "m"), ("RANGE", "bytes=5-"), ("If-Unmodified-Since", "u"), ("If-Range", "\"c\""),
            ("If", "1"), ("i", "2"), ("r", "3"), ("Ranges", "4"), ("If-Matching", "5"), ("Authorization", "a"),
        ].map { (name: $0.0, value: $0.1) })
        let out = EncryptedObjectHandler.readHeaders(client, range: range)
        let kept = ["Host", "x-amz-date", "If-Range", "If", "i", "r", "Ranges", "If-Matching", "Authorization"]
        #expect(out.map(\.name) == kept + (range == nil ? [] : ["Range"]))
        #expect(out["range"] == range)
        #expect(!out.contains { name in ConditionalRequest.headerNames.contains { name.name.caseInsensitiveEquals($0) } })
        #expect(EncryptedObjectHandler.metadataRequestHeaders(client).map(\.name) == kept)
        #expect(EncryptedObjectHandler.readHeaders(HTTPFields(), range: nil).map(\.name).isEmpty)
    }

    @Test(arguments: [
        ([], false), (["Host", "Authorization"], false), (["if-match"], true), (["Host", "IF-NONE-MATCH"], true),
        (["If-Range"], true), (["If"], false), (["i"], false), (["Iff-Match"], false),
    ] as [([String], Bool)])
    func conditionalHeadersAreFoundInAnyCase(names: [String], expected: Bool) {
        #expect(ConditionalRequest.hasConditional(HTTPFields(names.map { (name: $0, value: "v") })) == expected)
    }

    /// RFC 9110 §13.2.2's order: If-Match before If-Unmodified-Since, If-None-Match before If-Modified-Since.
    @Test(arguments: [
        ([String: String](), ConditionalOutcome.proceed),
        (["If-Match": "\"a\""], .proceed),
        (["If-Match": "W/\"b\", \"x\""], .proceed),
        (["If-Match": "\"x\""], .preconditionFailed),
        (["If-Match": "*"], .proceed),
        (["If-None-Match": "\"a\""], .notModified),
        (["If-None-Match": "\"x\""], .proceed),
        (["If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"], .notModified),
        (["If-Modified-Since": "Wed, 21 Oct 2015 07:27:59 GMT"], .proceed),
        (["If-Unmodified-Since": "Wed, 21 Oct 2015 07:27:59 GMT"], .preconditionFailed),
        (["If-Unmodified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"], .proceed),
        // If-Match decides; the date condition is not looked at.
        (["If-Match": "\"a\"", "If-Unmodified-Since": "Wed, 21 Oct 2015 07:27:59 GMT"], .proceed),
        (["If-None-Match": "\"x\"", "If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"], .proceed),
        (["If-Modified-Since": "not a date"], .proceed),
    ])
    func outcomes(headers: [String: String], expected: ConditionalOutcome) {
        var fields = HTTPFields()
        for (name, value) in headers { fields.add(name, value) }
        #expect(ConditionalRequest.evaluate(headers: fields, etags: ["\"a\"", "\"b\""], lastModified: Self.lastModified) == expected)
    }

    /// The ETags (built per request from the metadata) are computed only when an ETag condition needs them.
    @Test(arguments: [
        ([String: String](), false),
        (["If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"], false),
        (["If-Unmodified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"], false),
        (["If-Match": "\"a\""], true),
        (["If-None-Match": "\"a\""], true),
    ])
    func etagsAreComputedOnlyForETagConditions(headers: [String: String], computed: Bool) {
        var fields = HTTPFields()
        for (name, value) in headers { fields.add(name, value) }
        var calls = 0
        func etags() -> [String] {
            calls += 1
            return ["\"a\""]
        }
        _ = ConditionalRequest.evaluate(headers: fields, etags: etags(), lastModified: Self.lastModified)
        #expect(calls == (computed ? 1 : 0))
        calls = 0
        var copyFields = HTTPFields()
        for (name, value) in headers { copyFields.add("x-amz-copy-source-" + name.lowercased(), value) }
        _ = ConditionalRequest.evaluateCopySource(headers: copyFields, etags: etags(), lastModified: Self.lastModified)
        #expect(calls == (computed ? 1 : 0))
    }

    /// The one-pass check for a condition header: names match in any case, other headers (even ones that
    /// contain a condition's name) are no condition, next to other headers in any order.
    @Test(arguments: [
        (["if-none-match": "\"a\""], ConditionalOutcome.notModified),
        (["IF-NONE-MATCH": "\"a\""], .notModified),
        (["If-Match": "\"x\"", "Host": "h", "Authorization": "AWS4-HMAC-SHA256 ..."], .preconditionFailed),
        (["Host": "h", "x-amz-date": "20251021T072800Z", "iF-mOdIfIeD-sInCe": "Wed, 21 Oct 2015 07:28:00 GMT"], .notModified),
        (["Host": "h", "x-if-match": "\"x\"", "Iffy": "\"x\"", "Range": "bytes=0-1"], .proceed),
        (["x-amz-copy-source-if-match": "\"x\""], .proceed),
    ])
    func conditionHeaderNames(headers: [String: String], expected: ConditionalOutcome) {
        var fields = HTTPFields()
        for (name, value) in headers { fields.add(name, value) }
        #expect(ConditionalRequest.evaluate(headers: fields, etags: ["\"a\""], lastModified: Self.lastModified) == expected)
    }

    /// CopyObject's conditions are its `x-amz-copy-source-if-*` headers, in any case; a plain `If-*` header is none of them.
    @Test(arguments: [
        (["X-Amz-Copy-Source-If-Match": "\"x\""], ConditionalOutcome.preconditionFailed),
        (["x-amz-copy-source-if-none-match": "\"a\""], .preconditionFailed),
        (["If-Match": "\"x\"", "x-amz-copy-source": "/b/k"], .proceed),
        ([String: String](), .proceed),
    ])
    func copySourceConditionHeaderNames(headers: [String: String], expected: ConditionalOutcome) {
        var fields = HTTPFields()
        for (name, value) in headers { fields.add(name, value) }
        #expect(ConditionalRequest.evaluateCopySource(headers: fields, etags: ["\"a\""], lastModified: Self.lastModified) == expected)
    }
}
