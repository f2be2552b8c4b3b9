#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Size limits enforced while parsing one request.
public struct HTTPParserLimits: Sendable, Equatable {
    /// Longest request line (method, target, version), CRLF included. Over it: 414.
    public var maxRequestLineBytes: Int = 16 * 1024
    /// Largest header block (all field lines, CRLFs included). Over it: 431.
    public var maxHeaderBytes: Int = 64 * 1024
    /// Most header fields. Over it: 431.
    public var maxHeaderFields: Int = 200
    /// Largest request body (declared or decoded). Over it: 413.
    public var maxBodyBytes: Int64 = Int64.max
    /// Longest chunk-size line including extensions. Over it: 400.
    public var maxChunkLineBytes: Int = 4 * 1024
    /// Largest trailer section. Over it: 431.
    public var maxTrailerBytes: Int = 16 * 1024

    public init() {}
}

/// A request the parser refuses, with the status the server answers before closing.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 400, 413, 414, 431, 501 or 505.
    public var status: Int
    /// An S3-style error code for the response body.
    public var code: String
    public var message: String

    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status) \(code): \(message)" }

    static func bad(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 400, code: "BadRequest", message: message)
    }
}

/// How the request body is delimited.
public enum HTTPBodyFraming: Sendable, Equatable {
    case none
    case length(Int64)
    case chunked
}

/// A complete request head plus the framing facts derived from it.
public struct HTTPParsedHead: Sendable {
    public var head: HTTPRequestHead
    public var framing: HTTPBodyFraming
    /// Whether the connection may carry another request after this one.
    public var keepAlive: Bool
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    public var expectsContinue: Bool
}

/// What one `feed` call produced.
public enum HTTPParserEvent: Sendable {
    /// All input was consumed without completing anything.
    case needMore
    case head(HTTPParsedHead)
    /// Body bytes at these offsets of the input just fed (already decoded from chunked framing).
    case body(Range<Int>)
    /// The request is complete; `reset()` before parsing the next one.
    case end
}

/// An I/O-free HTTP/1.1 request parser: fed bytes, it emits the head, body
/// byte ranges and the end of the request, or throws a typed error.
///
/// It never copies body bytes (they are reported as ranges of the input) and
/// buffers at most one head line, so memory stays bounded by the limits.
/// It stops at the end of one request: bytes after it are left unconsumed for
/// the next request, which is what makes pipelining safe.
public struct HTTPRequestParser: Sendable {
    enum State: Sendable, Equatable {
        case requestLine
        case headers
        case body(remaining: Int64)
        case chunkSizeLine
        case chunkData(remaining: Int64)
        case chunkDataCR
        case chunkDataLF
        case trailers
        case endPending
        case done
        case failed
    }

