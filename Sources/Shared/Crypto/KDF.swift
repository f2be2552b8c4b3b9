import COpenSSL

/// Failures of a key derivation; they mean bad parameters or a broken OpenSSL, never a wrong password.
public struct KDFError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { "key derivation failed: \(message)" }
}

/// Password-based and extract-and-expand key derivation through OpenSSL's `EVP_KDF`.
public enum KDF {
    /// scrypt (RFC 7914) via `EVP_KDF "SCRYPT"`. `n` must be a power of two > 1.
    /// Memory use is 128·r·n bytes; `maxMemory` is passed to OpenSSL as the ceiling.
    public static func scrypt(password: [UInt8], salt: [UInt8], n: UInt64, r: UInt32, p: UInt32,
                              length: Int, maxMemory: UInt64 = 1 << 30) throws(KDFError) -> [UInt8] {
        guard n > 1, n & (n - 1) == 0 else { throw KDFError("scrypt N must be a power of two > 1, got \(n)") }
        guard r > 0, p > 0, length > 0 else { throw KDFError("scrypt r, p and length must be positive") }
        let arena = ParameterArena()
        var n = n, r = r, p = p, maxMemory = maxMemory
        let params: [OSSL_PARAM] = [
            OSSL_PARAM_construct_octet_string(name("pass"), arena.bytes(password), password.count),
            OSSL_PARAM_construct_octet_string(name("salt"), arena.bytes(salt), salt.count),
            OSSL_PARAM_construct_uint64(name("n"), arena.copy(&n)),
            OSSL_PARAM_construct_uint32(name("r"), arena.copy(&r)),
            OSSL_PARAM_construct_uint32(name("p"), arena.copy(&p)),
            OSSL_PARAM_construct_uint64(name("maxmem_bytes"), arena.copy(&maxMemory)),
            OSSL_PARAM_construct_end(),
        ]
        return try derive(.scrypt, params: params, length: length, arena: arena)
    }

    /// PBKDF2-HMAC-SHA256 (RFC 8018), for deployments that must avoid scrypt's memory use.
    public static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: UInt32, length: Int) throws(KDFError) -> [UInt8] {
        guard iterations > 0, length > 0 else { throw KDFError("PBKDF2 iterations and length must be positive") }
        let arena = ParameterArena()
        var iterations = UInt64(iterations)
        let params: [OSSL_PARAM] = [
            OSSL_PARAM_construct_octet_string(name("pass"), arena.bytes(password), password.count),
            OSSL_PARAM_construct_octet_string(name("salt"), arena.bytes(salt), salt.count),
            OSSL_PARAM_construct_uint64(name("iter"), arena.copy(&iterations)),
            OSSL_PARAM_construct_utf8_string(name("digest"), name("SHA256"), 0),
            OSSL_PARAM_construct_end(),
        ]
        return try derive(.pbkdf2, params: params, length: length, arena: arena)
    }

    /// HKDF-SHA256 (RFC 5869), extract then expand. An empty salt means HashLen zero bytes.
    public static func hkdfSHA256(key: [UInt8], salt: [UInt8], info: [UInt8], length: Int) throws(KDFError) -> [UInt8] {
        guard !key.isEmpty, length > 0, length <= 255 * 32 else { throw KDFError("HKDF needs a key and 1…8160 output bytes") }
        let arena = ParameterArena()
        var params: [OSSL_PARAM] = [
            OSSL_PARAM_construct_utf8_string(name("digest"), name("SHA256"), 0),
            OSSL_PARAM_construct_octet_string(name("key"), arena.bytes(key), key.count),
            OSSL_PARAM_construct_octet_string(name("info"), arena.bytes(info), info.count),
        ]
        if !salt.isEmpty {
            params.append(OSSL_PARAM_construct_octet_string(name("salt"), arena.bytes(salt), salt.count))
        }
        params.append(OSSL_PARAM_construct_end())
        return try derive(.hkdf, params: params, length: length, arena: arena)
    }

    /// A parameter name or value for `OSSL_PARAM`: a literal, whose bytes (NUL-terminated) live as long as the
    /// process, so it needs no copy in the arena.
    private static func name(_ literal: StaticString) -> UnsafeMutablePointer<CChar> {
        UnsafeMutableRawPointer(mutating: literal.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    private static func derive(_ algorithm: Algorithm, params: [OSSL_PARAM], length: Int, arena: ParameterArena) throws(KDFError) -> [UInt8] {
        // The parameters point into the arena: it must outlive the derivation.
        defer { withExtendedLifetime(arena) {} }
        guard let kdf = algorithm.fetched else {
            throw KDFError("EVP_KDF_fetch(\(algorithm.rawValue)): \(CryptoError("fetch").detail)")
        }
        guard let context = EVP_KDF_CTX_new(kdf) else { throw KDFError("EVP_KDF_CTX_new: out of memory") }
        defer { EVP_KDF_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: length)
        var params = params
        let status = params.withUnsafeMutableBufferPointer { p in
            EVP_KDF_derive(context, &output, length, p.baseAddress)
        }
        guard status == 1 else { throw KDFError("\(algorithm.rawValue) derive: \(CryptoError("derive").detail)") }
        return output
    }

    private enum Algorithm: String {
        case scrypt = "SCRYPT"
        case pbkdf2 = "PBKDF2"
        case hkdf = "HKDF"

        /// Fetched once per process (a fetch is a locked name lookup in OpenSSL 3; HKDF runs for every new
        /// object); fetched algorithms are immutable and shared by threads. Nil if the provider lacks it.
        var fetched: OpaquePointer? {
            switch self {
            case .scrypt: return fetchedScrypt
            case .pbkdf2: return fetchedPBKDF2
            case .hkdf: return fetchedHKDF
            }
        }
    }
}

// Fetched on first use and kept for the process (never freed).
nonisolated(unsafe) private let fetchedScrypt = EVP_KDF_fetch(nil, "SCRYPT", nil)
nonisolated(unsafe) private let fetchedPBKDF2 = EVP_KDF_fetch(nil, "PBKDF2", nil)
nonisolated(unsafe) private let fetchedHKDF = EVP_KDF_fetch(nil, "HKDF", nil)

/// Keeps the byte buffers an `OSSL_PARAM` array points at (names and fixed values are literals) alive until the
/// derivation is done, and wipes them afterwards (they hold passwords and keys).
private final class ParameterArena {
    private var allocations: [(UnsafeMutableRawPointer, Int)] = []

    func bytes(_ value: [UInt8]) -> UnsafeMutableRawPointer {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(value.count, 1), alignment: 8)
        value.withUnsafeBytes { if let base = $0.baseAddress { pointer.copyMemory(from: base, byteCount: value.count) } }
        allocations.append((pointer, max(value.count, 1)))
        return pointer
    }

    func copy<T: BitwiseCopyable>(_ value: inout T) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: 1)
        pointer.initialize(to: value)
        allocations.append((UnsafeMutableRawPointer(pointer), MemoryLayout<T>.size))
        return pointer
    }

    deinit {
        for (pointer, count) in allocations {
            OPENSSL_cleanse(pointer, count)
            pointer.deallocate()
        }
    }
}
