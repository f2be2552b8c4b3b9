import COpenSSL

/// Comparisons of secrets and MACs that take the same time whatever the contents, so a check leaks
/// no prefix length (OpenSSL's `CRYPTO_memcmp`). Inputs of different lengths compare unequal at once:
/// lengths of signatures and digests are public.
public enum ConstantTime {
    public static func equals(_ a: String, _ b: String) -> Bool {
        equals(Array(a.utf8), Array(b.utf8))
    }

    public static func equals(_ x: [UInt8], _ y: [UInt8]) -> Bool {
        guard x.count == y.count else { return false }
        if x.isEmpty { return true }
        return x.withUnsafeBytes { px in
            y.withUnsafeBytes { py in CRYPTO_memcmp(px.baseAddress, py.baseAddress, x.count) == 0 }
        }
    }
}

/// Wiping memory that held key material or plaintext so the compiler cannot drop the stores (`OPENSSL_cleanse`).
public enum SecureMemory {
    public static func cleanse(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        OPENSSL_cleanse(base, buffer.count)
    }

    public static func cleanse<T>(_ buffer: UnsafeMutableBufferPointer<T>) {
        cleanse(UnsafeMutableRawBufferPointer(buffer))
    }
}
