import Foundation
import Shared
import Testing
@testable import Proxy

/// CRC check values from the CRC catalogue ("123456789"), AWS's documented CRC32C of its chunked-upload example,
/// and the slicing-by-8 tables cross-checked against a bit-at-a-time evaluation.
@Suite struct ChecksumTests {
    static let check = Array("123456789".utf8)

    @Test func publishedCheckValues() {
        #expect(RunningChecksum.compute(.crc32, Self.check).bytes == [0xCB, 0xF4, 0x39, 0x26])
        #expect(RunningChecksum.compute(.crc32c, Self.check).bytes == [0xE3, 0x06, 0x92, 0x83])
        #expect(RunningChecksum.compute(.crc64nvme, Self.check).bytes == [0xAE, 0x8B, 0x14, 0x86, 0x0A, 0x79, 0x98, 0x88])
        #expect(RunningChecksum.compute(.crc32, [UInt8]()).bytes == [0, 0, 0, 0])
        // SHA-1 / SHA-256 of "abc" (FIPS 180 examples), through OpenSSL.
        #expect(Encoding.hex(RunningChecksum.compute(.sha1, Array("abc".utf8)).bytes) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Encoding.hex(RunningChecksum.compute(.sha256, Array("abc".utf8)).bytes)
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func awsChunkedTrailerExampleCRC32C() {
        // The trailer example of the S3 SigV4 streaming documentation: 66 560 bytes of 'a', x-amz-checksum-crc32c:sOO8/Q==.
        let body = [UInt8](repeating: UInt8(ascii: "a"), count: 66_560)
        #expect(RunningChecksum.compute(.crc32c, body).base64 == "sOO8/Q==")
    }

    /// The reflected CRC one bit at a time, straight from the definition.
    static func bitwise32(_ poly: UInt32, _ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 == 1 ? (c >> 1) ^ poly : c >> 1 }
        }
        return ~c
    }

    static func bitwise64(_ poly: UInt64, _ data: [UInt8]) -> UInt64 {
        var c: UInt64 = ~0
        for b in data {
            c ^= UInt64(b)
            for _ in 0..<8 { c = c & 1 == 1 ? (c >> 1) ^ poly : c >> 1 }
        }
        return ~c
    }

    /// CRC32 goes through zlib: the same value as the definition, at any length, alignment and split, and
    /// through `RunningChecksum` fed in pieces.
    @Test func zlibCRC32MatchesBitwise() {
        var rng = SplitMix64(seed: 0x2C32)
        let big = rng.bytes(200_003)
        for (length, start) in [(0, 0), (1, 0), (7, 3), (9, 1), (31, 5), (64, 0), (1000, 7), (65_537, 1), (200_000, 3)] {
            let data = Array(big[start..<(start + length)])
            let split = length == 0 ? 0 : Int.random(in: 0...length, using: &rng)
            let crc = data.withUnsafeBytes { all in
                ZlibCRC32.update(ZlibCRC32.update(0, UnsafeRawBufferPointer(rebasing: all[..<split])), UnsafeRawBufferPointer(rebasing: all[split...]))
            }
            #expect(crc == Self.bitwise32(0xEDB8_8320, data), "length \(length)")
            let running = RunningChecksum(.crc32)
            data.withUnsafeBytes { all in
                var offset = 0
                while offset < all.count {
                    let n = min(Int.random(in: 1...5000, using: &rng), all.count - offset)
                    running.update(UnsafeRawBufferPointer(rebasing: all[offset..<(offset + n)]))
                    offset += n
                }
            }
            #expect(running.finalize().bytes == withUnsafeBytes(of: Self.bitwise32(0xEDB8_8320, data).bigEndian) { Array($0) })
        }
    }

    @Test func slicingMatchesBitwiseAndSplitsAnywhere() {
        var rng = SplitMix64(seed: 0xC4C)
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099] {
            let data = rng.bytes(length)
            let split = length == 0 ? 0 : Int.random(in: 0...length, using: &rng)
            func incremental32(_ engine: CRC32Engine) -> UInt32 {
                data.withUnsafeBytes { all in
                    engine.update(engine.update(0, UnsafeRawBufferPointer(rebasing: all[..<split])), UnsafeRawBufferPointer(rebasing: all[split...]))
                }
            }
            #expect(incremental32(CRC32Engine(polynomial: 0xEDB8_8320)) == Self.bitwise32(0xEDB8_8320, data))
            #expect(incremental32(.castagnoli) == Self.bitwise32(0x82F6_3B78, data))
            let crc64 = data.withUnsafeBytes { all in
                CRC64Engine.nvme.update(CRC64Engine.nvme.update(0, UnsafeRawBufferPointer(rebasing: all[..<split])),
                                        UnsafeRawBufferPointer(rebasing: all[split...]))
            }
            #expect(crc64 == Self.bitwise64(0x9A6C_9329_AC4B_C9B5, data))
        }
    }

    /// The prefix-first lookup names the same algorithm as comparing the lower-cased name with every
    /// algorithm's header name, for any case and for the look-alikes around the prefix.
    @Test(arguments: ["x-amz-checksum-crc32", "X-AMZ-CHECKSUM-CRC32C", "x-Amz-Checksum-Crc64nvme", "x-amz-checksum-sha1",
                      "x-amz-checksum-SHA256", "x-amz-checksum-", "x-amz-checksum-crc", "x-amz-checksum-crc32 ",
                      "x-amz-checksum-crc32cc", "x-amz-checksum-type", "x-amz-checksumcrc32", "y-amz-checksum-crc32",
                      "x-amz-checksum-crc3\u{32}", "x-amz-checksum-ſha1", "crc32", "", "x-amz-meta-checksum-crc32"])
    func headerNameLookupMatchesLowerCasedComparison(name: String) {
        let expected = ChecksumAlgorithm.allCases.first { $0.headerName == name.lowercased() }
        #expect(ChecksumAlgorithm(headerName: name) == expected)
    }

    @Test func declaredValuesAreValidated() throws {
        #expect(try ChecksumValue.parse(.crc32, base64: "y/Q5Jg==").bytes == [0xCB, 0xF4, 0x39, 0x26])
        #expect(s3ErrorCode { _ = try ChecksumValue.parse(.crc32, base64: "y/Q5Jg") } == "InvalidRequest")
        #expect(s3ErrorCode { _ = try ChecksumValue.parse(.crc32, base64: "AAAAAAAA") } == "InvalidRequest")  // 6 bytes
        #expect(s3ErrorCode { _ = try ChecksumValue.parse(.sha256, base64: "not base64!") } == "InvalidRequest")
        #expect(ChecksumAlgorithm(headerName: "X-Amz-Checksum-CRC64NVME") == .crc64nvme)
        #expect(ChecksumAlgorithm(headerName: "x-amz-checksum-type") == nil)
        #expect(ChecksumAlgorithm(headerName: "x-amz-checksum-algorithm") == nil)
        #expect(ChecksumAlgorithm(name: "crc32c") == .crc32c)
    }
}
