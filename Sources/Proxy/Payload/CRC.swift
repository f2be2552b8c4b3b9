/// The cyclic redundancy checks S3's flexible checksums use: CRC32C (Castagnoli, as iSCSI) and CRC64NVME (the
/// NVMe specification's CRC-64); CRC32 (IEEE 802.3) is zlib's (`ZlibCRC32`, faster than this). All are the
/// reflected form with an all-ones initial value and final XOR; they differ only in width and polynomial, so one
/// generic engine serves both widths.
///
/// A checksum is not a cryptographic primitive: it detects accidents, not attackers. This is the usual
/// table-driven "slicing-by-8" evaluation (eight 256-entry tables, eight input bytes per step), checked
/// against the published check values in the tests.
struct ReflectedCRC<Word: FixedWidthInteger & UnsignedInteger & Sendable>: Sendable {
    /// The reflected polynomial.
    let polynomial: Word
    /// `tables[k * 256 + b]`: the CRC of byte `b` followed by `k` zero bytes.
    private let tables: [Word]

    init(polynomial: Word) {
        precondition(Word.bitWidth <= 64, "slicing-by-8 folds at most 64 bits of state into one input word")
        self.polynomial = polynomial
        var t = [Word](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = Word(b)
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
    func update(_ crc: Word, _ bytes: UnsafeRawBufferPointer) -> Word {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return tables.withUnsafeBufferPointer { t in
            var c = ~crc
            var p = base
            var n = bytes.count
            while n >= 8 {
                // The state (32 or 64 bits) folds into the low end of the next eight input bytes; each byte of
                // the result then indexes the table for the number of bytes that follow it.
                let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) ^ UInt64(truncatingIfNeeded: c)
                func entry(_ k: Int) -> Word { t[(7 - k) * 256 + Int(truncatingIfNeeded: (word >> (8 * UInt64(k))) & 0xff)] }
                let low: Word = entry(0) ^ entry(1) ^ entry(2) ^ entry(3)
                let high: Word = entry(4) ^ entry(5) ^ entry(6) ^ entry(7)
                c = low ^ high
                p += 8
                n -= 8
            }
            while n > 0 {
                c = (c >> 8) ^ t[Int((c ^ Word(p.load(as: UInt8.self))) & 0xff)]
                p += 1
                n -= 1
            }
            return ~c
        }
    }
}

typealias CRC32Engine = ReflectedCRC<UInt32>
typealias CRC64Engine = ReflectedCRC<UInt64>

// Generic types cannot hold static stored properties: the tables are built once, here.
private let castagnoliEngine = ReflectedCRC<UInt32>(polynomial: 0x82F6_3B78)
/// CRC-64/NVME: reflected polynomial 0x9A6C9329AC4BC9B5 (0xAD93D23594C93659 unreflected).
private let nvmeEngine = ReflectedCRC<UInt64>(polynomial: 0x9A6C_9329_AC4B_C9B5)

extension ReflectedCRC where Word == UInt32 {
    /// CRC-32C (Castagnoli): `x-amz-checksum-crc32c`.
    static var castagnoli: Self { castagnoliEngine }
}

extension ReflectedCRC where Word == UInt64 {
    /// CRC-64/NVME: `x-amz-checksum-crc64nvme`.
    static var nvme: Self { nvmeEngine }
}
