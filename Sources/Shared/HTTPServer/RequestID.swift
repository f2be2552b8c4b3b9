import Synchronization

/// A request's id: 64 bits, written as 16 uppercase hex characters (the `x-amz-request-id` header, error
/// documents, log lines, spans).
///
/// A value, not a `String`: sixteen characters are one over Swift's small-string limit, so a `String` id cost a
/// heap allocation per request although most requests only ever write it into their response head. The text is
/// made only where a `String` is needed (logs, error documents); the head encoder copies `withUTF8`'s bytes.
public struct RequestID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    private static let digits: StaticString = "0123456789ABCDEF"

    /// Calls `body` with the 16 ASCII bytes (on the stack; valid only during the call).
    public func withUTF8<R, E: Error>(_ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
        var bytes: (UInt64, UInt64) = (0, 0)
        return try withUnsafeMutableBytes(of: &bytes) { raw throws(E) -> R in
            let digits = Self.digits.utf8Start
            for i in 0..<16 { raw[i] = digits[Int((value >> UInt64(60 - 4 * i)) & 0xF)] }
            return try body(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: 16))
        }
    }

    /// The 16-character text.
    public var text: String { withUTF8 { String(decoding: $0, as: UTF8.self) } }

    public var description: String { text }
}

/// Request IDs: a random per-process prefix (high 32 bits) plus a counter (low 32 bits, from a random start).
public enum RequestIDGenerator {
    private static let prefix = UInt32.random(in: 0...UInt32.max)
    private static let counter = Atomic<UInt32>(UInt32.random(in: 0...UInt32.max))

    public static func next() -> RequestID {
        make(prefix: prefix, count: counter.add(1, ordering: .relaxed).newValue)
    }

    /// The id of the `count`th request of a process whose prefix is `prefix`.
    static func make(prefix: UInt32, count: UInt32) -> RequestID {
        RequestID(UInt64(prefix) << 32 | UInt64(count))
    }
}
