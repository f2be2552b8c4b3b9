import Foundation

/// One text field of a form.
struct FormField: Sendable, Equatable {
    var name: String
    var value: String
}

/// What precedes a form's file content: every field before the file part, and the file part's own headers.
struct FormPrelude: Sendable, Equatable {
    var fields: [FormField]
    /// The file part's `filename` parameter (browsers send the local name without its directory).
    var fileName: String?
    /// The file part's `Content-Type`.
    var fileContentType: String?
    /// Offset of the file's first content byte in the parsed buffer.
    var dataOffset: Int
}

/// `multipart/form-data` (RFC 7578) as browsers and HTTP libraries send S3 POST Object forms. Pure, strict and
/// bounded: the body starts with the first delimiter (no preamble), every part has a `Content-Disposition:
/// form-data` header with a name, field names are unique (case-insensitively), values are UTF-8, and the
/// fields before the file part fit in `maxPreludeSize` bytes. The file part is the one named `file` (S3 ignores
/// fields after it; this parser checks that they are well-formed, then ignores them too).
enum MultipartFormData {
    /// Largest prelude (every part before the file content, headers included). S3 caps a POST form's fields at
    /// 20 KB; this leaves room for long policies.
    static let maxPreludeSize = 64 << 10
    static let maxFields = 64
    static let maxHeaderLineLength = 1024
    static let maxHeadersPerPart = 8
    /// RFC 2046: 1–70 characters from a small set.
    static let maxBoundaryLength = 70

