import COpenSSL

/// The authenticated ciphers the gateway uses, all with 256-bit keys, 96-bit nonces and 128-bit tags.
public enum AEADAlgorithm: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// AES-256 in Galois/Counter Mode (the default: AES-NI + CLMUL make it the fastest on x86-64 and ARMv8).
    case aes256GCM = 1
    /// ChaCha20-Poly1305 (RFC 8439), for CPUs without AES instructions.
    case chacha20Poly1305 = 2

    public static let keySize = 32
    public static let nonceSize = 12
    public static let tagSize = 16

    /// The name used in object metadata and configuration.
    public var name: String {
        switch self {
        case .aes256GCM: return "AES-256-GCM"
        case .chacha20Poly1305: return "CHACHA20-POLY1305"
        }
    }

    public init?(name: String) {
        guard let match = AEADAlgorithm.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }

    public var description: String { name }

    /// OpenSSL algorithm name for an explicit fetch (avoids an implicit provider lookup per init).
    var openSSLName: String {
        switch self {
        case .aes256GCM: return "AES-256-GCM"
        case .chacha20Poly1305: return "ChaCha20-Poly1305"
        }
    }

    /// The cipher implementation, fetched from the default provider once per process: a fetch is a locked
    /// name lookup in OpenSSL 3, and every GET of an encrypted object creates a context (a tenth of a
    /// context's creation in a 4 KiB GET's profile). Fetched ciphers are immutable and may be shared by threads;
    /// nil if the provider lacks the algorithm (reported by `AEADContext.init`).
    var fetched: OpaquePointer? {
        switch self {
        case .aes256GCM: return fetchedAES256GCM
        case .chacha20Poly1305: return fetchedChaCha20Poly1305
        }
    }
}

// Fetched on first use and kept for the process (never freed).
nonisolated(unsafe) private let fetchedAES256GCM = EVP_CIPHER_fetch(nil, AEADAlgorithm.aes256GCM.openSSLName, nil)
nonisolated(unsafe) private let fetchedChaCha20Poly1305 = EVP_CIPHER_fetch(nil, AEADAlgorithm.chacha20Poly1305.openSSLName, nil)

/// Failures of an AEAD operation.
public enum AEADError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The tag did not verify: the ciphertext, nonce, AAD or key is wrong. No plaintext was released.
    case authenticationFailed
    /// Sizes that cannot be right (wrong key or nonce length, output buffer too small, message too long).
    case invalidArgument(String)
    /// OpenSSL itself failed (allocation, provider missing).
    case library(String)

    public var description: String {
        switch self {
        case .authenticationFailed: return "AEAD authentication failed: ciphertext or associated data was modified, or the key is wrong"
        case .invalidArgument(let what): return "AEAD invalid argument: \(what)"
        case .library(let what): return "AEAD OpenSSL failure: \(what)"
        }
    }
}

/// One AEAD key bound to one direction, owning an OpenSSL cipher context that is reused for
/// every message: each call only re-initialises the IV, so sealing thousands of chunks
/// allocates nothing and does not redo the key schedule.
///
/// Not thread-safe; use one per stream.
public struct AEADContext: ~Copyable {
    private let context: OpaquePointer
    private let scratch: UnsafeMutableRawPointer
    public let algorithm: AEADAlgorithm
    /// true: `seal` only; false: `open` only.
    public let sealing: Bool

    /// Creates a context for `key` (32 bytes).
    public init(algorithm: AEADAlgorithm, key: UnsafeRawBufferPointer, sealing: Bool) throws(AEADError) {
        guard key.count == AEADAlgorithm.keySize, let keyBase = key.baseAddress else {
            throw .invalidArgument("key must be \(AEADAlgorithm.keySize) bytes, got \(key.count)")
        }
        guard let cipher = algorithm.fetched else {
            throw .library("EVP_CIPHER_fetch(\(algorithm.openSSLName)): \(CryptoError("fetch").detail)")
        }
        guard let context = EVP_CIPHER_CTX_new() else {
            throw .library("EVP_CIPHER_CTX_new: out of memory")
        }
        guard EVP_CipherInit_ex(context, cipher, nil, keyBase.assumingMemoryBound(to: UInt8.self), nil, sealing ? 1 : 0) == 1 else {
            EVP_CIPHER_CTX_free(context)
            throw .library("EVP_CipherInit_ex: \(CryptoError("init").detail)")
        }
        self.context = context
        // What OpenSSL's final call may write (nothing, for these stream modes), then a copy of `open`'s tag.
        self.scratch = UnsafeMutableRawPointer.allocate(byteCount: 2 * AEADAlgorithm.tagSize, alignment: 16)
        self.algorithm = algorithm
        self.sealing = sealing
    }

