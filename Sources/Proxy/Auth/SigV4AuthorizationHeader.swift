/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=AK/yyyymmdd/region/s3/aws4_request,
/// SignedHeaders=a;b, Signature=hex` header.
///
/// The parser is strict and bounded: every component exactly once, no unknown components,
/// bounded lengths, a 64-digit lower-case hex signature, lower-case sorted-or-not header names
/// without duplicates. Anything else is `AuthorizationHeaderMalformed`.
struct SigV4AuthorizationHeader: Sendable, Equatable {
    var accessKey: String
    var scope: SigV4Scope
    var signedHeaders: [String]
    var signature: String

    static let maxLength = 4096
    static let maxAccessKeyLength = 128
    static let maxRegionLength = 64
    static let maxSignedHeaders = 64
    static let maxHeaderNameLength = 128

    static func parse(_ value: String) throws(S3Error) -> SigV4AuthorizationHeader {
        let bytes = Array(value.utf8)
        guard bytes.count <= maxLength else { throw S3Error.authorizationHeaderMalformed("header too long") }
        let prefix = Array("\(SigV4.algorithm) ".utf8)
        guard bytes.count > prefix.count, Array(bytes[0..<prefix.count]) == prefix else {
            throw S3Error.authorizationHeaderMalformed("the algorithm must be \(SigV4.algorithm)")
        }
        let rest = String(decoding: bytes[prefix.count...], as: UTF8.self)

        var credential: Substring?
        var signedHeaders: Substring?
        var signature: Substring?
        for rawPart in rest.split(separator: ",", omittingEmptySubsequences: false) {
            let part = trimSpaces(rawPart)
            guard let eq = part.firstIndex(of: "=") else {
                throw S3Error.authorizationHeaderMalformed("component '\(clip(part))' is not name=value")
            }
            let name = part[..<eq]
            let componentValue = part[part.index(after: eq)...]
            switch name {
            case "Credential":
                guard credential == nil else { throw S3Error.authorizationHeaderMalformed("Credential given twice") }
                credential = componentValue
            case "SignedHeaders":
                guard signedHeaders == nil else { throw S3Error.authorizationHeaderMalformed("SignedHeaders given twice") }
                signedHeaders = componentValue
            case "Signature":
                guard signature == nil else { throw S3Error.authorizationHeaderMalformed("Signature given twice") }
                signature = componentValue
            default:
                throw S3Error.authorizationHeaderMalformed("unknown component '\(clip(name))'")
            }
        }
        guard let credential else { throw S3Error.authorizationHeaderMalformed("missing Credential") }
        guard let signedHeaders else { throw S3Error.authorizationHeaderMalformed("missing SignedHeaders") }
        guard let signature else { throw S3Error.authorizationHeaderMalformed("missing Signature") }

        let (accessKey, scope) = try parseCredential(credential)
        return SigV4AuthorizationHeader(accessKey: accessKey, scope: scope,
                                        signedHeaders: try parseSignedHeaders(signedHeaders),
                                        signature: try parseSignature(signature))
    }

    /// `AK/yyyymmdd/region/service/aws4_request`.
    static func parseCredential(_ value: Substring) throws(S3Error) -> (String, SigV4Scope) {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5 else {
            throw S3Error.authorizationHeaderMalformed("Credential must be AccessKey/yyyymmdd/region/service/aws4_request")
        }
        let accessKey = parts[0], date = parts[1], region = parts[2], service = parts[3]
        guard !accessKey.isEmpty, accessKey.utf8.count <= maxAccessKeyLength,
              accessKey.utf8.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
        else { throw S3Error.authorizationHeaderMalformed("invalid access key id in Credential") }
        guard date.utf8.count == 8, date.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw S3Error.authorizationHeaderMalformed("invalid date in Credential, expected yyyymmdd")
        }
        guard !region.isEmpty, region.utf8.count <= maxRegionLength,
              region.utf8.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") })
        else { throw S3Error.authorizationHeaderMalformed("invalid region in Credential") }
        guard service == "s3" else {
            throw S3Error.authorizationHeaderMalformed("incorrect service in Credential, expected 's3'")
        }
        guard parts[4] == "aws4_request" else {
            throw S3Error.authorizationHeaderMalformed("incorrect terminal in Credential, expected 'aws4_request'")
        }
        return (String(accessKey), SigV4Scope(date: String(date), region: String(region), service: String(service)))
    }

    static func parseSignedHeaders(_ value: Substring) throws(S3Error) -> [String] {
        let names = value.split(separator: ";", omittingEmptySubsequences: false)
        guard !value.isEmpty, names.count <= maxSignedHeaders else {
            throw S3Error.authorizationHeaderMalformed("SignedHeaders must list 1 to \(maxSignedHeaders) headers")
        }
        var seen = Set<Substring>()
        for name in names {
            guard !name.isEmpty, name.utf8.count <= maxHeaderNameLength, name.utf8.allSatisfy(isLowerTokenChar) else {
                throw S3Error.authorizationHeaderMalformed("invalid header name in SignedHeaders")
            }
            guard seen.insert(name).inserted else {
                throw S3Error.authorizationHeaderMalformed("duplicate header name in SignedHeaders")
            }
        }
        return names.map(String.init)
    }

    static func parseSignature(_ value: Substring) throws(S3Error) -> String {
        guard value.utf8.count == 64,
              value.utf8.allSatisfy({ ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f")) })
        else { throw S3Error.authorizationHeaderMalformed("Signature must be 64 lower-case hex digits") }
        return String(value)
    }

    private static func trimSpaces(_ s: Substring) -> Substring {
        var s = s
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }

    private static func clip(_ s: Substring) -> String {
        // Echo at most a short, printable prefix of client input into messages.
        String(s.prefix(32).unicodeScalars.filter { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f }.map(Character.init))
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || isLowerAlnum(c)
    }

    private static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    /// RFC 9110 token characters, lower-case letters only (SigV4 lower-cases signed header names).
    private static func isLowerTokenChar(_ c: UInt8) -> Bool {
        if isLowerAlnum(c) { return true }
        switch c {
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
