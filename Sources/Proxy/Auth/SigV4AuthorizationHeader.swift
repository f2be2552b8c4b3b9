import Foundation
import Shared

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=AK/yyyymmdd/region/s3/aws4_request,
/// SignedHeaders=a;b, Signature=hex` header.
///
/// The parser is strict and bounded: every component exactly once, no unknown components,
/// bounded lengths, a 64-digit lower-case hex signature, lower-case sorted-or-not header names
/// without duplicates. Anything else is `AuthorizationHeaderMalformed`.
///
/// The access key is a slice of the header value and the signature its 32 decoded bytes: the verifier only looks
/// the key up and compares the signature, so neither needs a String of its own (two mallocs per request, issue 12).
struct SigV4AuthorizationHeader: Sendable, Equatable {
    var accessKey: Substring
    var scope: SigV4Scope
    var signedHeaders: [String]
    /// The signature's bytes (the header spells them as 64 lower-case hex digits); `==` is constant-time.
    var signature: Bytes32

    static let maxLength = 4096
    static let maxAccessKeyLength = 128
    static let maxRegionLength = 64
    static let maxSignedHeaders = 64
    static let maxHeaderNameLength = 128

    static func parse(_ value: String) throws(S3Error) -> SigV4AuthorizationHeader {
        guard value.utf8.count <= maxLength else { throw S3Error.authorizationHeaderMalformed("header too long") }
        var value = value
        let parsed = try value.withUTF8 { parse(bytes: $0) }.get()
        // The access key as a slice of the header (its byte offsets; `withUTF8` left `value` native UTF-8).
        let utf8 = value.utf8
        let keyStart = utf8.index(utf8.startIndex, offsetBy: parsed.accessKey.lowerBound)
        let keyEnd = utf8.index(keyStart, offsetBy: parsed.accessKey.count)
        return SigV4AuthorizationHeader(accessKey: Substring(utf8[keyStart..<keyEnd]), scope: parsed.scope,
                                        signedHeaders: parsed.signedHeaders, signature: parsed.signature)
    }

    /// What `parse(bytes:)` finds; the access key as byte offsets into the header.
    private struct Parsed {
        var accessKey: Range<Int>
        var scope: SigV4Scope
        var signedHeaders: [String]
        var signature: Bytes32
    }

    /// The parser proper, over the header's bytes: no intermediate strings for the parts it only checks.
    private static func parse(bytes: UnsafeBufferPointer<UInt8>) -> Result<Parsed, S3Error> {
        let prefix: StaticString = "AWS4-HMAC-SHA256 "
        // memcmp of the literal: the generic `starts(with:)` over a String's UTF-8 view cost ≈ 640 instructions.
        guard bytes.count > prefix.utf8CodeUnitCount, spells(bytes, 0..<prefix.utf8CodeUnitCount, prefix) else {
            return .failure(S3Error.authorizationHeaderMalformed("the algorithm must be \(SigV4.algorithm)"))
        }
        var credential: Range<Int>?
        var signedHeaders: Range<Int>?
        var signature: Range<Int>?
        var start = prefix.utf8CodeUnitCount
        while true {
            // One comma-separated component, spaces around it ignored.
            let end = index(of: UInt8(ascii: ","), in: bytes, from: start, to: bytes.count) ?? bytes.count
            var low = start, high = end
            while low < high, bytes[low] == UInt8(ascii: " ") { low += 1 }
            while high > low, bytes[high - 1] == UInt8(ascii: " ") { high -= 1 }
            guard let eq = index(of: UInt8(ascii: "="), in: bytes, from: low, to: high) else {
                return .failure(S3Error.authorizationHeaderMalformed("component '\(clip(bytes[low..<high]))' is not name=value"))
            }
            let name = bytes[low..<eq], componentValue = eq + 1..<high
            if spells(bytes, low..<eq, "Credential") {
                guard credential == nil else { return .failure(S3Error.authorizationHeaderMalformed("Credential given twice")) }
                credential = componentValue
            } else if spells(bytes, low..<eq, "SignedHeaders") {
                guard signedHeaders == nil else { return .failure(S3Error.authorizationHeaderMalformed("SignedHeaders given twice")) }
                signedHeaders = componentValue
            } else if spells(bytes, low..<eq, "Signature") {
                guard signature == nil else { return .failure(S3Error.authorizationHeaderMalformed("Signature given twice")) }
                signature = componentValue
            } else {
                return .failure(S3Error.authorizationHeaderMalformed("unknown component '\(clip(name))'"))
            }
            if end == bytes.count { break }
            start = end + 1
        }
        guard let credential else { return .failure(S3Error.authorizationHeaderMalformed("missing Credential")) }
        guard let signedHeaders else { return .failure(S3Error.authorizationHeaderMalformed("missing SignedHeaders")) }
        guard let signature else { return .failure(S3Error.authorizationHeaderMalformed("missing Signature")) }
        return Result { () throws(S3Error) in
            let (accessKey, scope) = try parseCredential(UnsafeBufferPointer(rebasing: bytes[credential]))
            return Parsed(accessKey: accessKey.lowerBound + credential.lowerBound..<accessKey.upperBound + credential.lowerBound,
                          scope: scope,
                          signedHeaders: try parseSignedHeaders(UnsafeBufferPointer(rebasing: bytes[signedHeaders])),
                          signature: try parseSignature(UnsafeBufferPointer(rebasing: bytes[signature])))
        }
    }

