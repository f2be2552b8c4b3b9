/// KMIP's Tag-Type-Length-Value encoding (KMIP 1.x, §9.1): a 3-byte tag, a 1-byte type, a 4-byte
/// big-endian length, then the value padded with zeros to a multiple of 8 bytes. Structures nest items.
///
/// The decoder is strict and bounded: every length is checked against what is left and against the
/// type's fixed size, padding must be zero, text must be UTF-8, nesting depth and item count are
/// capped, and nothing may follow the top-level item. Pure: no I/O.
public struct TTLV: Equatable, Sendable {
    /// 24-bit tag, e.g. `0x420078` (Request Message).
    public var tag: UInt32
    public var value: Value

    public enum Value: Equatable, Sendable {
        case structure([TTLV])
        case integer(Int32)
        case longInteger(Int64)
        /// Two's-complement big-endian, a multiple of 8 bytes.
        case bigInteger([UInt8])
        case enumeration(UInt32)
        case boolean(Bool)
        case textString(String)
        case byteString([UInt8])
        /// Seconds since the Unix epoch.
        case dateTime(Int64)
        case interval(UInt32)

        var typeByte: UInt8 {
            switch self {
            case .structure: return 0x01
            case .integer: return 0x02
            case .longInteger: return 0x03
            case .bigInteger: return 0x04
            case .enumeration: return 0x05
            case .boolean: return 0x06
            case .textString: return 0x07
            case .byteString: return 0x08
            case .dateTime: return 0x09
            case .interval: return 0x0A
            }
        }
    }

    public init(_ tag: UInt32, _ value: Value) {
        self.tag = tag
        self.value = value
    }

    public static func structure(_ tag: UInt32, _ items: [TTLV]) -> TTLV { TTLV(tag, .structure(items)) }

    // MARK: Reading values

    /// The first direct child with `tag` (structures only).
    public subscript(_ tag: UInt32) -> TTLV? {
        guard case .structure(let items) = value else { return nil }
        return items.first { $0.tag == tag }
    }

    /// Every direct child with `tag`.
    public func children(_ tag: UInt32) -> [TTLV] {
        guard case .structure(let items) = value else { return [] }
        return items.filter { $0.tag == tag }
    }

    public var enumeration: UInt32? { if case .enumeration(let v) = value { return v }; return nil }
    public var integer: Int32? { if case .integer(let v) = value { return v }; return nil }
    public var text: String? { if case .textString(let v) = value { return v }; return nil }
    public var bytes: [UInt8]? { if case .byteString(let v) = value { return v }; return nil }

    // MARK: Encoding

