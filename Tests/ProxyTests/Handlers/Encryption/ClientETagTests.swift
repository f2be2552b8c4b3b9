import Foundation
import Shared
import Testing
@testable import Proxy

/// Which UploadPart answers carry the plaintext MD5 as the part's ETag (the rest show the backend's ETag, opaque).
@Suite struct ClientETagTests {
    static let crc32 = ChecksumValue(algorithm: .crc32, bytes: [1, 2, 3, 4])

    @Test(arguments: [
        // Content-MD5 always wins: the client asked for MD5 integrity (rclone, minio-go/restic).
        (true, PayloadDeclaration.Checksum.none, true),
        (true, .header(crc32), true),
        (true, .trailer(.crc32), true),
        (true, .compute(.sha256), true),
        // A flexible checksum the client sent, as a header or announced trailer: verified instead, no MD5.
        (false, .header(crc32), false),
        (false, .header(ChecksumValue(algorithm: .sha256, bytes: Array(repeating: 7, count: 32))), false),
        (false, .trailer(.crc32), false),
        (false, .trailer(.crc64nvme), false),
        // No integrity check from the client (s3cmd compares every part ETag with its MD5): MD5.
        (false, .none, true),
        // Only an algorithm, no value to verify: not a check the client chose; MD5.
        (false, .compute(.crc32), true),
    ] as [(Bool, PayloadDeclaration.Checksum, Bool)])
    func partETagIsPlaintextMD5(contentMD5: Bool, checksum: PayloadDeclaration.Checksum, expected: Bool) {
        #expect(ClientETag.partETagIsPlaintextMD5(contentMD5: contentMD5, checksum: checksum) == expected)
    }

    /// The plaintext MD5 in quotes, lower-case hex, every byte value.
    @Test func md5ETagsAreQuotedLowerCaseHex() {
        for first in stride(from: 0, to: 256, by: 16) {
            let digest = (0..<16).map { UInt8(first + $0) }
            #expect(ClientETag.md5(digest) == "\"" + digest.map { String(format: "%02x", $0) }.joined() + "\"")
        }
        #expect(ClientETag.md5([]) == "\"\"")
        #expect(ClientETag.md5([0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e])
                == "\"d41d8cd98f00b204e9800998ecf8427e\"")
    }

    /// The decision from real request headers, as UploadPart parses them.
    @Test func fromParsedHeaders() throws {
        func decide(_ headers: HTTPFields, _ payload: PayloadMode = .unsigned) throws -> Bool {
            let declaration = try PayloadDeclaration.parse(headers: headers, payload: payload, chain: nil)
            return ClientETag.partETagIsPlaintextMD5(contentMD5: declaration.contentMD5 != nil, checksum: declaration.checksum)
        }
        let md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="  // MD5 of no bytes
        #expect(try decide([:]))
        #expect(try decide(["Content-MD5": md5]))
        #expect(try !decide(["x-amz-checksum-crc32": "AAAAAA=="]))
        #expect(try decide(["x-amz-checksum-crc32": "AAAAAA==", "Content-MD5": md5]))
        #expect(try decide(["x-amz-sdk-checksum-algorithm": "CRC32"]))
        #expect(try !decide(["x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": "0",
                             "Content-Encoding": "aws-chunked"], .streaming("STREAMING-UNSIGNED-PAYLOAD-TRAILER")))
    }
}
