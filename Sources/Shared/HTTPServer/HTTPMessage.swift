import Foundation
import Synchronization

/// Header fields in arrival order. Lookups are ASCII case-insensitive; names keep
/// the case the peer sent so that SigV4 canonicalisation sees what was signed.
public struct HTTPFields: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (name: String, value: String)
    public private(set) var entries: [Element] = []

    public init() {}
    public init(_ entries: [Element]) { self.entries = entries }
    public init(dictionaryLiteral elements: (String, String)...) {
        entries = elements.map { (name: $0.0, value: $0.1) }
    }

    public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }
    public var count: Int { entries.count }

    /// The first value of `name`, or nil.
    public subscript(name: String) -> String? {
        guard let i = firstIndex(of: name) else { return nil }
        return entries[i].value
    }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        guard var i = firstIndex(of: name) else { return [] }
        var out = [entries[i].value]
        i += 1
        while let next = firstIndex(of: name, from: i) {
            out.append(entries[next].value)
            i = next + 1
        }
        return out
    }

    /// The position of the first field named `name` (any case) at or after `start`.
    ///
    /// The request path looks names up a few dozen times per request, each a scan of every field: the
    /// byte length (stored in the string, no byte read) rules out nearly every field before any byte is
    /// compared, and the fields are read in place, so a mismatch costs no retain/release of a name.
    private func firstIndex(of name: String, from start: Int = 0) -> Int? {
        let length = name.utf8.count
        return entries.withUnsafeBufferPointer { fields -> Int? in
            var i = start
            while i < fields.count {
                if fields[i].name.utf8.count == length && fields[i].name.caseInsensitiveEquals(name) { return i }
                i += 1
            }
            return nil
        }
    }

    public func contains(_ name: String) -> Bool { firstIndex(of: name) != nil }

    public mutating func add(_ name: String, _ value: String) { entries.append((name: name, value: value)) }

    /// Replaces every value of `name` with one value.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) {
        guard firstIndex(of: name) != nil else { return }
        entries.removeAll { $0.name.caseInsensitiveEquals(name) }
    }

    /// Reserves room for `capacity` fields (one allocation when the count is known in advance).
    public mutating func reserveCapacity(_ capacity: Int) { entries.reserveCapacity(capacity) }
}

extension String {
    /// ASCII case-insensitive comparison (header names, tokens); no Unicode folding.
    /// Runs for every header against every name the request path looks for, so it compares the
    /// contiguous UTF-8 of both strings directly (no iterator over `UTF8View`).
    public func caseInsensitiveEquals(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        let fast = utf8.withContiguousStorageIfAvailable { a in
            other.utf8.withContiguousStorageIfAvailable { b in Self.asciiCaseInsensitiveEquals(a, b) }
        }
        if let fast, let equal = fast { return equal }
        return Self.asciiCaseInsensitiveEquals(Array(utf8), Array(other.utf8))
    }

    /// ASCII lower-casing (header names, hex digits): no Unicode case mapping, and the string itself, not a copy,
    /// when it has no upper-case letter (the common case on the request path, where a copy is an allocation).
    public func asciiLowercased() -> String {
        let upper = utf8.withContiguousStorageIfAvailable { ASCIICase.containsUpper($0) }
            ?? utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
        guard upper else { return self }
        // Written straight into the new string (up to 15 bytes it stays inline; no mapped byte array first).
        return String(unsafeUninitializedCapacity: utf8.count) { out in
            var count = 0
            for b in utf8 {
                out[count] = ASCIICase.lowered(b)
                count += 1
            }
            return count
        }
    }

    /// ASCII case-insensitive `hasPrefix` (header-name families such as `x-amz-checksum-`).
    public func caseInsensitiveHasPrefix(_ prefix: String) -> Bool {
        let n = prefix.utf8.count
        guard utf8.count >= n else { return false }
        let fast = utf8.withContiguousStorageIfAvailable { a in
            prefix.utf8.withContiguousStorageIfAvailable { b in
                Self.asciiCaseInsensitiveEquals(UnsafeBufferPointer(rebasing: a[..<n]), b)
            }
        }
        if let fast, let equal = fast { return equal }
        return Self.asciiCaseInsensitiveEquals(Array(utf8.prefix(n)), Array(prefix.utf8))
    }

    /// The contiguous form (every native string): eight bytes at a time.
    private static func asciiCaseInsensitiveEquals(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        return a.count == 0 || ASCIICase.equalFolded(a.baseAddress!, b.baseAddress!, count: a.count)
    }

