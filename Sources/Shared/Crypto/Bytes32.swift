import COpenSSL

/// 32 bytes held inline: a SHA-256 digest or an HMAC-SHA256 tag without a heap allocation. SigV4 computes four
/// of them per request (canonical-request hash and signature, when verifying and when re-signing); as `[UInt8]`
/// each was a malloc and a free (issue 12).
///
/// `==` is constant-time: these values are compared with signatures a client sent.
///
/// The accessors are `@inlinable`: called across modules as unspecialised generics they cost ≈ 300 instructions each.
public struct Bytes32: Sendable, Equatable {
    @usableFromInline var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    /// 32 zero bytes.
    @inlinable public init() {}

    /// The bytes of `bytes`, which must hold exactly 32.
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 32, "Bytes32 from \(bytes.count) bytes")
        withUnsafeMutableBytes { out in bytes.withUnsafeBytes { out.copyMemory(from: $0) } }
    }

    @inlinable public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var copy = storage
        return try Swift.withUnsafeBytes(of: &copy) { bytes throws(E) in try body(bytes) }
    }

    @inlinable public mutating func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try Swift.withUnsafeMutableBytes(of: &storage) { bytes throws(E) in try body(bytes) }
    }

    /// The bytes as an array (APIs that keep `[UInt8]`). Reserved and appended: `[UInt8](repeating:count:)` takes
    /// an unspecialised allocation path (a runtime metadata lookup of a few hundred instructions).
    @inlinable public var array: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    /// Constant-time comparison (`CRYPTO_memcmp`).
    public static func == (a: Bytes32, b: Bytes32) -> Bool {
        a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, 32) == 0 } }
    }

    /// SHA-256 of `data`, on the calling thread's reused context (`ThreadSHA256`).
    public static func sha256(_ data: UnsafeRawBufferPointer) -> Bytes32 {
        ThreadSHA256.hash32(data)
    }
}
