/// Writes a response head's bytes in one pass over the handler's fields: the status line, the fields
/// (checked: a name must be a token, a value must not contain CR, LF or NUL), then what the server adds:
/// `Date` and `x-amz-request-id` unless the handler set them, the framing (`Content-Length` or
/// `Transfer-Encoding: chunked`) and `Connection`. Fields that decide the framing (`Content-Length`,
/// `Transfer-Encoding`, `Connection`) are the server's alone: a handler's are dropped.
///
/// Pure and allocation-light: one byte array, reserved once, no `String` building (assembling the head with
/// string interpolation and case-insensitive comparisons per field cost ≈ 22k instructions of a 4 KiB
/// pass-through GET under callgrind).
struct ResponseHeadEncoder {
    enum Framing: Equatable {
        /// No framing field (204, 304, a bodiless status).
        case none
        case contentLength(Int64)
        case chunked
        /// HEAD, or an HTTP/1.0 response of unknown length: neither field.
        case omitted
    }

    enum ConnectionField: Equatable {
        case none
        case close
        /// `Connection: keep-alive` (for an HTTP/1.0 client).
        case keepAlive
    }

    /// The first invalid field's name.
    struct InvalidField: Error, Equatable {
        var name: String
    }

    /// The fields a handler must not set, and the ones the server only adds when missing.
    enum Known: Equatable { case contentLength, transferEncoding, connection, date, requestID, other }

    static func encode(status: Int, reason: String, headers: HTTPFields, date: String, requestID: RequestID,
                       framing: Framing, connection: ConnectionField) throws(InvalidField) -> [UInt8] {
        var out: [UInt8] = []
        try encode(into: &out, status: status, reason: reason, headers: headers, date: date, requestID: requestID,
                   framing: framing, connection: connection)
        return out
    }

    /// `encode`, appended to `out` (a buffer reused from request to request keeps its capacity: no allocation).
    /// On a thrown error `out` holds a partial head.
    static func encode(into out: inout [UInt8], status: Int, reason: String, headers: HTTPFields, date: String,
                       requestID: RequestID, framing: Framing, connection: ConnectionField) throws(InvalidField) {
        out.reserveCapacity(out.count + 256 + headers.count * 64)
        append("HTTP/1.1 ", to: &out)
        appendDecimal(Int64(status), to: &out)
        out.append(0x20)
        append(reason, to: &out)
        appendCRLF(to: &out)
        var hasDate = false, hasID = false
        for (name, value) in headers {
            let known = try check(name: name, value: value)
            switch known {
            case .contentLength, .transferEncoding, .connection: continue
            case .date: hasDate = true
            case .requestID: hasID = true
            case .other: break
            }
            append(name, to: &out)
            out.append(0x3A)
            out.append(0x20)
            append(value, to: &out)
            appendCRLF(to: &out)
        }
        if !hasDate {
            append("Date: ", to: &out)
            append(date, to: &out)
            appendCRLF(to: &out)
        }
        if !hasID {
            append("x-amz-request-id: ", to: &out)
            requestID.withUTF8 { out.append(contentsOf: $0) }
            appendCRLF(to: &out)
        }
        switch framing {
        case .contentLength(let n):
            append("Content-Length: ", to: &out)
            appendDecimal(n, to: &out)
            appendCRLF(to: &out)
        case .chunked:
            append("Transfer-Encoding: chunked\r\n", to: &out)
        case .none, .omitted:
            break
        }
        switch connection {
        case .close: append("Connection: close\r\n", to: &out)
        case .keepAlive: append("Connection: keep-alive\r\n", to: &out)
        case .none: break
        }
        appendCRLF(to: &out)
    }

    // Appends through contiguous buffers (a memcpy each): appending a `String.UTF8View` goes through the
    // generic sequence path, ≈ 180 instructions per piece.
    private static func append(_ text: StaticString, to out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    private static func append(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    private static func appendCRLF(to out: inout [UInt8]) {
        out.append(0x0D)
        out.append(0x0A)
    }

    /// Validates one field and says which it is.
    static func check(name: String, value: String) throws(InvalidField) -> Known {
        var name = name
        var value = value
        let known = name.withUTF8 { bytes -> Known? in
            guard !bytes.isEmpty, bytes.allSatisfy(HTTPRequestParser.isToken) else { return nil }
            return classify(bytes)
        }
        guard let known else { throw InvalidField(name: name) }
        switch known {
        case .contentLength, .transferEncoding, .connection: return known  // dropped anyway
        default: break
        }
        let clean = value.withUTF8 { bytes in !bytes.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 } }
        guard clean else { throw InvalidField(name: name) }
        return known
    }

    /// Which field a (valid token) name is, ASCII case-insensitively.
    static func classify(_ name: UnsafeBufferPointer<UInt8>) -> Known {
        switch name.count {
        case 4: return matches(name, "date") ? .date : .other
        case 10: return matches(name, "connection") ? .connection : .other
        case 14: return matches(name, "content-length") ? .contentLength : .other
        case 16: return matches(name, "x-amz-request-id") ? .requestID : .other
        case 17: return matches(name, "transfer-encoding") ? .transferEncoding : .other
        default: return .other
        }
    }

    /// `lower` is lower-case letters and '-'; a token byte ORed with 0x20 equals it only if it is the same
    /// letter in either case (or the same '-').
    private static func matches(_ name: UnsafeBufferPointer<UInt8>, _ lower: StaticString) -> Bool {
        let expected = UnsafeBufferPointer(start: lower.utf8Start, count: lower.utf8CodeUnitCount)
        for i in 0..<name.count where name[i] | 0x20 != expected[i] { return false }
        return true
    }

    private static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
        var n = UInt64(max(0, value))
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[19 - count] = 0x30 + UInt8(n % 10)
                n /= 10
                count += 1
            } while n > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(20 - count)...]).assumingMemoryBound(to: UInt8.self))
        }
    }
}