    /// The boundary of a `multipart/form-data` Content-Type, or nil when the type is something else.
    static func boundary(contentType: String) throws(FormDataError) -> String? {
        let parts = contentType.split(separator: ";", omittingEmptySubsequences: false)
        guard parts[0].trimmingCharacters(in: .whitespaces).lowercased() == "multipart/form-data" else { return nil }
        var boundary: String?
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2 else { throw malformed("a Content-Type parameter has no value") }
            guard pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else { continue }
            guard boundary == nil else { throw malformed("the Content-Type names two boundaries") }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            boundary = value
        }
        guard let boundary, (1...maxBoundaryLength).contains(boundary.utf8.count),
              boundary.utf8.allSatisfy(isBoundaryCharacter), boundary.utf8.last != 0x20 else {
            throw malformed("the Content-Type has no valid boundary parameter")
        }
        return boundary
    }

    /// `\r\n--boundary`: what ends every part's content.
    static func delimiter(_ boundary: String) -> [UInt8] { Array("\r\n--\(boundary)".utf8) }

    /// What browsers, curl and HTTP libraries send after the last part: `\r\n--boundary--\r\n`.
    static func closeDelimiter(_ boundary: String) -> [UInt8] { delimiter(boundary) + Array("--\r\n".utf8) }

    /// Parses the fields before the file part and the file part's headers from the start of a body.
    /// - Returns: nil when `buffer` holds too little yet (read more and call again with the longer buffer).
    /// - Throws: `MalformedPOSTRequest` for anything malformed or over the limits, `InvalidArgument` when the form
    ///   ends without a file part.
    static func parsePrelude(_ buffer: [UInt8], boundary: String) throws(FormDataError) -> FormPrelude? {
        let delimiter = delimiter(boundary)
        let opening = Array(delimiter.dropFirst(2)) + [0x0D, 0x0A]  // "--boundary\r\n" opens the body
        guard buffer.count >= opening.count else {
            guard buffer.elementsEqual(opening.prefix(buffer.count)) else { throw malformed("the body does not start with the boundary") }
            return nil
        }
        guard buffer.starts(with: opening) else { throw malformed("the body does not start with the boundary") }
        var position = opening.count
        var fields: [FormField] = []
        var names: Set<String> = []
        while true {
            guard let part = try parsePartHeaders(buffer, from: position) else { return try needMore(buffer) }
            if part.name.lowercased() == "file" {
                return FormPrelude(fields: fields, fileName: part.fileName, fileContentType: part.contentType, dataOffset: part.bodyStart)
            }
            guard let end = find(delimiter, in: buffer, from: part.bodyStart) else { return try needMore(buffer) }
            guard fields.count < maxFields else { throw malformed("more than \(maxFields) form fields") }
            guard names.insert(part.name.lowercased()).inserted else {
                throw malformed("the field \(part.name.prefix(64)) appears twice")
            }
            guard let value = String(validating: buffer[part.bodyStart..<end], as: UTF8.self) else {
                throw malformed("the field \(part.name.prefix(64)) is not UTF-8 text")
            }
            fields.append(FormField(name: part.name, value: value))
            switch try afterDelimiter(buffer, at: end + delimiter.count) {
            case nil: return try needMore(buffer)
            case .nextPart(let next): position = next
            case .closed: throw FormDataError(.noFile, "POST requires exactly one file upload per request.")
            }
        }
    }

    /// Checks what follows the file content: `tail` starts with the delimiter that ends the file and runs to the
    /// end of the body. Fields after the file must be well-formed (and are ignored, as S3 ignores them); a second
    /// file part is refused.
    static func checkTail(_ tail: [UInt8], boundary: String) throws(FormDataError) {
        let delimiter = delimiter(boundary)
        guard tail.starts(with: delimiter) else { throw malformed("the file part does not end with the boundary") }
        var position = delimiter.count
        while true {
            guard let next = try afterDelimiter(tail, at: position) else { throw truncated() }
            guard case .nextPart(let start) = next else {
                // After the close delimiter: nothing, or one CRLF.
                let rest = tail[(position + 2)...]
                guard rest.isEmpty || rest.elementsEqual([0x0D, 0x0A]) else { throw malformed("data after the closing boundary") }
                return
            }
            guard let part = try parsePartHeaders(tail, from: start) else { throw truncated() }
            guard part.name.lowercased() != "file" else { throw FormDataError(.noFile, "POST requires exactly one file upload per request.") }
            guard let end = find(delimiter, in: tail, from: part.bodyStart) else { throw truncated() }
            position = end + delimiter.count
        }
    }

    // MARK: Parts

    struct PartHead: Equatable {
        var name: String
        var fileName: String?
        var contentType: String?
        var bodyStart: Int
    }

    /// The headers of the part starting at `position` (just after a delimiter's CRLF); nil when incomplete.
    static func parsePartHeaders(_ buffer: [UInt8], from position: Int) throws(FormDataError) -> PartHead? {
        var line = position
        var disposition: (name: String, fileName: String?)?
        var contentType: String?
        var count = 0
        while true {
            guard let lineEnd = find([0x0D, 0x0A], in: buffer, from: line, limit: maxHeaderLineLength + 2) else {
                if buffer.count - line > maxHeaderLineLength { throw malformed("a part header line is too long") }
                return nil
            }
            if lineEnd == line {
                guard let disposition else { throw malformed("a part has no Content-Disposition: form-data header") }
                return PartHead(name: disposition.name, fileName: disposition.fileName, contentType: contentType, bodyStart: lineEnd + 2)
            }
            count += 1
            guard count <= maxHeadersPerPart else { throw malformed("a part has too many headers") }
            guard let text = String(validating: buffer[line..<lineEnd], as: UTF8.self), let colon = text.firstIndex(of: ":") else {
                throw malformed("a part header line is not `Name: value`")
            }
            let name = text[..<colon].lowercased()
            let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenCharacter) else { throw malformed("a part header name is invalid") }
            switch name {
            case "content-disposition":
                guard disposition == nil else { throw malformed("a part has two Content-Disposition headers") }
                disposition = try parseDisposition(value)
            case "content-type":
                guard contentType == nil else { throw malformed("a part has two Content-Type headers") }
                contentType = value
            case "content-transfer-encoding":
                // RFC 7578 §4.7: deprecated; only the identity encodings are meaningful for binary-safe HTTP.
                guard ["binary", "8bit", "7bit"].contains(value.lowercased()) else {
                    throw malformed("Content-Transfer-Encoding \(value.prefix(32)) is not supported")
                }
            default:
                break  // other part headers carry nothing S3 uses
            }
            line = lineEnd + 2
        }
    }

    /// `form-data; name="x"; filename="y"`: quoted values may escape `"` and `\` with a backslash.
    static func parseDisposition(_ value: String) throws(FormDataError) -> (name: String, fileName: String?) {
        var scanner = Substring(value)
        func skipSpaces() { while scanner.first == " " || scanner.first == "\t" { scanner.removeFirst() } }
        let type = scanner.prefix { $0 != ";" }
        guard type.trimmingCharacters(in: .whitespaces).lowercased() == "form-data" else {
            throw malformed("a part's Content-Disposition is not form-data")
        }
        scanner = scanner.dropFirst(type.count)
        var parameters: [String: String] = [:]
        while !scanner.isEmpty {
            guard scanner.first == ";" else { throw malformed("Content-Disposition parameters are malformed") }
            scanner.removeFirst()
            skipSpaces()
            let key = scanner.prefix { $0 != "=" && $0 != ";" }.trimmingCharacters(in: .whitespaces).lowercased()
            scanner = scanner.dropFirst(scanner.prefix { $0 != "=" && $0 != ";" }.count)
            guard scanner.first == "=", !key.isEmpty else { throw malformed("Content-Disposition parameters are malformed") }
            scanner.removeFirst()
            skipSpaces()
            var parsed = ""
            if scanner.first == "\"" {
                scanner.removeFirst()
                var closed = false
                while let c = scanner.first {
                    scanner.removeFirst()
                    if c == "\"" { closed = true; break }
                    if c == "\\", let escaped = scanner.first, escaped == "\"" || escaped == "\\" {
                        scanner.removeFirst()
                        parsed.append(escaped)
                    } else {
                        parsed.append(c)
                    }
                }
                guard closed else { throw malformed("a Content-Disposition value is not terminated") }
            } else {
                parsed = String(scanner.prefix { $0 != ";" }).trimmingCharacters(in: .whitespaces)
                scanner = scanner.dropFirst(scanner.prefix { $0 != ";" }.count)
            }
            skipSpaces()
            guard parameters[key] == nil else { throw malformed("a Content-Disposition parameter appears twice") }
            parameters[key] = parsed
        }
        guard let name = parameters["name"], !name.isEmpty, name.utf8.count <= 256 else {
            throw malformed("a part's Content-Disposition has no field name")
        }
        return (name, parameters["filename"])
    }

    enum AfterDelimiter: Equatable {
        /// `\r\n`: another part starts at this offset.
        case nextPart(Int)
        /// `--`: the close delimiter.
        case closed
    }

    /// What follows a delimiter ending at `position`: nil when the buffer ends first.
    static func afterDelimiter(_ buffer: [UInt8], at position: Int) throws(FormDataError) -> AfterDelimiter? {
        guard buffer.count >= position + 2 else { return nil }
        switch (buffer[position], buffer[position + 1]) {
        case (0x0D, 0x0A): return .nextPart(position + 2)
        case (0x2D, 0x2D): return .closed
        default: throw malformed("a boundary is followed by neither CRLF nor --")
        }
    }

    // MARK: Helpers

    /// The offset of `needle` in `buffer` at or after `from` (looking at most `limit` bytes ahead).
    static func find(_ needle: [UInt8], in buffer: [UInt8], from: Int, limit: Int = .max) -> Int? {
        guard !needle.isEmpty, buffer.count - from >= needle.count else { return nil }
        let last = min(buffer.count - needle.count, from > Int.max - limit ? Int.max : from + limit - needle.count)
        guard last >= from else { return nil }
        return buffer.withUnsafeBytes { raw -> Int? in
            var i = from
            while i <= last {
                guard let hit = memchr(raw.baseAddress! + i, Int32(needle[0]), last - i + 1) else { return nil }
                let at = raw.baseAddress!.distance(to: UnsafeRawPointer(hit))
                if memcmp(raw.baseAddress! + at, needle, needle.count) == 0 { return at }
                i = at + 1
            }
            return nil
        }
    }

    private static func needMore(_ buffer: [UInt8]) throws(FormDataError) -> FormPrelude? {
        guard buffer.count < maxPreludeSize else {
            throw malformed("the form fields before the file exceed \(maxPreludeSize / 1024) KiB, or the file field is missing")
        }
        return nil
    }

    static func isBoundaryCharacter(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return "'()+_,-./:=? ".utf8.contains(c)
        }
    }

    static func isTokenCharacter(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }

    static func malformed(_ detail: String) -> FormDataError {
        FormDataError(.malformed, detail)
    }

    private static func truncated() -> FormDataError { malformed("the form ends before its closing boundary") }
}

