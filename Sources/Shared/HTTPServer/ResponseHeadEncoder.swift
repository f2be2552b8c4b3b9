/// Writes a response head's bytes in one pass over the handler's fields: the status line, the fields
/// (checked: a name must be a token, a value must not contain CR, LF or NUL), then what the server adds:
/// `Date` and `x-amz-request-id` unless the handler set them, the framing (`Content-Length` or
/// `Transfer-Encoding: chunked`) and `Connection`. Fields that decide the framing (`Content-Length`,
/// `Transfer-Encoding`, `Connection`) are the server's alone: a handler's are dropped.
///
/// Pure and allocation-free: it writes into the caller's raw memory (the connection's coalescing buffer), no
/// `String` building (assembling the head with string interpolation and case-insensitive comparisons per field
/// cost ≈ 22k instructions of a 4 KiB pass-through GET under callgrind; appending to a `[UInt8]` ≈ 90 per piece).
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
        func encode(_ out: UnsafeMutableRawBufferPointer) throws(InvalidField) -> Int {
            try ResponseHeadEncoder.encode(into: out, status: status, reason: reason, headers: headers, date: date,
                                           requestID: requestID, framing: framing, connection: connection)
        }
        // Sized by a first pass (which also checks the fields), written by the second.
        let size = try encode(UnsafeMutableRawBufferPointer(start: nil, count: 0))
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            // The fields were checked by the first pass: this one cannot throw.
            count = (try? encode(UnsafeMutableRawBufferPointer(buffer))) ?? 0
        }
    }

    /// Writes the head at the start of `out` (the connection's coalescing buffer, where the head waits for the
    /// first body bytes: no array to build and copy) and returns its length. A length over `out.count` means it
    /// did not fit: what was written is unusable, and the caller needs that many bytes (`encode` returning an
    /// array). On a thrown error `out` holds a partial head.
    static func encode(into out: UnsafeMutableRawBufferPointer, status: Int, reason: String, headers: HTTPFields,
                       date: String, requestID: RequestID, framing: Framing,
                       connection: ConnectionField) throws(InvalidField) -> Int {
        var out = Output(buffer: out)
        out.append("HTTP/1.1 ")
        out.appendDecimal(Int64(status))
        out.append(" ")
        out.append(reason)
        out.append("\r\n")
        var hasDate = false, hasID = false
        for (name, value) in headers {
            let known = try check(name: name, value: value)
            switch known {
            case .contentLength, .transferEncoding, .connection: continue
            case .date: hasDate = true
            case .requestID: hasID = true
            case .other: break
            }
            out.append(name)
            out.append(": ")
            out.append(value)
            out.append("\r\n")
        }
        if !hasDate {
            out.append("Date: ")
            out.append(date)
            out.append("\r\n")
        }
        if !hasID {
            out.append("x-amz-request-id: ")
            requestID.withUTF8 { out.append(UnsafeRawBufferPointer($0)) }
            out.append("\r\n")
        }
        switch framing {
        case .contentLength(let n):
            out.append("Content-Length: ")
            out.appendDecimal(n)
            out.append("\r\n")
        case .chunked:
            out.append("Transfer-Encoding: chunked\r\n")
        case .none, .omitted:
            break
        }
        switch connection {
        case .close: out.append("Connection: close\r\n")
        case .keepAlive: out.append("Connection: keep-alive\r\n")
        case .none: break
        }
        out.append("\r\n")
        return out.count
    }

    /// A write position in raw memory that keeps counting past the end (so one pass both writes what fits
    /// and measures the whole). Pieces are copied from contiguous UTF-8 (a `memcpy` each): appending a
    /// `String.UTF8View` to an array went through the generic sequence path, ≈ 180 instructions per piece.
    private struct Output {
        let buffer: UnsafeMutableRawBufferPointer
        var count = 0

        mutating func append(_ bytes: UnsafeRawBufferPointer) {
            if count + bytes.count <= buffer.count, let base = bytes.baseAddress {
                (buffer.baseAddress! + count).copyMemory(from: base, byteCount: bytes.count)
            }
            count += bytes.count
        }

        mutating func append(_ text: StaticString) {
            append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }

        mutating func append(_ text: String) {
            ResponseHeadEncoder.withUTF8(text) { append(UnsafeRawBufferPointer($0)) }
        }

        mutating func appendDecimal(_ value: Int64) {
            var n = UInt64(max(0, value))
            var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for UInt64.max's 20 digits
            withUnsafeMutableBytes(of: &digits) { d in
                var start = d.count
                repeat {
                    start -= 1
                    d[start] = 0x30 + UInt8(n % 10)
                    n /= 10
                } while n > 0
                append(UnsafeRawBufferPointer(rebasing: d[start...]))
            }
        }
    }

    /// Validates one field and says which it is.
    static func check(name: String, value: String) throws(InvalidField) -> Known {
        let known = withUTF8(name) { bytes -> Known? in
            guard !bytes.isEmpty, bytes.allSatisfy(HTTPRequestParser.isToken) else { return nil }
            return classify(bytes)
        }
        guard let known else { throw InvalidField(name: name) }
        switch known {
        case .contentLength, .transferEncoding, .connection: return known  // dropped anyway
        default: break
        }
        let clean = withUTF8(value) { bytes in !bytes.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 } }
        guard clean else { throw InvalidField(name: name) }
        return known
    }

    /// `body` over the UTF-8 of `text`, without copying a native (contiguous) String first as
    /// `String.withUTF8`, which is `mutating`, would need (native strings, small ones included, are contiguous).
    private static func withUTF8<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        if let r = try text.utf8.withContiguousStorageIfAvailable(body) { return r }
        var text = text
        return try text.withUTF8(body)
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
}
