import Foundation
import Shared
import Testing
@testable import Proxy

/// Known-answer vectors from the S3 documentation's chunked-upload examples ("Signature Calculations for the
/// Authorization Header: Transferring Payload in Multiple Chunks" and "…: Including Trailing Headers"):
/// secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, 20130524T000000Z, us-east-1, 65 536 + 1 024 bytes of 'a'.
@Suite struct AWSChunkedKnownAnswerTests {
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let scope = SigV4Scope(date: "20130524", region: "us-east-1", service: "s3")
    static let payload = [UInt8](repeating: UInt8(ascii: "a"), count: 66_560)

    static func chain(seed: String) -> ChunkSignatureChain {
        ChunkSignatureChain(signingKey: SigV4.signingKey(secret: secret, scope: scope), amzDate: "20130524T000000Z",
                            scope: scope, seedSignature: SigV4.rawSignature(seed)!)
    }

    static func body(_ signatures: [String], trailer: String = "") -> [UInt8] {
        var out = Array("10000;chunk-signature=\(signatures[0])\r\n".utf8) + payload[0..<65_536] + Array("\r\n".utf8)
        out += Array("400;chunk-signature=\(signatures[1])\r\n".utf8) + payload[65_536...] + Array("\r\n".utf8)
        out += Array("0;chunk-signature=\(signatures[2])\r\n".utf8) + Array(trailer.utf8) + Array("\r\n".utf8)
        return out
    }

    static let signedBody = body(["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                                  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                                  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"])

    @Test func chunkSignatureChain() {
        var chain = Self.chain(seed: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
        let first = chain.verifyChunk(dataSHA256: Digest.hash(.sha256, Array(Self.payload[0..<65_536])),
                                      signature: "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648")
        let second = chain.verifyChunk(dataSHA256: Digest.hash(.sha256, Array(Self.payload[65_536...])),
                                       signature: "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497")
        #expect(first && second)
        #expect(chain.expectedChunkSignature(dataSHA256: Digest.hash(.sha256, [UInt8]()))
                == "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")
    }

    @Test func trailerSignatureChain() {
        var chain = Self.chain(seed: "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e")
        for (data, signature) in [(Array(Self.payload[0..<65_536]), "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"),
                                  (Array(Self.payload[65_536...]), "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"),
                                  ([], "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992")] {
            let verified = chain.verifyChunk(dataSHA256: Digest.hash(.sha256, data), signature: signature)
            #expect(verified)
        }
        #expect(chain.expectedTrailerSignature(fields: [(name: "x-amz-checksum-crc32c", value: "sOO8/Q==")])
                == "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435")
    }

    /// The documented request, end to end: Authorization header → seed signature → de-framed, verified payload.
    @Test func documentedSignedUploadVerifiesEndToEnd() throws {
        var fields: HTTPFields = [
            "Host": "s3.amazonaws.com", "x-amz-date": "20130524T000000Z", "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560", "Content-Length": "66824",
        ]
        fields.add("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
        #expect(Self.signedBody.count == 66_824)
        let authenticator = RequestAuthenticator(credentials: StaticCredentials(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: Self.secret),
                                                 regions: ["us-east-1"])
        let verified = try authenticator.authenticate(method: "PUT", rawPath: "/examplebucket/chunkObject.txt", rawQuery: nil,
                                                      headers: fields, now: 1_369_353_600)
        let declaration = try PayloadDeclaration.parse(headers: fields, payload: verified.payload, chain: verified.chunkChain)
        let body = VerifyingBody(MemoryBody(Self.signedBody, sliceSize: 1000), declaration: declaration)
        #expect(body.declaredLength == 66_560)
        #expect(try body.readAll(limit: 1 << 20) == Self.payload)
        #expect(body.bytesRead == 66_824)
    }

    @Test func documentedTrailerUploadVerifies() throws {
        var fields: HTTPFields = [
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560", "x-amz-trailer": "x-amz-checksum-crc32c",
        ]
        let body = Self.body(["b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
                              "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
                              "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"],
                             trailer: "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n")
        let chain = Self.chain(seed: "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e")
        let declaration = try PayloadDeclaration.parse(headers: fields, payload: .streaming(AWSChunkedMode.signedWithTrailer.rawValue),
                                                       chain: chain)
        let verifying = VerifyingBody(MemoryBody(body, declaredLength: nil, sliceSize: 4096), declaration: declaration)
        #expect(try verifying.readAll(limit: 1 << 20) == Self.payload)
        #expect(verifying.verifiedChecksum == ChecksumValue(algorithm: .crc32c, bytes: Array(Data(base64Encoded: "sOO8/Q==")!)))
        // The same trailer with another checksum value fails the trailer signature, not only the checksum.
        let tampered = Array(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "sOO8/Q==", with: "sOO8/A==").utf8)
        fields.remove("Content-Length")
        let bad = VerifyingBody(MemoryBody(tampered, sliceSize: 4096), declaration: declaration)
        #expect(s3ErrorCode { _ = try bad.readAll(limit: 1 << 20) } == "SignatureDoesNotMatch")
    }
}