    private static func asciiCaseInsensitiveEquals<C: RandomAccessCollection<UInt8>>(_ a: C, _ b: C) -> Bool
        where C.Index == Int
    {
        guard a.count == b.count else { return false }
        var i = a.startIndex, j = b.startIndex
        while i < a.endIndex {
            let x = a[i], y = b[j]
            if x != y {
                let lx = (x >= 65 && x <= 90) ? x | 0x20 : x
                let ly = (y >= 65 && y <= 90) ? y | 0x20 : y
                if lx != ly { return false }
            }
            i += 1
            j += 1
        }
        return true
    }
}

/// ASCII case folding of header names and tokens, eight bytes at a time where it runs per header (issue 12):
/// only `A`–`Z` fold; every other byte, non-ASCII included, compares exactly.
public enum ASCIICase {
    @inlinable @inline(__always)
    public static func lowered(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b | 0x20 : b }

    /// 0x80 in each byte of `word` that is `A`–`Z`, 0 elsewhere. Each byte's low 7 bits plus a bias sets its high
    /// bit iff the byte is at least `A` (resp. above `Z`); no sum carries into the next byte (at most 0x7f + 0x3f).
    @inlinable @inline(__always)
    public static func upperMask(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let heptets = word & (0x7f &* ones)
        let atLeastA = heptets &+ ((0x80 - 0x41) &* ones)
        let aboveZ = heptets &+ ((0x80 - 0x5b) &* ones)
        return atLeastA & ~aboveZ & ~word & (0x80 &* ones)
    }

    /// The eight bytes of `word`, each lowered as by `lowered(_:)`.
    @inlinable @inline(__always)
    public static func lowered(_ word: UInt64) -> UInt64 { word | upperMask(word) >> 2 }

    /// Whether any byte is `A`–`Z`.
    @inlinable
    public static func containsUpper(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let n = bytes.count
        var i = 0
        while i + 8 <= n {
            if upperMask(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) != 0 { return true }
            i += 8
        }
        // The rest as the last eight bytes (overlapping bytes already checked, which changes nothing).
        if i < n, n >= 8 { return upperMask(UnsafeRawPointer(base + (n - 8)).loadUnaligned(as: UInt64.self)) != 0 }
        while i < n {
            if base[i] >= 65 && base[i] <= 90 { return true }
            i += 1
        }
        return false
    }

    /// Whether `count` bytes at `a` and at `b` are equal once both are lowered.
    @inlinable
    public static func equalFolded(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, count n: Int) -> Bool {
        var i = 0
        while i + 8 <= n {
            let x = UnsafeRawPointer(a + i).loadUnaligned(as: UInt64.self), y = UnsafeRawPointer(b + i).loadUnaligned(as: UInt64.self)
            if x != y && lowered(x) != lowered(y) { return false }
            i += 8
        }
        // The rest as the last eight bytes of both (overlapping bytes already compared equal).
        if i < n, n >= 8 {
            let x = UnsafeRawPointer(a + (n - 8)).loadUnaligned(as: UInt64.self)
            let y = UnsafeRawPointer(b + (n - 8)).loadUnaligned(as: UInt64.self)
            return x == y || lowered(x) == lowered(y)
        }
        while i < n {
            if a[i] != b[i] && lowered(a[i]) != lowered(b[i]) { return false }
            i += 1
        }
        return true
    }
}

/// A parsed request head. `target` is the raw request-target as received
/// (origin-form, percent-encoding untouched), which SigV4 needs verbatim.
public struct HTTPRequestHead: Sendable {
    public var method: String
    public var target: String
    public var headers: HTTPFields
    /// Minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    public var minorVersion: Int = 1

    public init(method: String, target: String, headers: HTTPFields, minorVersion: Int = 1) {
        self.method = method
        self.target = target
        self.headers = headers
        self.minorVersion = minorVersion
    }

    /// The raw path part of the target (before `?`), still percent-encoded.
    public var rawPath: String {
        if let q = queryMark { return String(target[..<q]) }
        return target
    }

    /// The raw query (after `?`), nil when absent.
    public var rawQuery: String? {
        guard let q = queryMark else { return nil }
        return String(target[target.utf8.index(after: q)...])
    }

    /// The first `?` of the target. Searched as bytes in the target's contiguous UTF-8 (not as Characters,
    /// nor through the generic `UTF8View` search, which cost ~300 instructions per call): read on every request.
    private var queryMark: String.Index? {
        let offset = target.utf8.withContiguousStorageIfAvailable { bytes -> Int? in
            var i = 0
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "?") { return i }
                i += 1
            }
            return nil
        }
        guard let offset else { return target.utf8.firstIndex(of: UInt8(ascii: "?")) }
        return offset.map { target.utf8.index(target.utf8.startIndex, offsetBy: $0) }
    }
}