/// Finds a delimiter in a stream of bytes arriving in pieces (the file part of a large form, where the content
/// must not contain it). The delimiter's only CR is its first byte (boundaries contain no CR), so a partial
/// match that fails can restart at the failing byte.
struct DelimiterScanner: Sendable {
    let delimiter: [UInt8]
    private var matched = 0

    init(_ delimiter: [UInt8]) {
        precondition(delimiter.first == 0x0D && !delimiter.dropFirst().contains(0x0D))
        self.delimiter = delimiter
    }

    /// Whether the delimiter has now been seen (it may span earlier calls).
    mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if matched == delimiter.count { return true }  // seen before: stays seen
        guard let base = bytes.baseAddress else { return false }
        var i = 0
        while i < bytes.count {
            if matched > 0 {
                if bytes[i] == delimiter[matched] {
                    matched += 1
                    i += 1
                    if matched == delimiter.count { return true }
                    continue
                }
                matched = 0  // re-examine bytes[i]: it may start a new match
            }
            guard let hit = memchr(base + i, 0x0D, bytes.count - i) else { return false }
            i = base.distance(to: UnsafeRawPointer(hit)) + 1
            matched = 1
        }
        return false
    }
}

/// Why a form was refused. Pure (the handler maps it to S3's `MalformedPOSTRequest` / `InvalidArgument`).
struct FormDataError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        /// Not well-formed multipart/form-data, or over a limit.
        case malformed
        /// Well-formed, but without exactly one file part.
        case noFile
    }

    var kind: Kind
    var message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    var description: String { message }
}