@Suite struct AWSChunkedDecoderTests {
    static let payload: [UInt8] = {
        var rng = SplitMix64(seed: 42)
        return rng.bytes(10_000)
    }()

    @Test(arguments: AWSChunkedMode.allCases)
    func everySplitGivesTheSameResult(mode: AWSChunkedMode) {
        let trailer: [(name: String, value: String)] = mode.allowsTrailer
            ? [(name: "x-amz-checksum-crc32", value: RunningChecksum.compute(.crc32, Self.payload).base64)] : []
        let body = AWSChunkedTestEncoder.encode(Self.payload, chunkSize: 4096, mode: mode,
                                                chain: mode.chunksSigned ? AWSChunkedTestEncoder.chain() : nil, trailer: trailer)
        let whole = AWSChunkedRun(body, mode: mode, pieceSize: body.count)
        #expect(whole.error == nil)
        #expect(whole.data == Self.payload)
        #expect(whole.events.filter { $0.hasPrefix("chunk ") }.count == 4)
        for piece in [1, 2, 3, 7, 100, 4097] {
            #expect(AWSChunkedRun(body, mode: mode, pieceSize: piece) == whole)
        }
    }

    @Test func unsignedTrailerAsBotocoreSendsIt() {
        // botocore/awscli over https: hex size, data, "0", the checksum trailer, empty line.
        let body = Array("5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".utf8)
        let run = AWSChunkedRun(body, mode: .unsignedWithTrailer, pieceSize: 3)
        #expect(run.error == nil)
        #expect(run.data == Array("hello world".utf8))
        #expect(run.events == ["chunk 5 -", "data", "end-chunk", "chunk 6 -", "data", "end-chunk", "chunk 0 -",
                               "trailer x-amz-checksum-crc32=DUoRhQ==", "end -"])
        #expect(RunningChecksum.compute(.crc32, Array("hello world".utf8)).base64 == "DUoRhQ==")
    }

    static let signature = String(repeating: "ab", count: 32)

    @Test(arguments: [
        // (mode, body, what the error is about)
        (AWSChunkedMode.unsignedWithTrailer, "5\r\nhello\r\n0\r\n", "truncated"),
        (.unsignedWithTrailer, "5\r\nhelloX\r\n0\r\n\r\n", "CRLF"),
        (.unsignedWithTrailer, "5\nhello\r\n0\r\n\r\n", "LF without CR"),
        (.unsignedWithTrailer, " 5\r\nhello\r\n0\r\n\r\n", "hexadecimal"),
        (.unsignedWithTrailer, "\r\nhello\r\n0\r\n\r\n", "1 to 15"),
        (.unsignedWithTrailer, "1000000000000000\r\n", "1 to 15"),
        (.unsignedWithTrailer, "5;ext=1\r\nhello\r\n0\r\n\r\n", "extension"),
        (.unsignedWithTrailer, "0\r\nnocolon\r\n\r\n", "name:value"),
        (.unsignedWithTrailer, "0\r\nbad name:x\r\n\r\n", "field name"),
        (.unsignedWithTrailer, "0\r\nx-amz-trailer-signature:\(String(repeating: "a", count: 64))\r\n\r\n", "unsigned"),
        (.unsignedWithTrailer, "0\r\n\r\nX", "after the end"),
        (.signed, "5\r\nhello\r\n", "chunk-signature"),
        (.signed, "5;chunk-signature=\(String(repeating: "A", count: 64))\r\nhello\r\n", "lower-case"),
        (.signed, "5;chunk-signature=abc\r\nhello\r\n", "chunk-signature"),
        (.signed, "0;chunk-signature=\(String(repeating: "ab", count: 32))\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", "without a trailer"),
        (.signedWithTrailer, "0;chunk-signature=\(String(repeating: "ab", count: 32))\r\n\r\n", "no x-amz-trailer-signature"),
        (.signedWithTrailer, "0;chunk-signature=\(String(repeating: "ab", count: 32))\r\nx-amz-trailer-signature:\(String(repeating: "ab", count: 32))\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", "last"),
    ])
    func malformedBodiesAreRefused(mode: AWSChunkedMode, body: String, about: String) {
        let run = AWSChunkedRun(Array(body.utf8), mode: mode, pieceSize: 1)
        #expect(run.error?.contains(about) == true, "\(run.error ?? "no error")")
    }

    @Test func limitsAreEnforced() {
        let longHeader = Array((String(repeating: "0", count: 14) + "5" + String(repeating: " ", count: 200) + "\r\n").utf8)
        #expect(AWSChunkedRun(longHeader, mode: .unsignedWithTrailer, pieceSize: 1000).error?.contains("longer than 128") == true)
        var trailer = "0\r\n"
        for i in 0..<9 { trailer += "x-h\(i):v\r\n" }
        #expect(AWSChunkedRun(Array((trailer + "\r\n").utf8), mode: .unsignedWithTrailer, pieceSize: 1000).error?.contains("more than 8") == true)
        let huge = "0\r\nx:" + String(repeating: "v", count: 5000) + "\r\n\r\n"
        #expect(AWSChunkedRun(Array(huge.utf8), mode: .unsignedWithTrailer, pieceSize: 1000).error?.contains("longer than 4096") == true)
    }
}