/// A response head. Framing headers (`Content-Length` / `Transfer-Encoding`,
/// `Connection`) are decided by the server from `contentLength`.
public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: HTTPFields
    /// Body length when known; nil means the server frames the body as chunked
    /// (close-delimited for an HTTP/1.0 client).
    public var contentLength: Int64?

    public init(status: Int, headers: HTTPFields = HTTPFields(), contentLength: Int64? = 0) {
        self.status = status
        self.headers = headers
        self.contentLength = contentLength
    }
}

/// The body of one request, read incrementally by the handler. The first read
/// sends `100 Continue` when the client asked for it; reading nothing and
/// answering with an error is how a handler refuses a body early.
public protocol RequestBody: AnyObject {
    /// `Content-Length` of the request; nil for chunked bodies.
    var declaredLength: Int64? { get }
    /// Reads up to `buffer.count` bytes; returns 0 at the end of the body.
    /// Throws on a broken connection, a timeout or bad chunked framing.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension RequestBody {
    /// Reads the whole body into memory, refusing more than `limit` bytes.
    /// Only for small XML bodies (multipart completion, delete lists).
    public func readAll(limit: Int) throws -> [UInt8] {
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { throw BodyTooLarge(limit: limit) }
        }
    }
}

/// `readAll(limit:)` met more bytes than allowed.
public struct BodyTooLarge: Error, Sendable {
    public let limit: Int
    public init(limit: Int) { self.limit = limit }
}

/// Where a handler writes its response. Once the head is written, an error
/// (thrown by the handler or a short body) makes the server close the
/// connection so the client sees a failed transfer, never a wrong one.
public protocol ResponseWriter: AnyObject {
    var headWritten: Bool { get }
    func writeHead(_ head: HTTPResponseHead) throws
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Ends the body (terminating chunk for chunked bodies).
    func finish() throws
}

extension ResponseWriter {
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Writes a complete response with a small in-memory body.
    public func respond(status: Int, headers: HTTPFields = HTTPFields(), body: [UInt8] = []) throws {
        try writeHead(HTTPResponseHead(status: status, headers: headers, contentLength: Int64(body.count)))
        if !body.isEmpty { try write(body) }
        try finish()
    }
}

/// Per-request facts the server knows before any handler runs.
public struct RequestContext: Sendable {
    /// Also sent to the client as `x-amz-request-id`.
    public var requestID: RequestID
    public var remoteAddress: String
    public var startedAt: ContinuousClock.Instant
    /// The connection the request came on; the S3 layer marks it authenticated.
    public var connection: ConnectionHandle

    public init(requestID: RequestID, remoteAddress: String, startedAt: ContinuousClock.Instant,
                connection: ConnectionHandle? = nil) {
        self.requestID = requestID
        self.remoteAddress = remoteAddress
        self.startedAt = startedAt
        self.connection = connection ?? ConnectionHandle(remoteAddress: remoteAddress)
    }
}

/// What a handler may know and say about its connection.
///
/// A connection starts unauthenticated. Once a request on it proved its credentials (a verified
/// signature), the handler calls `markAuthenticated()`: the connection then leaves the small budget of
/// unauthenticated connections (`HTTPServerConfiguration.maxUnauthenticatedConnections`) and is no longer
/// closed by `unauthenticatedTimeout`. Thread-safe.
public final class ConnectionHandle: Sendable {
    public let remoteAddress: String
    private let authenticated: Atomic<Bool>

    public init(remoteAddress: String = "", authenticated: Bool = false) {
        self.remoteAddress = remoteAddress
        self.authenticated = Atomic(authenticated)
    }

    /// Call after a request on this connection authenticated (idempotent).
    public func markAuthenticated() { authenticated.store(true, ordering: .releasing) }

    public var isAuthenticated: Bool { authenticated.load(ordering: .acquiring) }
}

/// The application side of the server: one call per request, on the
/// connection's thread, with blocking I/O on `body` and `response`.
///
/// A thrown error before the head is written becomes a `500 InternalError`;
/// after the head it closes the connection. Returning without `finish()` is
/// treated the same way.
public protocol HTTPRequestHandler: Sendable {
    func handle(_ head: HTTPRequestHead, body: RequestBody, response: ResponseWriter, context: RequestContext) throws
}