    /// `AK/yyyymmdd/region/service/aws4_request`.
    static func parseCredential(_ value: Substring) throws(S3Error) -> (String, SigV4Scope) {
        var value = value
        return try value.withUTF8 { bytes in
            Result { () throws(S3Error) in
                let (accessKey, scope) = try parseCredential(bytes)
                return (string(bytes[accessKey]), scope)
            }
        }.get()
    }

    static func parseSignedHeaders(_ value: Substring) throws(S3Error) -> [String] {
        var value = value
        return try value.withUTF8 { bytes in Result { () throws(S3Error) in try parseSignedHeaders(bytes) } }.get()
    }

    /// The signature as sent (presigned URLs), once checked to be 64 lower-case hex digits.
    static func parseSignature(_ value: Substring) throws(S3Error) -> String {
        var value = value
        _ = try value.withUTF8 { bytes in Result { () throws(S3Error) in try parseSignature(bytes) } }.get()
        return String(value)
    }

    /// The access key's byte range in `bytes` and the scope.
    private static func parseCredential(_ bytes: UnsafeBufferPointer<UInt8>) throws(S3Error) -> (Range<Int>, SigV4Scope) {
        // Exactly four slashes, found with memchr (no array of positions: one allocation less per request).
        let slash = UInt8(ascii: "/"), end = bytes.count
        guard let s0 = index(of: slash, in: bytes, from: 0, to: end),
              let s1 = index(of: slash, in: bytes, from: s0 + 1, to: end),
              let s2 = index(of: slash, in: bytes, from: s1 + 1, to: end),
              let s3 = index(of: slash, in: bytes, from: s2 + 1, to: end),
              index(of: slash, in: bytes, from: s3 + 1, to: end) == nil
        else {
            throw S3Error.authorizationHeaderMalformed("Credential must be AccessKey/yyyymmdd/region/service/aws4_request")
        }
        let slashes = (s0, s1, s2, s3)
        let accessKey = bytes[0..<slashes.0], date = bytes[slashes.0 + 1..<slashes.1]
        let region = bytes[slashes.1 + 1..<slashes.2]
        guard !accessKey.isEmpty, accessKey.count <= maxAccessKeyLength,
              accessKey.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
        else { throw S3Error.authorizationHeaderMalformed("invalid access key id in Credential") }
        guard date.count == 8, date.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw S3Error.authorizationHeaderMalformed("invalid date in Credential, expected yyyymmdd")
        }
        guard !region.isEmpty, region.count <= maxRegionLength,
              region.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") })
        else { throw S3Error.authorizationHeaderMalformed("invalid region in Credential") }
        guard spells(bytes, slashes.2 + 1..<slashes.3, "s3") else {
            throw S3Error.authorizationHeaderMalformed("incorrect service in Credential, expected 's3'")
        }
        guard spells(bytes, slashes.3 + 1..<bytes.count, "aws4_request") else {
            throw S3Error.authorizationHeaderMalformed("incorrect terminal in Credential, expected 'aws4_request'")
        }
        return (0..<slashes.0, SigV4Scope(date: string(date), region: string(region), service: "s3"))
    }

    private static func parseSignedHeaders(_ bytes: UnsafeBufferPointer<UInt8>) throws(S3Error) -> [String] {
        let separators = bytes.count(where: { $0 == UInt8(ascii: ";") })
        guard !bytes.isEmpty, separators < maxSignedHeaders else {
            throw S3Error.authorizationHeaderMalformed("SignedHeaders must list 1 to \(maxSignedHeaders) headers")
        }
        var names: [String] = []
        names.reserveCapacity(separators + 1)  // one allocation, not one per doubling
        var start = 0
        while start <= bytes.count {
            let end = index(of: UInt8(ascii: ";"), in: bytes, from: start, to: bytes.count) ?? bytes.count
            let name = bytes[start..<end]
            guard !name.isEmpty, name.count <= maxHeaderNameLength, name.allSatisfy(isLowerTokenChar) else {
                throw S3Error.authorizationHeaderMalformed("invalid header name in SignedHeaders")
            }
            let text = longKnownName(UnsafeBufferPointer(rebasing: name)) ?? string(name)
            guard !names.contains(text) else {
                throw S3Error.authorizationHeaderMalformed("duplicate header name in SignedHeaders")
            }
            names.append(text)
            start = end + 1
        }
        return names
    }

    /// The 32 bytes the signature's 64 lower-case hex digits spell (decoded once, here: the verifier compares bytes).
    private static func parseSignature(_ bytes: UnsafeBufferPointer<UInt8>) throws(S3Error) -> Bytes32 {
        guard let signature = SigV4.rawSignature(bytes) else {
            throw S3Error.authorizationHeaderMalformed("Signature must be 64 lower-case hex digits")
        }
        return signature
    }

    /// Signed header names longer than 15 bytes (the longest a `String` holds without a heap allocation) that
    /// clients sign on almost every request, as literals: no allocation for them (issue 12).
    private static func longKnownName(_ name: UnsafeBufferPointer<UInt8>) -> String? {
        guard name.count > 15 else { return nil }
        if spells(name, 0..<name.count, "x-amz-content-sha256") { return "x-amz-content-sha256" }
        if spells(name, 0..<name.count, "x-amz-security-token") { return "x-amz-security-token" }
        if spells(name, 0..<name.count, "x-amz-decoded-content-length") { return "x-amz-decoded-content-length" }
        return nil
    }

    /// The first `byte` in `bytes[from..<to]` (memchr: this parser runs on every request).
    private static func index(of byte: UInt8, in bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        guard from < to, let base = bytes.baseAddress, let found = memchr(base + from, Int32(byte), to - from) else { return nil }
        return UnsafeRawPointer(base).distance(to: found)
    }

    /// Whether `bytes[range]` is exactly `literal` (case-sensitive, as SigV4 spells its component names).
    private static func spells(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        range.count == literal.utf8CodeUnitCount
            && (range.isEmpty || memcmp(bytes.baseAddress! + range.lowerBound, literal.utf8Start, range.count) == 0)
    }

    private static func string(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes), as: UTF8.self)
    }

    private static func clip(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> String {
        // Echo at most a short, printable prefix of client input into messages.
        String(decoding: bytes.prefix(32).filter { $0 >= 0x20 && $0 < 0x7f }, as: UTF8.self)
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || isLowerAlnum(c)
    }

    private static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    /// RFC 9110 token characters, lower-case letters only (SigV4 lower-cases signed header names).
    /// A tchar that is not an upper-case letter (the parser's tchar masks: one shift and test per byte).
    static func isLowerTokenChar(_ c: UInt8) -> Bool {
        HTTPRequestParser.isToken(c) && !(c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
    }
}
