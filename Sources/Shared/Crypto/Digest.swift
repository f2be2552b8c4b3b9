import COpenSSL
import Foundation

/// Errors from the OpenSSL wrappers. They signal a broken library or impossible
/// input sizes, never a user mistake, so they carry the OpenSSL error text.
public struct CryptoError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let detail: String

    init(_ operation: String) {
        self.operation = operation
        let code = ERR_get_error()
        if code == 0 {
            detail = "unknown OpenSSL error"
        } else {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            detail = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    public var description: String { "\(operation) failed: \(detail)" }
}

/// The message digests the gateway uses (SigV4, Content-MD5, secret hashes, S3's flexible checksums).
public enum DigestAlgorithm: Sendable {
    case sha256
    case md5
    /// Only for what S3 defines with it: SigV2 signatures and `x-amz-checksum-sha1`.
    case sha1

    var evp: OpaquePointer {
        switch self {
        case .sha256: return EVP_sha256()
        case .md5: return EVP_md5()
        case .sha1: return EVP_sha1()
        }
    }

    public var outputSize: Int {
        switch self {
        case .sha256: return 32
        case .md5: return 16
        case .sha1: return 20
        }
    }
}

/// An incremental message digest over OpenSSL's EVP interface; owns its context.
public struct Digest: ~Copyable {
    private let context: OpaquePointer
    public let algorithm: DigestAlgorithm

    public init(_ algorithm: DigestAlgorithm) {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        guard EVP_DigestInit_ex(context, algorithm.evp, nil) == 1 else {
            fatalError("EVP_DigestInit_ex: \(CryptoError("digest init"))")
        }
        self.context = context
        self.algorithm = algorithm
    }

    deinit { EVP_MD_CTX_free(context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public mutating func update<Bytes: ContiguousBytes>(_ bytes: Bytes) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ string: String) {
        var string = string
        string.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// Returns the digest; the value cannot be used afterwards.
    public consuming func finalize() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &output, &length)
        return Array(output.prefix(Int(length)))
    }

    /// One-shot digest of `bytes`.
    public static func hash<Bytes: ContiguousBytes>(_ algorithm: DigestAlgorithm, _ bytes: Bytes) -> [UInt8] {
        if algorithm == .sha256 { return bytes.withUnsafeBytes { ThreadSHA256.hash($0) } }
        var digest = Digest(algorithm)
        digest.update(bytes)
        return digest.finalize()
    }

    public static func sha256(_ string: String) -> [UInt8] {
        var string = string
        return string.withUTF8 { ThreadSHA256.hash(UnsafeRawBufferPointer($0)) }
    }
}

/// One-shot HMACs: HMAC-SHA256 for SigV4, HMAC-SHA1 for SigV2 (S3's legacy signatures).
public enum HMAC {
    public static func sha256<Key: ContiguousBytes, Message: ContiguousBytes>(key: Key, data: Message) -> [UInt8] {
        key.withUnsafeBytes { k in data.withUnsafeBytes { ThreadSHA256.hmac(key: k, data: $0) } }
    }

    public static func sha256<Key: ContiguousBytes>(key: Key, string: String) -> [UInt8] {
        var string = string
        return key.withUnsafeBytes { k in string.withUTF8 { ThreadSHA256.hmac(key: k, data: UnsafeRawBufferPointer($0)) } }
    }

    public static func sha1<Key: ContiguousBytes, Message: ContiguousBytes>(key: Key, data: Message) -> [UInt8] {
        mac(EVP_sha1(), size: 20, key: key, data: data)
    }

    public static func sha1<Key: ContiguousBytes>(key: Key, string: String) -> [UInt8] {
        sha1(key: key, data: Array(string.utf8))
    }

    private static func mac<Key: ContiguousBytes, Message: ContiguousBytes>(_ md: OpaquePointer, size: Int, key: Key,
                                                                            data: Message) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: size)
        var length: UInt32 = 0
        key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                _ = COpenSSL.HMAC(md, k.baseAddress, Int32(k.count),
                                  d.baseAddress?.assumingMemoryBound(to: UInt8.self), d.count,
                                  &output, &length)
            }
        }
        return output
    }
}

/// Cryptographically secure random bytes from OpenSSL's DRBG.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        guard count == 0 || RAND_bytes(&output, Int32(count)) == 1 else {
            fatalError("RAND_bytes failed: \(CryptoError("random"))")
        }
        return output
    }

    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        guard RAND_bytes(base.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1 else {
            fatalError("RAND_bytes failed: \(CryptoError("random"))")
        }
    }
}

/// Hex and base64 helpers used by signatures and metadata.
public enum Encoding {
    /// Appends the lower-case hex digits of `bytes` (signatures are built into byte buffers).
    public static func appendHex(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        // The digits of up to 32 bytes at a time are made in a stack buffer and appended in one copy: two
        // `append`s per byte (a uniqueness and a capacity check each) showed in SigV4's per-request profile.
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 2) { buffer in
            var i = 0
            while i < bytes.count {
                let n = min(32, bytes.count &- i)
                writeHex(UnsafeRawBufferPointer(rebasing: bytes[i..<i &+ n]), to: buffer.baseAddress!)
                out.append(contentsOf: UnsafeRawBufferPointer(start: buffer.baseAddress!, count: 2 &* n))
                i &+= n
            }
        }
    }

    /// Writes the `2 * bytes.count` lower-case hex digits of `bytes` at `out`, two digits per table load
    /// (SigV4 writes its string to sign and Authorization value straight into their buffers).
    public static func writeHex(_ bytes: UnsafeRawBufferPointer, to out: UnsafeMutableRawPointer) {
        hexPairs.withUnsafeBufferPointer { pairs in
            for j in 0..<bytes.count {
                out.storeBytes(of: pairs[Int(bytes[j])].littleEndian, toByteOffset: 2 &* j, as: UInt16.self)
            }
        }
    }

    /// The two lower-case hex digits of each byte value, the first digit in the low byte.
    private static let hexPairs: [UInt16] = (0..<256).map { UInt16(hexDigit(UInt8($0 >> 4))) | UInt16(hexDigit(UInt8($0 & 0x0f))) << 8 }

    public static func appendHex(_ bytes: [UInt8], to out: inout [UInt8]) {
        bytes.withUnsafeBytes { appendHex($0, to: &out) }
    }

    /// The lower-case hex string of `bytes`, written straight into the string's storage (SigV4 signs and
    /// verifies every request with it; the generic per-nibble append it replaced showed in profiles).
    public static func hex<Bytes: ContiguousBytes>(_ bytes: Bytes) -> String {
        bytes.withUnsafeBytes { raw in
            String(unsafeUninitializedCapacity: raw.count * 2) { out in
                for (i, b) in raw.enumerated() {
                    out[2 * i] = hexDigit(b >> 4)
                    out[2 * i + 1] = hexDigit(b & 0x0f)
                }
                return raw.count * 2
            }
        }
    }

    @inline(__always)
    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v &+ UInt8(ascii: "0") : v &+ (UInt8(ascii: "a") &- 10) }

    /// Strict lowercase/uppercase hex decoding; nil on odd length or a non-hex digit.
    public static func fromHex(_ string: String) -> [UInt8]? {
        let chars = Array(string.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = value(chars[i]), let lo = value(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
