import COpenSSL

/// The implementation behind the one-shot `Digest.hash(.sha256, …)` and `HMAC.sha256`, which SigV4 calls
/// several times per request (verify and re-sign): the algorithms are fetched once per process and each
/// thread reuses one context of each. OpenSSL 3's implicit fetch looks the algorithm up in a
/// lock-protected store and allocates a context on every call; with many request threads that lock is one
/// all requests share.
enum ThreadSHA256 {
    /// SHA-256 of `data`.
    static func hash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        hash32(data).array
    }

    /// SHA-256 of `data`, inline (no allocation).
    static func hash32(_ data: UnsafeRawBufferPointer) -> Bytes32 {
        let contexts = perThread.current
        var length: UInt32 = 0
        let digest = output32 { out in
            EVP_DigestInit_ex2(contexts.digest, algorithms.sha256, nil) == 1
                && EVP_DigestUpdate(contexts.digest, data.baseAddress, data.count) == 1
                && EVP_DigestFinal_ex(contexts.digest, out, &length) == 1 && length == 32
        }
        guard let digest else { fatalError("SHA-256: \(CryptoError("digest"))") }
        return digest
    }

    /// A 32-byte digest written by `body` into an inline `Bytes32`; nil when `body` fails. (Arrays are made from it
    /// by `Bytes32.array`, reserved and appended: `[UInt8](repeating:count:)` and `Array(unsafeUninitializedCapacity:)`
    /// reach the array's storage type through an unspecialised runtime metadata lookup, ≈ 360 instructions a call.)
    @inline(__always)
    static func output32(_ body: (UnsafeMutablePointer<UInt8>) -> Bool) -> Bytes32? {
        var digest = Bytes32()
        let ok = digest.withUnsafeMutableBytes { body($0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        return ok ? digest : nil
    }

    /// HMAC-SHA256 of `data` under `key`.
    static func hmac(key: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer) -> [UInt8] {
        let contexts = perThread.current
        var out = [UInt8](repeating: 0, count: 32)
        var length = 0
        // A key of length 0 still needs a non-NULL pointer: NULL would mean "keep the previous key".
        let keyBytes = key.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var empty: UInt8 = 0
        let ok = withUnsafeMutablePointer(to: &empty) { emptyKey in
            EVP_MAC_init(contexts.mac, keyBytes ?? UnsafePointer(emptyKey), key.count, nil) == 1
                && EVP_MAC_update(contexts.mac, data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count) == 1
                && EVP_MAC_final(contexts.mac, &out, &length, 32) == 1
        }
        guard ok, length == 32 else { fatalError("HMAC-SHA256: \(CryptoError("mac"))") }
        return out
    }

    /// The fetched algorithms, shared read-only by every thread for the life of the process.
    fileprivate struct Algorithms: @unchecked Sendable {
        let sha256: OpaquePointer
        let hmac: OpaquePointer
    }

    fileprivate static let algorithms: Algorithms = {
        guard let sha256 = EVP_MD_fetch(nil, "SHA256", nil), let hmac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            fatalError("OpenSSL has no SHA256/HMAC: \(CryptoError("fetch"))")
        }
        return Algorithms(sha256: sha256, hmac: hmac)
    }()

    /// One thread's contexts; the MAC context is set to SHA-256 once, so each `EVP_MAC_init` only re-keys.
    private final class Contexts {
        let digest: OpaquePointer
        let mac: OpaquePointer

        init() {
            guard let digest = EVP_MD_CTX_new() else { fatalError("OpenSSL context: out of memory") }
            self.digest = digest
            self.mac = ThreadSHA256.newHMACContext()
        }

        deinit {
            // The MAC context held keys (signing keys): EVP_MAC_CTX_free cleanses them.
            EVP_MAC_CTX_free(mac)
            EVP_MD_CTX_free(digest)
        }
    }

    private static let perThread = ThreadLocal { Contexts() }

    /// A new HMAC context set to SHA-256, not keyed yet.
    fileprivate static func newHMACContext() -> OpaquePointer {
        guard let mac = EVP_MAC_CTX_new(algorithms.hmac) else { fatalError("OpenSSL context: out of memory") }
        let set = "digest".withCString { name in
            "SHA256".withCString { value in
                var params = [OSSL_PARAM_construct_utf8_string(name, UnsafeMutablePointer(mutating: value), 0), OSSL_PARAM_construct_end()]
                return EVP_MAC_CTX_set_params(mac, &params)
            }
        }
        guard set == 1 else { fatalError("HMAC digest: \(CryptoError("mac params"))") }
        return mac
    }
}

/// HMAC-SHA256 under one key, set up once. OpenSSL hashes the key's inner and outer pads when the key is set and
/// restarts from those states for every message (`EVP_MAC_init` without a key), which saves the key set-up and
/// two SHA-256 blocks per MAC: SigV4 verifies and signs every request under a signing key that lives for a day
/// (issue 12). Not thread-safe: one thread at a time (SigV4's key cache keeps one per thread). The key exists
/// only inside OpenSSL's context, which `EVP_MAC_CTX_free` cleanses.
public final class HMACSHA256Key {
    private let context: OpaquePointer

    /// `key` must not be empty (a SigV4 signing key is 32 bytes).
    public init(key: [UInt8]) {
        precondition(!key.isEmpty, "an HMAC key set up once is never empty")
        context = ThreadSHA256.newHMACContext()
        let ok = key.withUnsafeBufferPointer { EVP_MAC_init(context, $0.baseAddress, $0.count, nil) == 1 }
        guard ok else { fatalError("HMAC-SHA256 key: \(CryptoError("mac init"))") }
    }

    deinit { EVP_MAC_CTX_free(context) }

    /// HMAC-SHA256 of `data` under the key.
    public func mac(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        mac32(data).array
    }

    /// HMAC-SHA256 of `data` under the key, inline (no allocation; SigV4 signs and verifies every request).
    public func mac32(_ data: UnsafeRawBufferPointer) -> Bytes32 {
        var length = 0
        // No key: OpenSSL restarts from the key's precomputed inner state.
        let mac = ThreadSHA256.output32 { out in
            EVP_MAC_init(context, nil, 0, nil) == 1
                && EVP_MAC_update(context, data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count) == 1
                && EVP_MAC_final(context, out, &length, 32) == 1 && length == 32
        }
        guard let mac else { fatalError("HMAC-SHA256: \(CryptoError("mac"))") }
        return mac
    }

    /// HMAC-SHA256 of `data` under the key.
    public func mac(_ data: [UInt8]) -> [UInt8] {
        data.withUnsafeBytes { mac($0) }
    }
}
