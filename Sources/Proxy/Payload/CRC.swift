/// The cyclic redundancy checks S3's flexible checksums use: CRC32C (Castagnoli, as iSCSI) and CRC64NVME (the
/// NVMe specification's CRC-64); CRC32 (IEEE 802.3) is zlib's (`ZlibCRC32`, faster than this). All are the
/// reflected form with an all-ones initial value and final XOR; they differ only in width and polynomial.
///
/// A checksum is not a cryptographic primitive: it detects accidents, not attackers. This is the usual
/// table-driven "slicing-by-8" evaluation (eight 256-entry tables, eight input bytes per step), checked
/// against the published check values in the tests.
struct CRC32Engine: Sendable {
    /// The reflected polynomial.
    let polynomial: UInt32
    /// `tables[k * 256 + b]`: the CRC of byte `b` followed by `k` zero bytes.
    private let tables: [UInt32]

    static let castagnoli = CRC32Engine(polynomial: 0x82F6_3B78)

    init(polynomial: UInt32) {
        self.polynomial = polynomial
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = c & 1 == 1 ? (c >> 1) ^ polynomial : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let previous = t[(k - 1) * 256 + b]
                t[k * 256 + b] = (previous >> 8) ^ t[Int(previous & 0xff)]
            }
        }
        tables = t
    }

    /// Continues a running CRC (start from 0) over `bytes`.
    func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return tables.withUnsafeBufferPointer { t in
            var c = ~crc
            var p = base
            var n = bytes.count
            while n >= 8 {
                let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
                let lo = UInt32(truncatingIfNeeded: word) ^ c
                let hi = UInt32(truncatingIfNeeded: word >> 32)
                c = t[7 * 256 + Int(lo & 0xff)] ^ t[6 * 256 + Int((lo >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xff)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xff)] ^ t[2 * 256 + Int((hi >> 8) & 0xff)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xff)] ^ t[Int(hi >> 24)]
                p += 8
                n -= 8
            }
            while n > 0 {
                c = (c >> 8) ^ t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xff)]
                p += 1
                n -= 1
            }
            return ~c
        }
    }
}

/// CRC-64/NVME: reflected polynomial 0x9A6C9329AC4BC9B5 (0xAD93D23594C93659 unreflected).
struct CRC64Engine: Sendable {
    let polynomial: UInt64
    private let tables: [UInt64]

    static let nvme = CRC64Engine(polynomial: 0x9A6C_9329_AC4B_C9B5)

    init(polynomial: UInt64) {
        self.polynomial = polynomial
        var t = [UInt64](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt64(b)
            for _ in 0..<8 { c = c & 1 == 1 ? (c >> 1) ^ polynomial : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let previous = t[(k - 1) * 256 + b]
                t[k * 256 + b] = (previous >> 8) ^ t[Int(previous & 0xff)]
            }
        }
        tables = t
    }

    func update(_ crc: UInt64, _ bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return tables.withUnsafeBufferPointer { t in
            var c = ~crc
            var p = base
            var n = bytes.count
            while n >= 8 {
                let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) ^ c
                c = t[7 * 256 + Int(word & 0xff)] ^ t[6 * 256 + Int((word >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((word >> 16) & 0xff)] ^ t[4 * 256 + Int((word >> 24) & 0xff)]
                    ^ t[3 * 256 + Int((word >> 32) & 0xff)] ^ t[2 * 256 + Int((word >> 40) & 0xff)]
                    ^ t[1 * 256 + Int((word >> 48) & 0xff)] ^ t[Int(word >> 56)]
                p += 8
                n -= 8
            }
            while n > 0 {
                c = (c >> 8) ^ t[Int((c ^ UInt64(p.load(as: UInt8.self))) & 0xff)]
                p += 1
                n -= 1
            }
            return ~c
        }
    }
}
