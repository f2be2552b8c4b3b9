/// An object tag set as S3 reads it from a `Tagging` document (the `tagging` field of a POST Object form):
///
///     <Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag>…</TagSet></Tagging>
///
/// Read with the strict, bounded `XMLTree` and checked as S3 checks object tags: at most 10 tags, unique keys of
/// 1–128 characters, values of 0–256 characters, letters, digits, white space and `+ - = . _ : / @` only, no
/// `aws:` keys. A document that is not that shape is `MalformedXML`; a tag S3 would refuse is `InvalidTag`.
struct TaggingDocument: Equatable {
    struct Tag: Equatable {
        var key: String
        var value: String
    }

    var tags: [Tag]

    static let maxTags = 10
    static let maxKeyLength = 128
    static let maxValueLength = 256

    static func parse(_ bytes: [UInt8]) throws(S3Error) -> TaggingDocument {
        let tree = try XMLTree.clientDocument(bytes, root: "Tagging")
        guard tree.root.children.count == 1, let set = tree.root.child("TagSet") else {
            throw S3Error.malformedXML("Tagging must hold exactly one TagSet")
        }
        var tags: [Tag] = []
        for element in set.children {
            guard element.name == "Tag" else { throw S3Error.malformedXML("unexpected element \(element.name.prefix(64)) in TagSet") }
            var key: String?
            var value: String?
            for field in element.children {
                guard field.children.isEmpty else { throw S3Error.malformedXML("\(field.name.prefix(64)) holds elements") }
                switch field.name {
                case "Key" where key == nil: key = field.text
                case "Value" where value == nil: value = field.text
                default: throw S3Error.malformedXML("unexpected or repeated element \(field.name.prefix(64)) in a Tag")
                }
            }
            guard let key, let value else { throw S3Error.malformedXML("a Tag lacks its Key or Value") }
            tags.append(Tag(key: key, value: value))
        }
        let document = TaggingDocument(tags: tags)
        try document.validate()
        return document
    }

    /// S3's limits on object tags (`InvalidTag`, with S3's messages).
    func validate() throws(S3Error) {
        guard tags.count <= Self.maxTags else { throw S3Error.invalidTag("Object tags cannot be greater than \(Self.maxTags)") }
        var seen = Set<String>()
        for tag in tags {
            guard !tag.key.isEmpty, tag.key.count <= Self.maxKeyLength, Self.allowed(tag.key) else {
                throw S3Error.invalidTag("The TagKey you have provided is invalid")
            }
            guard tag.value.count <= Self.maxValueLength, Self.allowed(tag.value) else {
                throw S3Error.invalidTag("The TagValue you have provided is invalid")
            }
            guard !tag.key.hasPrefix("aws:") else { throw S3Error.invalidTag("Your TagKey cannot be prefixed with aws:") }
            guard seen.insert(tag.key).inserted else { throw S3Error.invalidTag("Cannot provide multiple Tags with the same key") }
        }
    }

    /// The `x-amz-tagging` header form: `key=value` pairs joined by `&`, each side percent-encoded (RFC 3986).
    /// Empty for no tags.
    var headerValue: String {
        tags.map { URIEncoding.encode($0.key) + "=" + URIEncoding.encode($0.value) }.joined(separator: "&")
    }

    /// Letters, numbers and separators in any script, and `_ . : / = + - @`: S3's documented tag pattern
    /// `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`.
    private static func allowed(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in
            switch scalar.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
                 .decimalNumber, .letterNumber, .otherNumber, .spaceSeparator, .lineSeparator, .paragraphSeparator:
                return true
            default:
                return "+-=._:/@".unicodeScalars.contains(scalar)
            }
        }
    }
}

extension S3Error {
    /// A tag S3 refuses (count, length, characters, duplicate or reserved key).
    static func invalidTag(_ message: String) -> S3Error {
        S3Error(code: "InvalidTag", message: message, status: 400)
    }
}