    /// The item's bytes (header, value, padding).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    func encode(into out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: tag >> 16))
        out.append(UInt8(truncatingIfNeeded: tag >> 8))
        out.append(UInt8(truncatingIfNeeded: tag))
        out.append(value.typeByte)
        let lengthAt = out.count
        out.append(contentsOf: [0, 0, 0, 0])
        let start = out.count
        switch value {
        case .structure(let items): for item in items { item.encode(into: &out) }
        case .integer(let v): Self.appendBE(UInt32(bitPattern: v), &out)
        case .longInteger(let v): Self.appendBE(UInt64(bitPattern: v), &out)
        case .bigInteger(let v): out.append(contentsOf: v)
        case .enumeration(let v): Self.appendBE(v, &out)
        case .boolean(let v): Self.appendBE(UInt64(v ? 1 : 0), &out)
        case .textString(let v): out.append(contentsOf: Array(v.utf8))
        case .byteString(let v): out.append(contentsOf: v)
        case .dateTime(let v): Self.appendBE(UInt64(bitPattern: v), &out)
        case .interval(let v): Self.appendBE(v, &out)
        }
        let length = out.count - start
        out[lengthAt] = UInt8(truncatingIfNeeded: length >> 24)
        out[lengthAt + 1] = UInt8(truncatingIfNeeded: length >> 16)
        out[lengthAt + 2] = UInt8(truncatingIfNeeded: length >> 8)
        out[lengthAt + 3] = UInt8(truncatingIfNeeded: length)
        let padding = (8 - length % 8) % 8
        out.append(contentsOf: repeatElement(0, count: padding))
    }

    private static func appendBE<T: FixedWidthInteger>(_ value: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }

    // MARK: Decoding

    /// Bounds on what the decoder accepts.
    public struct Limits: Sendable {
        public var maxMessageSize = 1 << 20
        public var maxDepth = 16
        public var maxItems = 4096
        public init() {}
    }

    /// The size of the whole message whose first 8 bytes are `header` (for framing a stream):
    /// header + value + padding. Checks the tag prefix, that the top item is a structure and the limit.
    public static func messageSize(header: some Collection<UInt8>, limits: Limits = Limits()) throws(TTLVError) -> Int {
        let h = Array(header.prefix(8))
        guard h.count == 8 else { throw TTLVError("a TTLV header has 8 bytes, got \(h.count)") }
        guard h[0] == 0x42 || h[0] == 0x54 else { throw TTLVError("tag \(hex(h[0..<3])) is not a KMIP tag (0x42xxxx or 0x54xxxx)") }
        guard h[3] == 0x01 else { throw TTLVError("a KMIP message is a structure (type 0x01), got type \(hex([h[3]]))") }
        let length = Int(h[4]) << 24 | Int(h[5]) << 16 | Int(h[6]) << 8 | Int(h[7])
        guard length % 8 == 0 else { throw TTLVError("a structure's length must be a multiple of 8, got \(length)") }
        guard length <= limits.maxMessageSize - 8 else {
            throw TTLVError("message of \(length + 8) bytes exceeds the limit of \(limits.maxMessageSize)")
        }
        return 8 + length
    }

    /// Decodes exactly one item that spans all of `bytes`.
    public static func decode(_ bytes: [UInt8], limits: Limits = Limits()) throws(TTLVError) -> TTLV {
        guard bytes.count <= limits.maxMessageSize else {
            throw TTLVError("message of \(bytes.count) bytes exceeds the limit of \(limits.maxMessageSize)")
        }
        var decoder = Decoder(bytes: bytes, limits: limits)
        let item = try decoder.item(depth: 0, end: bytes.count)
        guard decoder.offset == bytes.count else {
            throw TTLVError("\(bytes.count - decoder.offset) bytes follow the message")
        }
        return item
    }

    private struct Decoder {
        let bytes: [UInt8]
        let limits: Limits
        var offset = 0
        var items = 0

        mutating func item(depth: Int, end: Int) throws(TTLVError) -> TTLV {
            guard depth < limits.maxDepth else { throw TTLVError("structures nested deeper than \(limits.maxDepth)") }
            items += 1
            guard items <= limits.maxItems else { throw TTLVError("more than \(limits.maxItems) items") }
            guard end - offset >= 8 else { throw TTLVError("truncated item header at offset \(offset)") }
            let tag = UInt32(bytes[offset]) << 16 | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2])
            guard bytes[offset] == 0x42 || bytes[offset] == 0x54 else {
                throw TTLVError("tag \(hex(bytes[offset..<offset + 3])) at offset \(offset) is not a KMIP tag")
            }
            let type = bytes[offset + 3]
            let length = Int(bytes[offset + 4]) << 24 | Int(bytes[offset + 5]) << 16 | Int(bytes[offset + 6]) << 8 | Int(bytes[offset + 7])
            offset += 8
            let padded = length + (8 - length % 8) % 8
            guard padded <= end - offset else {
                throw TTLVError("item \(hex(tag)) declares \(length) bytes but only \(end - offset) remain")
            }
            let valueStart = offset
            let valueEnd = offset + length
            func fixed(_ size: Int) throws(TTLVError) {
                guard length == size else { throw TTLVError("item \(hex(tag)) of type \(hex([type])) must have length \(size), got \(length)") }
            }
            let value: Value
            switch type {
            case 0x01:
                guard length % 8 == 0 else { throw TTLVError("structure \(hex(tag)) has length \(length), not a multiple of 8") }
                var children: [TTLV] = []
                while offset < valueEnd {
                    children.append(try item(depth: depth + 1, end: valueEnd))
                }
                value = .structure(children)
            case 0x02:
                try fixed(4)
                value = .integer(Int32(bitPattern: readBE(valueStart, 4).truncatingToUInt32))
            case 0x03:
                try fixed(8)
                value = .longInteger(Int64(bitPattern: readBE(valueStart, 8)))
            case 0x04:
                guard length > 0, length % 8 == 0 else { throw TTLVError("big integer \(hex(tag)) has length \(length), not a positive multiple of 8") }
                value = .bigInteger(Array(bytes[valueStart..<valueEnd]))
            case 0x05:
                try fixed(4)
                value = .enumeration(readBE(valueStart, 4).truncatingToUInt32)
            case 0x06:
                try fixed(8)
                let raw = readBE(valueStart, 8)
                guard raw <= 1 else { throw TTLVError("boolean \(hex(tag)) is neither 0 nor 1") }
                value = .boolean(raw == 1)
            case 0x07:
                guard let text = String(validating: bytes[valueStart..<valueEnd], as: UTF8.self) else {
                    throw TTLVError("text string \(hex(tag)) is not valid UTF-8")
                }
                value = .textString(text)
            case 0x08:
                value = .byteString(Array(bytes[valueStart..<valueEnd]))
            case 0x09:
                try fixed(8)
                value = .dateTime(Int64(bitPattern: readBE(valueStart, 8)))
            case 0x0A:
                try fixed(4)
                value = .interval(readBE(valueStart, 4).truncatingToUInt32)
            default:
                throw TTLVError("item \(hex(tag)) has unknown type \(hex([type]))")
            }
            if type != 0x01 { offset = valueEnd }
            guard offset == valueEnd else { throw TTLVError("structure \(hex(tag)) children overrun its length") }
            for i in valueEnd..<(valueStart + padded) where bytes[i] != 0 {
                throw TTLVError("item \(hex(tag)) has non-zero padding")
            }
            offset = valueStart + padded
            return TTLV(tag, value)
        }

        func readBE(_ at: Int, _ count: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in 0..<count { v = v << 8 | UInt64(bytes[at + i]) }
            return v
        }
    }

    static func hex(_ tag: UInt32) -> String {
        "0x" + String(tag, radix: 16, uppercase: true).leftPadded(to: 6)
    }

    static func hex(_ bytes: some Collection<UInt8>) -> String {
        "0x" + bytes.map { String($0, radix: 16, uppercase: true).leftPadded(to: 2) }.joined()
    }
}

/// A message that is not valid TTLV, or exceeds the decoder's limits.
public struct TTLVError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { "malformed KMIP message: \(message)" }
}

private extension UInt64 {
    var truncatingToUInt32: UInt32 { UInt32(truncatingIfNeeded: self) }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
