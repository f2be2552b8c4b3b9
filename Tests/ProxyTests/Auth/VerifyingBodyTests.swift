import Foundation
import Shared
import Testing
@testable import Proxy

@Suite struct VerifyingBodyTests {
    let payload = Array("The quick brown fox jumps over the lazy dog, repeatedly.".utf8)

    func drain(_ body: VerifyingBody) throws -> [UInt8] { try body.readAll(limit: 1 << 20) }

    @Test func passesMatchingBodyThrough() throws {
        let md5 = Data(Digest.hash(.md5, payload)).base64EncodedString()
        let body = try VerifyingBody(MemoryBody(payload), payload: .signedHash(Digest.hash(.sha256, payload)), contentMD5: md5)
        #expect(try drain(body) == payload)
        #expect(body.bytesRead == Int64(payload.count))
        // Reading after the end stays at the end without re-checking.
        var one = [UInt8](repeating: 0, count: 1)
        #expect(try one.withUnsafeMutableBytes { try body.read(into: $0) } == 0)
    }

    @Test func mismatchedSHA256FailsAtEnd() throws {
        var tampered = payload
        tampered[3] ^= 1
        let body = try VerifyingBody(MemoryBody(tampered), payload: .signedHash(Digest.hash(.sha256, payload)), contentMD5: nil)
        // The failure comes from the read that reaches Content-Length: its bytes are withheld.
        var buffer = [UInt8](repeating: 0, count: 1024)
        var got = 0
        let code = s3ErrorCode {
            while true {
                let n = try buffer.withUnsafeMutableBytes { try body.read(into: $0) }
                if n == 0 { break }
                got += n
            }
        }
        #expect(code == "XAmzContentSHA256Mismatch")
        #expect(got < tampered.count)
        #expect(got >= tampered.count - 7)
    }

    @Test func contentMD5Checks() throws {
        let wrong = Data(Digest.hash(.md5, Array("other".utf8))).base64EncodedString()
        let unsigned = try VerifyingBody(MemoryBody(payload), payload: .unsigned, contentMD5: wrong)
        #expect(s3ErrorCode { _ = try drain(unsigned) } == "BadDigest")
        #expect(s3ErrorCode { _ = try VerifyingBody(MemoryBody(payload), payload: .unsigned, contentMD5: "not base64!") } == "InvalidDigest")
        #expect(s3ErrorCode { _ = try VerifyingBody(MemoryBody(payload), payload: .unsigned, contentMD5: "AAAA") } == "InvalidDigest")
        let ok = try VerifyingBody(MemoryBody(payload), payload: .unsigned, contentMD5: Data(Digest.hash(.md5, payload)).base64EncodedString())
        #expect(try drain(ok) == payload)
    }

    @Test func shortBodyIsIncomplete() throws {
        let body = try VerifyingBody(MemoryBody(payload, declaredLength: Int64(payload.count + 10)), payload: .unsigned, contentMD5: nil)
        #expect(s3ErrorCode { _ = try drain(body) } == "IncompleteBody")
    }

    @Test func chunkedBodyIsCheckedAtEnd() throws {
        let bad = try VerifyingBody(MemoryBody(chunked: payload), payload: .signedHash(Digest.hash(.sha256, Array("x".utf8))), contentMD5: nil)
        var got = 0
        #expect(s3ErrorCode {
            var buffer = [UInt8](repeating: 0, count: 1024)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try bad.read(into: $0) }
                if n == 0 { break }
                got += n
            }
        } == "XAmzContentSHA256Mismatch")
        #expect(got == payload.count)
    }

    @Test func unsignedChunkedBodyNeedsNoChecks() throws {
        let body = try VerifyingBody(MemoryBody(chunked: payload), payload: .unsigned, contentMD5: nil)
        #expect(body.declaredLength == nil)
        #expect(try drain(body) == payload)
    }
}