    public let limits: HTTPParserLimits
    private(set) var state: State = .requestLine
    private var line: [UInt8] = []
    private var leadingEmptyLines = 0
    private var headerBytes = 0
    private var trailerBytes = 0
    private var method = ""
    private var target = ""
    private var minorVersion = 1
    private var fields: [(name: String, value: String)] = []
    private var framingFields = FramingFields()
    private var bodyTotal: Int64 = 0
    /// Trailer fields of a chunked body, available after `.end`.
    public private(set) var trailers = HTTPFields()

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
        line.reserveCapacity(256)
    }

    /// Forgets the finished request so the next one can be parsed.
    public mutating func reset() {
        state = .requestLine
        line.removeAll(keepingCapacity: true)
        leadingEmptyLines = 0
        headerBytes = 0
        trailerBytes = 0
        fields = []
        framingFields = FramingFields()
        bodyTotal = 0
        trailers = HTTPFields()
    }

    /// True once the body has been fully delivered (`.end` pending or emitted).
    public var bodyComplete: Bool { state == .endPending || state == .done }

    /// True between `.end` and `reset()`.
    public var isDone: Bool { state == .done }

    /// True while nothing of the current request has arrived yet.
    public var atRequestStart: Bool { state == .requestLine && line.isEmpty && leadingEmptyLines == 0 }

    /// Body bytes the caller may read straight from the transport, bypassing
    /// `feed` (the rest of the current chunk or of the `Content-Length` body).
    /// Report them with `consumeDirectBody(_:)`.
    public var directBodyBytes: Int64 {
        switch state {
        case .body(let r), .chunkData(let r): return r
        default: return 0
        }
    }

    /// Accounts for `n` (≤ `directBodyBytes`) body bytes read outside `feed`.
    public mutating func consumeDirectBody(_ n: Int) {
        precondition(n >= 0 && Int64(n) <= directBodyBytes)
        advanceBody(Int64(n))
    }

    private mutating func advanceBody(_ n: Int64) {
        switch state {
        case .body(let r):
            state = r - n == 0 ? .endPending : .body(remaining: r - n)
        case .chunkData(let r):
            state = r - n == 0 ? .chunkDataCR : .chunkData(remaining: r - n)
        default:
            preconditionFailure("advanceBody outside body data")
        }
    }

    /// Consumes a prefix of `input` and reports at most one event.
    /// - Parameter maxBody: the most body bytes to report in one `.body` event.
    /// - Returns: how many bytes of `input` were consumed, and the event.
    public mutating func feed(_ input: UnsafeRawBufferPointer, maxBody: Int = Int.max) throws(HTTPParseError)
        -> (consumed: Int, event: HTTPParserEvent)
    {
        precondition(maxBody > 0)
        if state == .endPending {
            state = .done
            return (0, .end)
        }
        if state == .done { return (0, .end) }
        if state == .failed { throw .bad("parser used after an error") }
        do {
            return try step(input, maxBody: maxBody)
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func step(_ input: UnsafeRawBufferPointer, maxBody: Int) throws(HTTPParseError)
        -> (consumed: Int, event: HTTPParserEvent)
    {
        guard let base = input.baseAddress else { return (0, .needMore) }
        var i = 0
        while i < input.count {
            switch state {
            case .requestLine, .headers, .chunkSizeLine, .trailers:
                let rest = input.count - i
                let found = memchr(base + i, 0x0A, rest)
                let end = found.map { UnsafeRawPointer($0) - base + 1 } ?? input.count
                try checkLineLimit(adding: end - i)
                if found != nil && line.isEmpty {
                    // The whole line is in the input (the common case): parsed where it lies, not copied.
                    let event = try completeLine(UnsafeRawBufferPointer(rebasing: input[i..<end]))
                    i = end
                    if let event { return (i, event) }
                    continue
                }
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<end]))
                i = end
                if found == nil { return (i, .needMore) }
                // A line that arrived in pieces: parsed from `line`, moved out so `completeLine` may mutate self.
                var buffered: [UInt8] = []
                swap(&buffered, &line)
                let result = buffered.withUnsafeBytes { bytes in
                    Result { () throws(HTTPParseError) in try completeLine(bytes) }
                }
                buffered.removeAll(keepingCapacity: true)
                swap(&buffered, &line)
                if let event = try result.get() { return (i, event) }
            case .body(let remaining):
                let n = Int(min(Int64(min(input.count - i, maxBody)), remaining))
                advanceBody(Int64(n))
                return (i + n, .body(i..<(i + n)))
            case .chunkData(let remaining):
                let n = Int(min(Int64(min(input.count - i, maxBody)), remaining))
                advanceBody(Int64(n))
                return (i + n, .body(i..<(i + n)))
            case .chunkDataCR:
                guard input[i] == 0x0D else { throw .bad("chunk data not followed by CRLF") }
                state = .chunkDataLF
                i += 1
            case .chunkDataLF:
                guard input[i] == 0x0A else { throw .bad("chunk data not followed by CRLF") }
                state = .chunkSizeLine
                i += 1
            case .endPending:
                return (i, .needMore)
            case .done, .failed:
                return (i, .needMore)
            }
        }
        return (i, .needMore)
    }

    private func checkLineLimit(adding n: Int) throws(HTTPParseError) {
        let total = line.count + n
        switch state {
        case .requestLine:
            if total > limits.maxRequestLineBytes {
                throw HTTPParseError(status: 414, code: "RequestURITooLong",
                                     message: "request line longer than \(limits.maxRequestLineBytes) bytes")
            }
        case .headers:
            if headerBytes + total > limits.maxHeaderBytes {
                throw HTTPParseError(status: 431, code: "RequestHeaderSectionTooLarge",
                                     message: "header block larger than \(limits.maxHeaderBytes) bytes")
            }
        case .chunkSizeLine:
            if total > limits.maxChunkLineBytes {
                throw .bad("chunk-size line longer than \(limits.maxChunkLineBytes) bytes")
            }
        case .trailers:
            if trailerBytes + total > limits.maxTrailerBytes {
                throw HTTPParseError(status: 431, code: "RequestHeaderSectionTooLarge",
                                     message: "trailer section larger than \(limits.maxTrailerBytes) bytes")
            }
        default:
            break
        }
    }

    /// Handles one complete line (LF included), wherever it lies: in the caller's input or in `line`.
    /// Byte-level over the raw buffer: one pass per check, no copies; strings only for what the head keeps.
    private mutating func completeLine(_ line: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPParserEvent? {
        let count = line.count
        guard count >= 2, line[count - 2] == 0x0D else { throw .bad("bare LF in message framing") }
        let content = UnsafeRawBufferPointer(rebasing: line[0..<(count - 2)])
        if !content.isEmpty, memchr(content.baseAddress!, 0x0D, content.count) != nil {
            throw .bad("bare CR in message framing")
        }
        switch state {
        case .requestLine:
            if content.isEmpty {
                // RFC 9112 §2.2: tolerate a few empty lines before a request line.
                leadingEmptyLines += 1
                if leadingEmptyLines > 4 { throw .bad("too many empty lines before the request line") }
                return nil
            }
            try parseRequestLine(content)
            state = .headers
            return nil
        case .headers:
            headerBytes += count
            if content.isEmpty { return .head(try finishHead()) }
            let field = try Self.parseField(content)
            if fields.count >= limits.maxHeaderFields {
                throw HTTPParseError(status: 431, code: "RequestHeaderSectionTooLarge",
                                     message: "more than \(limits.maxHeaderFields) header fields")
            }
            if let kind = field.framing { framingFields.note(kind, field.value) }
            // One allocation for a typical head instead of a doubling series.
            if fields.isEmpty { fields.reserveCapacity(16) }
            fields.append((name: field.name, value: field.value))
            return nil
        case .chunkSizeLine:
            let size = try Self.parseChunkSize(content)
            if size == 0 {
                state = .trailers
                return nil
            }
            let (sum, overflow) = bodyTotal.addingReportingOverflow(size)
            if overflow || sum > limits.maxBodyBytes { throw tooLarge() }
            bodyTotal = sum
            state = .chunkData(remaining: size)
            return nil
        case .trailers:
            trailerBytes += count
            if content.isEmpty {
                state = .done
                return .end
            }
            let field = try Self.parseField(content)
            if trailers.count >= limits.maxHeaderFields {
                throw HTTPParseError(status: 431, code: "RequestHeaderSectionTooLarge", message: "too many trailer fields")
            }
            trailers.add(field.name, field.value)
            return nil
        default:
            preconditionFailure("line in state \(state)")
        }
    }

    private func tooLarge() -> HTTPParseError {
        HTTPParseError(status: 413, code: "EntityTooLarge", message: "request body larger than \(limits.maxBodyBytes) bytes")
    }

    private mutating func parseRequestLine(_ content: UnsafeRawBufferPointer) throws(HTTPParseError) {
        guard let sp1 = Self.index(of: 0x20, in: content, from: 0),
              let sp2 = Self.index(of: 0x20, in: content, from: sp1 + 1)
        else { throw .bad("malformed request line") }
        let methodBytes = UnsafeRawBufferPointer(rebasing: content[0..<sp1])
        let targetBytes = UnsafeRawBufferPointer(rebasing: content[(sp1 + 1)..<sp2])
        let v = UnsafeRawBufferPointer(rebasing: content[(sp2 + 1)...])
        guard !methodBytes.isEmpty, Self.allTokens(methodBytes) else { throw .bad("invalid method") }
        guard !targetBytes.isEmpty else { throw .bad("invalid request target") }
        var seen: UInt8 = 0
        for b in targetBytes {
            if b <= 0x20 || b == 0x7F { throw .bad("invalid request target") }
            seen |= b
        }
        let t: String
        if seen < 0x80 {
            // All ASCII, hence valid UTF-8: no validating decode needed.
            t = String(decoding: targetBytes, as: UTF8.self)
        } else {
            guard let valid = String(validating: targetBytes, as: UTF8.self) else { throw .bad("request target is not UTF-8") }
            t = valid
        }
        guard v.count == 8, v[0] == 0x48, v[1] == 0x54, v[2] == 0x54, v[3] == 0x50, v[4] == 0x2F, v[6] == 0x2E,
              (0x30...0x39).contains(v[5]), (0x30...0x39).contains(v[7])
        else { throw .bad("malformed HTTP version") }
        guard v[5] == 0x31 else {
            throw HTTPParseError(status: 505, code: "HTTPVersionNotSupported", message: "only HTTP/1.x is supported")
        }
        method = String(decoding: methodBytes, as: UTF8.self)
        target = t
        minorVersion = v[7] == 0x30 ? 0 : 1
    }

    /// One `name: value` line (CRLF removed), value trimmed, and whether the name is one that decides framing.
    private static func parseField(_ content: UnsafeRawBufferPointer) throws(HTTPParseError)
        -> (name: String, value: String, framing: FramingField?)
    {
        let first = content[0]
        if first == 0x20 || first == 0x09 { throw .bad("obsolete line folding is not allowed") }
        guard let colon = index(of: 0x3A, in: content, from: 0) else { throw .bad("header field without a colon") }
        guard colon > 0 else { throw .bad("empty header field name") }
        let last = content[colon - 1]
        if last == 0x20 || last == 0x09 { throw .bad("whitespace before the colon of a header field") }
        let nameBytes = UnsafeRawBufferPointer(rebasing: content[0..<colon])
        guard allTokens(nameBytes) else { throw .bad("invalid header field name") }
        var lo = colon + 1, hi = content.count
        while lo < hi, content[lo] == 0x20 || content[lo] == 0x09 { lo += 1 }
        while hi > lo, content[hi - 1] == 0x20 || content[hi - 1] == 0x09 { hi -= 1 }
        let valueBytes = UnsafeRawBufferPointer(rebasing: content[lo..<hi])
        if hasControl(valueBytes) { throw .bad("control character in a header field value") }
        return (String(decoding: nameBytes, as: UTF8.self), String(decoding: valueBytes, as: UTF8.self),
                FramingField(name: nameBytes))
    }

    private static func parseChunkSize(_ content: UnsafeRawBufferPointer) throws(HTTPParseError) -> Int64 {
        var value: Int64 = 0
        var i = 0
        while i < content.count, let d = hexValue(content[i]) {
            if value > (Int64.max >> 4) { throw .bad("chunk size overflows") }
            value = value << 4 | Int64(d)
            i += 1
        }
        guard i > 0 else { throw .bad("missing chunk size") }
        // Only BWS and `;`-introduced extensions may follow; extensions are ignored.
        var j = i
        while j < content.count, content[j] == 0x20 || content[j] == 0x09 { j += 1 }
        if j < content.count {
            guard content[j] == 0x3B else { throw .bad("invalid chunk size") }
            for b in UnsafeRawBufferPointer(rebasing: content[j...]) where (b < 0x20 && b != 0x09) || b == 0x7F {
                throw .bad("control character in a chunk extension")
            }
        } else if j != i {
            throw .bad("whitespace after chunk size")
        }
        return value
    }

    private mutating func finishHead() throws(HTTPParseError) -> HTTPParsedHead {
        let noted = framingFields
        if minorVersion == 1 {
            if noted.hosts != 1 { throw .bad(noted.hosts == 0 ? "missing Host header" : "more than one Host header") }
        }
        var connectionTokens: [String] = []
        for v in noted.connection { connectionTokens += HTTPRequestParser.tokens(v) }
        let close = connectionTokens.contains("close")
        let keepAlive = minorVersion == 1 ? !close : (connectionTokens.contains("keep-alive") && !close)

        let te = noted.transferEncoding
        let cl = noted.contentLength
        let framing: HTTPBodyFraming
        if !te.isEmpty {
            if !cl.isEmpty { throw .bad("both Transfer-Encoding and Content-Length") }
            var codings: [String] = []
            for v in te { codings += HTTPRequestParser.tokens(v) }
            guard codings == ["chunked"] else {
                throw HTTPParseError(status: 501, code: "NotImplemented",
                                     message: "only the chunked transfer coding is supported")
            }
            framing = .chunked
            state = .chunkSizeLine
        } else if !cl.isEmpty {
            guard cl.count == 1 else { throw .bad("more than one Content-Length") }
            let digits = cl[0].utf8
            guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw .bad("invalid Content-Length")
            }
            let n = digits.reduce(Int64(0)) { $0 * 10 + Int64($1 - 0x30) }
            if n > limits.maxBodyBytes { throw tooLarge() }
            framing = .length(n)
            state = n == 0 ? .endPending : .body(remaining: n)
        } else {
            framing = .none
            state = .endPending
        }
        let expects = minorVersion == 1 && framing != .none
            && noted.expect.contains { $0.caseInsensitiveEquals("100-continue") }
        let head = HTTPRequestHead(method: method, target: target, headers: HTTPFields(fields), minorVersion: minorVersion)
        fields = []
        return HTTPParsedHead(head: head, framing: framing, keepAlive: keepAlive, expectsContinue: expects)
    }

    /// The header fields that decide framing, noted while the fields are parsed so that the
    /// end of the head needs no lookups over all fields (arrays stay empty, unallocated, when absent).
    struct FramingFields: Sendable {
        var hosts = 0
        var connection: [String] = []
        var transferEncoding: [String] = []
        var contentLength: [String] = []
        var expect: [String] = []

        mutating func note(_ kind: FramingField, _ value: String) {
            switch kind {
            case .host: hosts += 1
            case .connection: connection.append(value)
            case .transferEncoding: transferEncoding.append(value)
            case .contentLength: contentLength.append(value)
            case .expect: expect.append(value)
            }
        }
    }

    enum FramingField: Sendable, Equatable {
        case host, connection, transferEncoding, contentLength, expect

        /// Recognises a (validated token) field name, ASCII case-insensitively.
        init?(name: UnsafeRawBufferPointer) {
            switch name.count {
            case 4 where Self.spells(name, "host"): self = .host
            case 6 where Self.spells(name, "expect"): self = .expect
            case 10 where Self.spells(name, "connection"): self = .connection
            case 14 where Self.spells(name, "content-length"): self = .contentLength
            case 17 where Self.spells(name, "transfer-encoding"): self = .transferEncoding
            default: return nil
            }
        }

        /// Whether `name` is `lower` ignoring ASCII case. `| 0x20` folds only letters here: the other
        /// token characters it could confuse (`-` with CR) never reach it, the name is all tchar.
        private static func spells(_ name: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
            let l = lower.utf8Start
            for i in 0..<name.count where name[i] | 0x20 != l[i] { return false }
            return true
        }
    }

    /// The first `byte` in `bytes[from...]`.
    private static func index(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        var i = from
        while i < bytes.count {
            if bytes[i] == byte { return i }
            i += 1
        }
        return nil
    }

    /// Whether `bytes` hold a control character other than HT, or DEL (RFC 9110 field-value). Eight bytes at a
    /// time, since every request carries a ~200-byte Authorization value: a word with no byte below 0x20 and none
    /// equal to 0x7F is passed whole (the classic "has a byte less than n" test, exact as a yes/no); from the first
    /// word that may hold one (a tab, say), the rest is checked byte by byte.
    static func hasControl(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        if let base = bytes.baseAddress {
            while i + 8 <= bytes.count {
                let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let below20 = (word &- ones &* 0x20) & ~word & highs
                let delMask = word ^ (ones &* 0x7F)
                let del = (delMask &- ones) & ~delMask & highs
                if below20 | del != 0 { break }
                i += 8
            }
        }
        while i < bytes.count {
            let b = bytes[i]
            if (b < 0x20 && b != 0x09) || b == 0x7F { return true }
            i += 1
        }
        return false
    }

    private static func allTokens(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for b in bytes where !isToken(b) { return false }
        return true
    }

    /// Lower-cased, trimmed, non-empty elements of a comma-separated list.
    static func tokens(_ value: String) -> [String] {
        value.split(separator: ",").compactMap {
            let t = $0.trimmedOWS().lowercased()
            return t.isEmpty ? nil : t
        }
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    /// RFC 9110 tchar, as two bit masks over the ASCII range (one shift and test per byte):
    /// `!#$%&'*+-.^_`|~`, digits and letters.
    @inlinable
    public static func isToken(_ b: UInt8) -> Bool {
        if b < 64 { return (0x03FF_6CFA_0000_0000 as UInt64) &>> UInt64(b) & 1 == 1 }
        if b < 128 { return (0x57FF_FFFF_C7FF_FFFE as UInt64) &>> UInt64(b - 64) & 1 == 1 }
        return false
    }
}

extension StringProtocol {
    fileprivate func trimmedOWS() -> String {
        let chars: [Character] = [" ", "\t"]
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}