    /// A second context for the same key and direction (`EVP_CIPHER_CTX_copy`: the key schedule is copied, not
    /// derived again), for another thread to open or seal the same stream's messages at the same time: a context
    /// is not thread-safe, two copies are independent.
    public func duplicate() throws(AEADError) -> AEADContext {
        guard let copy = EVP_CIPHER_CTX_new() else { throw .library("EVP_CIPHER_CTX_new: out of memory") }
        guard EVP_CIPHER_CTX_copy(copy, context) == 1 else {
            EVP_CIPHER_CTX_free(copy)
            throw .library("EVP_CIPHER_CTX_copy: \(CryptoError("copy").detail)")
        }
        return AEADContext(adopting: copy, algorithm: algorithm, sealing: sealing)
    }

    private init(adopting context: OpaquePointer, algorithm: AEADAlgorithm, sealing: Bool) {
        self.context = context
        self.scratch = UnsafeMutableRawPointer.allocate(byteCount: 2 * AEADAlgorithm.tagSize, alignment: 16)
        self.algorithm = algorithm
        self.sealing = sealing
    }

    /// Convenience for keys held in arrays.
    public init(algorithm: AEADAlgorithm, key: [UInt8], sealing: Bool) throws(AEADError) {
        // A ~Copyable value cannot be returned out of `withUnsafeBytes`, so the key goes through a wiped scratch copy.
        let pointer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(key.count, 1), alignment: 16)
        defer {
            OPENSSL_cleanse(pointer.baseAddress, pointer.count)
            pointer.deallocate()
        }
        key.withUnsafeBytes { if let b = $0.baseAddress { pointer.baseAddress!.copyMemory(from: b, byteCount: $0.count) } }
        try self.init(algorithm: algorithm, key: UnsafeRawBufferPointer(rebasing: pointer[0..<key.count]), sealing: sealing)
    }

    deinit {
        // EVP_CIPHER_CTX_free cleanses the key schedule.
        EVP_CIPHER_CTX_free(context)
        scratch.deallocate()
    }

    /// Encrypts `plaintext` into `output` as `ciphertext || tag` and returns the bytes written
    /// (`plaintext.count + 16`). `output` may start at the same address as `plaintext` (in place).
    public func seal(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                     plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(AEADError) -> Int {
        guard sealing else { throw .invalidArgument("seal called on an opening context") }
        let count = plaintext.count
        guard output.count >= count + AEADAlgorithm.tagSize, let outBase = output.baseAddress else {
            throw .invalidArgument("output buffer of \(output.count) bytes is too small for \(count) + tag")
        }
        try start(nonce: nonce, aad: aad)
        let out = outBase.assumingMemoryBound(to: UInt8.self)
        var written: Int32 = 0
        if count > 0 {
            guard count <= Int(Int32.max) else { throw .invalidArgument("message too long") }
            guard EVP_CipherUpdate(context, out, &written,
                                   plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(count)) == 1 else {
                throw .library("EVP_CipherUpdate: \(CryptoError("update").detail)")
            }
        }
        var finalWritten: Int32 = 0
        guard EVP_CipherFinal_ex(context, out + Int(written), &finalWritten) == 1 else {
            throw .library("EVP_CipherFinal_ex: \(CryptoError("final").detail)")
        }
        let total = Int(written) + Int(finalWritten)
        guard copenssl_ctrl_gcm_get_tag(context, Int32(AEADAlgorithm.tagSize), out + total) == 1 else {
            throw .library("get tag: \(CryptoError("tag").detail)")
        }
        return total + AEADAlgorithm.tagSize
    }

    /// Verifies and decrypts `sealed` (`ciphertext || tag`) into `output`, returning the plaintext
    /// length (`sealed.count - 16`). On a tag mismatch the output range is zeroed before
    /// `AEADError.authenticationFailed` is thrown, so unauthenticated plaintext never escapes.
    /// `output` may start at the same address as `sealed` (in place).
    public func open(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
                     sealed: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(AEADError) -> Int {
        guard !sealing else { throw .invalidArgument("open called on a sealing context") }
        guard sealed.count >= AEADAlgorithm.tagSize else { throw .authenticationFailed }
        let count = sealed.count - AEADAlgorithm.tagSize
        guard output.count >= count else {
            throw .invalidArgument("output buffer of \(output.count) bytes is too small for \(count)")
        }
        // An empty message may come with an empty (base-less) output buffer; OpenSSL still wants a pointer.
        let outBase = output.baseAddress ?? scratch
        try start(nonce: nonce, aad: aad)
        // The tag is copied out first: with in-place decryption the tag bytes sit right after the
        // ciphertext and must be handed to OpenSSL before they could be touched.
        let tag = scratch + AEADAlgorithm.tagSize
        tag.copyMemory(from: sealed.baseAddress! + count, byteCount: AEADAlgorithm.tagSize)
        try decrypt(UnsafeRawBufferPointer(rebasing: sealed[0..<count]), into: outBase)
        try verify(tag: UnsafeRawBufferPointer(start: tag, count: AEADAlgorithm.tagSize),
                   wiping: UnsafeMutableRawBufferPointer(start: outBase, count: count))
        return count
    }

    /// Starts opening one message whose ciphertext arrives in pieces (a chunk split across two network reads),
    /// so that no piece has to be copied together first: `openUpdate` decrypts each piece as it comes, then
    /// `openFinish` checks the tag. Until `openFinish` returns, what `openUpdate` wrote is **unverified**: the
    /// caller must not release any of it, and wipes it if the message is abandoned. Starting another message
    /// (`open`, `openStart`) abandons this one.
    public func openStart(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer) throws(AEADError) {
        guard !sealing else { throw .invalidArgument("open called on a sealing context") }
        try start(nonce: nonce, aad: aad)
    }

    /// Decrypts the next piece of the message's ciphertext (any length, the tag excluded) into `output`, which
    /// receives exactly `ciphertext.count` bytes of unverified plaintext (it may be `ciphertext` itself).
    public func openUpdate(_ ciphertext: UnsafeRawBufferPointer, into output: UnsafeMutableRawPointer) throws(AEADError) {
        guard !sealing else { throw .invalidArgument("open called on a sealing context") }
        try decrypt(ciphertext, into: output)
    }

    /// Checks the message's 16-byte `tag`. On a mismatch `plaintext` (everything `openUpdate` wrote) is zeroed
    /// before `AEADError.authenticationFailed` is thrown, as `open` does.
    public func openFinish(tag: UnsafeRawBufferPointer, wiping plaintext: UnsafeMutableRawBufferPointer) throws(AEADError) {
        guard !sealing else { throw .invalidArgument("open called on a sealing context") }
        guard tag.count == AEADAlgorithm.tagSize else { throw .authenticationFailed }
        try verify(tag: tag, wiping: plaintext)
    }

    private func decrypt(_ ciphertext: UnsafeRawBufferPointer, into output: UnsafeMutableRawPointer) throws(AEADError) {
        guard ciphertext.count > 0 else { return }
        guard ciphertext.count <= Int(Int32.max) else { throw .invalidArgument("message too long") }
        var written: Int32 = 0
        guard EVP_CipherUpdate(context, output.assumingMemoryBound(to: UInt8.self), &written,
                               ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(ciphertext.count)) == 1 else {
            throw .library("EVP_CipherUpdate: \(CryptoError("update").detail)")
        }
        // GCM and ChaCha20-Poly1305 are stream modes: OpenSSL writes every byte at once.
        guard Int(written) == ciphertext.count else { throw .library("EVP_CipherUpdate wrote \(written) of \(ciphertext.count) bytes") }
    }

    /// Hands the tag to OpenSSL and finishes the message; zeroes `plaintext` if the tag does not verify.
    private func verify(tag: UnsafeRawBufferPointer, wiping plaintext: UnsafeMutableRawBufferPointer) throws(AEADError) {
        // OpenSSL only reads the tag (the C API takes a non-const pointer).
        guard copenssl_ctrl_gcm_set_tag(context, Int32(AEADAlgorithm.tagSize), UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1 else {
            throw .library("set tag: \(CryptoError("tag").detail)")
        }
        // A stream mode has nothing left to write at the end; the final call only compares the tag.
        var finalWritten: Int32 = 0
        guard EVP_CipherFinal_ex(context, scratch.assumingMemoryBound(to: UInt8.self), &finalWritten) == 1 else {
            ERR_clear_error()
            if plaintext.count > 0 { plaintext.initializeMemory(as: UInt8.self, repeating: 0) }
            throw .authenticationFailed
        }
    }

    /// Resets the context for a new message: new IV, same key; then feeds the AAD.
    private func start(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer) throws(AEADError) {
        guard nonce.count == AEADAlgorithm.nonceSize, let nonceBase = nonce.baseAddress else {
            throw .invalidArgument("nonce must be \(AEADAlgorithm.nonceSize) bytes, got \(nonce.count)")
        }
        guard EVP_CipherInit_ex(context, nil, nil, nil, nonceBase.assumingMemoryBound(to: UInt8.self), -1) == 1 else {
            throw .library("EVP_CipherInit_ex(iv): \(CryptoError("iv").detail)")
        }
        if aad.count > 0 {
            var ignored: Int32 = 0
            guard aad.count <= Int(Int32.max),
                  EVP_CipherUpdate(context, nil, &ignored, aad.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(aad.count)) == 1 else {
                throw .library("EVP_CipherUpdate(aad): \(CryptoError("aad").detail)")
            }
        }
    }
}

/// One-shot helpers for small messages (key wrapping, tests). Allocate a context per call.
public enum AEAD {
    /// Returns `ciphertext || tag`.
    public static func seal(_ algorithm: AEADAlgorithm, key: [UInt8], nonce: [UInt8], aad: [UInt8], plaintext: [UInt8]) throws(AEADError) -> [UInt8] {
        let context = try AEADContext(algorithm: algorithm, key: key, sealing: true)
        var output = [UInt8](repeating: 0, count: plaintext.count + AEADAlgorithm.tagSize)
        let result: Result<Int, AEADError> = nonce.withUnsafeBytes { n in
            aad.withUnsafeBytes { a in
                plaintext.withUnsafeBytes { p in
                    output.withUnsafeMutableBytes { o in
                        do throws(AEADError) { return .success(try context.seal(nonce: n, aad: a, plaintext: p, into: o)) }
                        catch { return .failure(error) }
                    }
                }
            }
        }
        _ = try result.get()
        return output
    }

    /// Verifies and returns the plaintext of `sealed` (`ciphertext || tag`).
    public static func open(_ algorithm: AEADAlgorithm, key: [UInt8], nonce: [UInt8], aad: [UInt8], sealed: [UInt8]) throws(AEADError) -> [UInt8] {
        let context = try AEADContext(algorithm: algorithm, key: key, sealing: false)
        guard sealed.count >= AEADAlgorithm.tagSize else { throw .authenticationFailed }
        var output = [UInt8](repeating: 0, count: sealed.count - AEADAlgorithm.tagSize)
        let result: Result<Int, AEADError> = nonce.withUnsafeBytes { n in
            aad.withUnsafeBytes { a in
                sealed.withUnsafeBytes { s in
                    output.withUnsafeMutableBytes { o in
                        do throws(AEADError) { return .success(try context.open(nonce: n, aad: a, sealed: s, into: o)) }
                        catch { return .failure(error) }
                    }
                }
            }
        }
        _ = try result.get()
        return output
    }
}
