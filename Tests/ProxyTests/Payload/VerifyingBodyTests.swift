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

/// aws-chunked bodies through the pipeline: what is accepted, what is refused, and that a refused body never
/// hands out its last bytes.
@Suite struct VerifyingBodyAWSChunkedTests {
    static let payload: [UInt8] = {
        var rng = SplitMix64(seed: 99)
        return rng.bytes(20_000)
    }()
    static let crc32 = RunningChecksum.compute(.crc32, payload)

    static func headers(_ mode: AWSChunkedMode, length: Int = payload.count, extra: HTTPFields = [:]) -> HTTPFields {
        var fields: HTTPFields = ["Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": String(length),
                                  "x-amz-content-sha256": mode.rawValue]
        for field in extra { fields.add(field.name, field.value) }
        return fields
    }

    static func body(_ bytes: [UInt8], _ mode: AWSChunkedMode, headers: HTTPFields? = nil, chain: ChunkSignatureChain? = nil,
                     slice: Int = 997) throws -> VerifyingBody {
        let fields = headers ?? Self.headers(mode)
        let declaration = try PayloadDeclaration.parse(headers: fields, payload: .streaming(mode.rawValue),
                                                       chain: chain ?? (mode.chunksSigned ? AWSChunkedTestEncoder.chain() : nil))
        return VerifyingBody(MemoryBody(bytes, declaredLength: Int64(bytes.count), sliceSize: slice), declaration: declaration,
                             slots: .spareCores)
    }

    /// Reads until the end or an error; returns the bytes handed out and the S3 error code, if any.
    static func drain(_ body: VerifyingBody, buffer size: Int = 8192) -> (bytes: [UInt8], code: String?) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: size)
        var code: String?
        do {
            while true {
                let n = try buffer.withUnsafeMutableBytes { try body.read(into: $0) }
                if n == 0 { break }
                out += buffer[0..<n]
            }
        } catch let error as S3Error {
            code = error.code
            if ProcessInfo.processInfo.environment["DEBUG_DRAIN"] != nil { print("drain:", error.message) }
        } catch {
            code = "non-S3 error: \(error)"
        }
        return (out, code)
    }

    /// `bytes` with the first occurrence of `old` replaced (binary-safe, unlike a String round trip).
    static func replacing(_ bytes: [UInt8], _ old: String, _ new: String) -> [UInt8] {
        let o = Array(old.utf8)
        guard let at = (0...(bytes.count - o.count)).first(where: { bytes[$0..<($0 + o.count)].elementsEqual(o) }) else {
            preconditionFailure("\(old) not found")
        }
        return Array(bytes[..<at]) + Array(new.utf8) + Array(bytes[(at + o.count)...])
    }

    static func signedBody(trailer: Bool = false, chunkSize: Int = 4096) -> [UInt8] {
        AWSChunkedTestEncoder.encode(payload, chunkSize: chunkSize, mode: trailer ? .signedWithTrailer : .signed,
                                     chain: AWSChunkedTestEncoder.chain(),
                                     trailer: trailer ? [(name: "x-amz-checksum-crc32", value: crc32.base64)] : [])
    }

    @Test(arguments: [1, 100, 8192, 70_000])
    func signedBodiesDecode(buffer: Int) throws {
        let plain = Self.drain(try Self.body(Self.signedBody(), .signed), buffer: buffer)
        #expect(plain.code == nil)
        #expect(plain.bytes == Self.payload)
        let trailer = try Self.body(Self.signedBody(trailer: true), .signedWithTrailer,
                                    headers: Self.headers(.signedWithTrailer, extra: ["x-amz-trailer": "x-amz-checksum-crc32"]))
        let result = Self.drain(trailer, buffer: buffer)
        #expect(result.code == nil)
        #expect(result.bytes == Self.payload)
        #expect(trailer.verifiedChecksum == Self.crc32)
    }

    /// Every way of altering a signed body is refused, and the final bytes are never handed out.
    @Test func tamperingIsRefusedBeforeTheEnd() throws {
        let body = Self.signedBody()
        /// Refused with `expected`, and fewer bytes handed out than the body declared: the consumer can never
        /// complete its upload.
        func refused(_ bytes: [UInt8], _ expected: String, headers: HTTPFields? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let body = try Self.body(bytes, .signed, headers: headers)
            let result = Self.drain(body)
            #expect(result.code == expected, sourceLocation: sourceLocation)
            #expect(Int64(result.bytes.count) < body.declaredLength!, sourceLocation: sourceLocation)
        }
        // A flipped data byte in the middle chunk.
        var flipped = body
        flipped[4096 + 200] ^= 0x01
        try refused(flipped, "SignatureDoesNotMatch")
        // A chunk signature replaced by another valid-looking one.
        let firstSignature = String(decoding: body[21..<85], as: UTF8.self)
        try refused(Self.replacing(body, firstSignature, String(repeating: "0", count: 64)), "SignatureDoesNotMatch")
        // A chunk dropped whole (header, data, CRLF) — with a decoded length that still adds up.
        let chunkBytes = 88 + 4096 + 2 - 1  // "1000;chunk-signature=<64>\r\n" + data + CRLF
        var dropped = Array(body[0..<chunkBytes])
        dropped += body[(2 * chunkBytes)...]
        try refused(dropped, "SignatureDoesNotMatch", headers: Self.headers(.signed, length: Self.payload.count - 4096))
        // Two chunks swapped.
        var swapped = Array(body[chunkBytes..<(2 * chunkBytes)])
        swapped += body[0..<chunkBytes]
        swapped += body[(2 * chunkBytes)...]
        try refused(swapped, "SignatureDoesNotMatch")
        // The final (empty) chunk's signature.
        let finalSignature = String(decoding: body[(body.count - 68)..<(body.count - 4)], as: UTF8.self)
        try refused(Self.replacing(body, finalSignature, String(repeating: "1", count: 64)), "SignatureDoesNotMatch")
        // Cut off before the final chunk.
        try refused(Array(body.dropLast(86)), "IncompleteBody")
        // A decoded length that does not match what the chunks carry.
        try refused(body, "IncompleteBody", headers: Self.headers(.signed, length: Self.payload.count + 1))
        try refused(body, "InvalidRequest", headers: Self.headers(.signed, length: Self.payload.count - 1))
        // Signed with another chain (a body replayed under another request's seed signature).
        let other = AWSChunkedTestEncoder.encode(Self.payload, chunkSize: 4096, mode: .signed,
                                                 chain: AWSChunkedTestEncoder.chain(seed: String(repeating: "e", count: 64)))
        try refused(other, "SignatureDoesNotMatch")
    }

    @Test func trailerChecksAndTampering() throws {
        let announced = Self.headers(.signedWithTrailer, extra: ["x-amz-trailer": "x-amz-checksum-crc32"])
        let body = Self.signedBody(trailer: true)
        // The checksum value changed: the trailer signature fails.
        let changed = Self.replacing(body, "x-amz-checksum-crc32:" + Self.crc32.base64, "x-amz-checksum-crc32:AAAAAA==")
        var result = Self.drain(try Self.body(changed, .signedWithTrailer, headers: announced))
        #expect(result.code == "SignatureDoesNotMatch")
        #expect(result.bytes.count < Self.payload.count)
        // A correctly signed trailer whose checksum does not match the data: BadDigest.
        let wrongSum = AWSChunkedTestEncoder.encode(Self.payload, chunkSize: 4096, mode: .signedWithTrailer, chain: AWSChunkedTestEncoder.chain(),
                                                    trailer: [(name: "x-amz-checksum-crc32", value: "AAAAAA==")])
        result = Self.drain(try Self.body(wrongSum, .signedWithTrailer, headers: announced))
        #expect(result.code == "BadDigest")
        #expect(result.bytes.count < Self.payload.count)
        // Trailer not announced in x-amz-trailer.
        result = Self.drain(try Self.body(body, .signedWithTrailer))
        #expect(result.code == "InvalidRequest")
        // Announced but missing.
        let none = AWSChunkedTestEncoder.encode(Self.payload, chunkSize: 4096, mode: .signedWithTrailer, chain: AWSChunkedTestEncoder.chain())
        result = Self.drain(try Self.body(none, .signedWithTrailer, headers: announced))
        #expect(result.code == "InvalidRequest")
    }

    @Test func unsignedTrailerChecksumIsTheProtection() throws {
        let announced = Self.headers(.unsignedWithTrailer, extra: ["x-amz-trailer": "x-amz-checksum-crc32"])
        func encode(_ payload: [UInt8], sum: ChecksumValue) -> [UInt8] {
            AWSChunkedTestEncoder.encode(payload, chunkSize: 8192, mode: .unsignedWithTrailer, trailer: [(name: sum.algorithm.headerName, value: sum.base64)])
        }
        let good = Self.drain(try Self.body(encode(Self.payload, sum: Self.crc32), .unsignedWithTrailer, headers: announced))
        #expect(good.code == nil && good.bytes == Self.payload)
        var tampered = Self.payload
        tampered[12_345] ^= 0x80
        let bad = Self.drain(try Self.body(encode(tampered, sum: Self.crc32), .unsignedWithTrailer, headers: announced))
        #expect(bad.code == "BadDigest")
        #expect(bad.bytes.count < Self.payload.count)
        // Each algorithm, as a trailer.
        for algorithm in ChecksumAlgorithm.allCases {
            let sum = RunningChecksum.compute(algorithm, Self.payload)
            let headers = Self.headers(.unsignedWithTrailer, extra: ["x-amz-trailer": algorithm.headerName,
                                                                     "x-amz-sdk-checksum-algorithm": algorithm.rawValue])
            let body = try Self.body(encode(Self.payload, sum: sum), .unsignedWithTrailer, headers: headers)
            #expect(Self.drain(body).code == nil)
            #expect(body.verifiedChecksum == sum)
        }
    }

    @Test func checksumHeadersOnPlainBodies() throws {
        func plain(_ headers: HTTPFields) throws -> VerifyingBody {
            VerifyingBody(MemoryBody(Self.payload, sliceSize: 3000),
                          declaration: try PayloadDeclaration.parse(headers: headers, payload: .unsigned, chain: nil))
        }
        let good = try plain(["x-amz-checksum-crc32": Self.crc32.base64])
        #expect(Self.drain(good).code == nil)
        #expect(good.verifiedChecksum == Self.crc32)
        let bad = Self.drain(try plain(["x-amz-checksum-crc32": "AAAAAA=="]))
        #expect(bad.code == "BadDigest")
        #expect(bad.bytes.count < Self.payload.count)
        // Only the algorithm: the gateway computes the value (what S3 stores and returns).
        let computed = try plain(["x-amz-sdk-checksum-algorithm": "CRC32C"])
        #expect(Self.drain(computed).code == nil)
        #expect(computed.verifiedChecksum == RunningChecksum.compute(.crc32c, Self.payload))
        #expect(s3ErrorCode { _ = try plain(["x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="]) } == "InvalidRequest")
        #expect(s3ErrorCode { _ = try plain(["x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "SHA256"]) } == "InvalidRequest")
        #expect(s3ErrorCode { _ = try plain(["x-amz-trailer": "x-amz-checksum-crc32"]) } == "InvalidRequest")
        #expect(s3ErrorCode { _ = try plain(["x-amz-sdk-checksum-algorithm": "MD5"]) } == "InvalidRequest")
        #expect(s3ErrorCode { _ = try plain(["Content-Encoding": "aws-chunked"]) } == "InvalidRequest")
    }

    @Test func declarationErrors() {
        func parse(_ headers: HTTPFields, _ payload: PayloadMode, chain: ChunkSignatureChain? = nil) -> String? {
            s3ErrorCode { _ = try PayloadDeclaration.parse(headers: headers, payload: payload, chain: chain) }
        }
        #expect(parse([:], .streaming(AWSChunkedMode.unsignedWithTrailer.rawValue)) == "MissingContentLength")
        #expect(parse(["x-amz-decoded-content-length": "-1"], .streaming(AWSChunkedMode.unsignedWithTrailer.rawValue)) == "InvalidArgument")
        // Signed chunks need the seed signature of a header-signed request.
        #expect(parse(["x-amz-decoded-content-length": "1"], .streaming(AWSChunkedMode.signed.rawValue)) == "InvalidRequest")
        #expect(parse(["x-amz-decoded-content-length": "1"], .streaming("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")) == "NotImplemented")
        #expect(parse(["x-amz-decoded-content-length": "1", "x-amz-trailer": "x-amz-meta-x"],
                      .streaming(AWSChunkedMode.unsignedWithTrailer.rawValue)) == "InvalidRequest")
    }

    @Test func forwardedHeadersLoseFramingAndChecksums() {
        let fields: HTTPFields = ["Content-Encoding": "aws-chunked,gzip", "x-amz-decoded-content-length": "5",
                                  "X-Amz-Checksum-Crc32": "AAAAAA==", "x-amz-trailer": "x-amz-checksum-crc32",
                                  "x-amz-sdk-checksum-algorithm": "CRC32", "Content-MD5": "x", "x-amz-meta-a": "b",
                                  "x-amz-checksum-type": "FULL_OBJECT"]
        let out = PayloadDeclaration.forwardedHeaders(fields)
        #expect(out.map(\.name) == ["Content-Encoding", "Content-MD5", "x-amz-meta-a", "x-amz-checksum-type"])
        #expect(out["Content-Encoding"] == "gzip")
        #expect(PayloadDeclaration.forwardedHeaders(["Content-Encoding": "aws-chunked"]).count == 0)
    }

    /// The one-pass gathering of the declaring headers gives what a lookup per name gives (first value,
    /// or every value in order), over names in any case, duplicates and same-length look-alikes.
    @Test func declaringFieldsAgreeWithLookups() {
        let names = ["Content-MD5", "content-md5", "CONTENT-MD5", "content-md6", "Content-Encoding", "content-encoding",
                     "content-encodinh", "x-amz-trailer", "X-Amz-Trailer", "x-amz-trailex", "x-amz-decoded-content-length",
                     "X-AMZ-DECODED-CONTENT-LENGTH", "x-amz-sdk-checksum-algorithm", "X-Amz-Sdk-Checksum-Algorithm",
                     "x-amz-sdk-checksum-algorithn", "x-amz-checksum-crc32", "X-AMZ-CHECKSUM-SHA256", "x-amz-checksum-md5",
                     "x-amz-checksum-", "x-amz-checksum-type", "host", "x-amz-date"]
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        for round in 0..<400 {
            var headers = HTTPFields()
            for i in 0..<next(10) { headers.add(names[next(names.count)], "v\(round).\(i)") }
            let gathered = DeclaringFields(headers)
            #expect(gathered.contentMD5 == headers["Content-MD5"])
            #expect(gathered.contentEncodings == headers.values("Content-Encoding"))
            #expect(gathered.decodedContentLength == headers["x-amz-decoded-content-length"])
            #expect(gathered.trailers == headers.values("x-amz-trailer"))
            #expect(gathered.sdkChecksumAlgorithm == headers["x-amz-sdk-checksum-algorithm"])
            let checksums = headers.compactMap { field in ChecksumAlgorithm(headerName: field.name).map { ($0, field.value) } }
            #expect(gathered.checksums.map(\.0) == checksums.map(\.0))
            #expect(gathered.checksums.map(\.1) == checksums.map(\.1))
        }
    }

    /// Header names in any case: the consumed ones and every checksum value header go; the rest of the
    /// `x-amz-checksum-` family (type, algorithm, an unknown algorithm) and look-alikes stay.
    @Test func forwardedHeadersMatchNamesInAnyCase() {
        let fields: HTTPFields = ["X-AMZ-TRAILER": "x-amz-checksum-sha256", "X-Amz-Decoded-Content-Length": "5",
                                  "X-AMZ-SDK-CHECKSUM-ALGORITHM": "SHA256", "x-amz-checksum-sha256": "x",
                                  "X-AMZ-CHECKSUM-CRC64NVME": "x", "x-amz-checksum-sha1": "x", "X-Amz-Checksum-Crc32C": "x",
                                  "x-amz-checksum-md5": "kept", "x-amz-checksum-": "kept", "x-amz-checksum-algorithm": "kept",
                                  "x-amz-trailers": "kept", "CONTENT-ENCODING": "gzip, aws-chunked"]
        let out = PayloadDeclaration.forwardedHeaders(fields)
        #expect(out.map(\.name) == ["x-amz-checksum-md5", "x-amz-checksum-", "x-amz-checksum-algorithm", "x-amz-trailers",
                                    "CONTENT-ENCODING"])
        #expect(out["content-encoding"] == "gzip")
        for algorithm in ChecksumAlgorithm.allCases {
            #expect(PayloadDeclaration.isConsumed(algorithm.headerName.uppercased()))
        }
    }

    /// Seeded mutations of valid bodies in every mode: never a crash, never an accepted body whose payload
    /// differs from what was signed (signed modes) or checksummed (unsigned mode).
    @Test(arguments: AWSChunkedMode.allCases)
    func mutatedBodiesAreNeverAcceptedAltered(mode: AWSChunkedMode) throws {
        var rng = SplitMix64(seed: 0xBAD_C0DE &+ UInt64(mode.rawValue.count))
        let payload = rng.bytes(3000)
        let sum = RunningChecksum.compute(.crc32c, payload)
        let trailer: [(name: String, value: String)] = mode.allowsTrailer ? [(name: "x-amz-checksum-crc32c", value: sum.base64)] : []
        let headers = Self.headers(mode, length: payload.count,
                                   extra: mode.allowsTrailer ? ["x-amz-trailer": "x-amz-checksum-crc32c"] : [:])
        let valid = AWSChunkedTestEncoder.encode(payload, chunkSize: 700, mode: mode,
                                                 chain: mode.chunksSigned ? AWSChunkedTestEncoder.chain() : nil, trailer: trailer)
        let alphabet = Array("0123456789abcdef;=\r\n:-chunk-signaturex-amz".utf8)
        var accepted = 0
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: at)
                case 2: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
                default: bytes[at] = alphabet.randomElement(using: &rng)!
                }
            }
            let body = VerifyingBody(MemoryBody(bytes, declaredLength: Int64(bytes.count), sliceSize: Int.random(in: 1...900, using: &rng)),
                                     declaration: try PayloadDeclaration.parse(headers: headers, payload: .streaming(mode.rawValue),
                                                                                chain: mode.chunksSigned ? AWSChunkedTestEncoder.chain() : nil))
            let result = Self.drain(body, buffer: Int.random(in: 1...5000, using: &rng))
            if result.code == nil {
                accepted += 1
                #expect(result.bytes == payload)
            } else {
                #expect(result.bytes.count < payload.count)
                #expect(!(result.code ?? "").hasPrefix("non-S3"), "\(result.code ?? "")")
            }
        }
        // Mutations such as upper-casing a hex digit of a chunk size keep the body valid; most do not.
        #expect(accepted < 3000 / 4)
    }
}

/// Bodies of a megabyte and more hash on a worker thread: the same answers, the same withheld last bytes.
@Suite struct VerifyingBodyThreadedDigestTests {
    static let payload: [UInt8] = {
        var rng = SplitMix64(seed: 0x7777)
        return rng.bytes(3 << 20)
    }()

    @Test func signedHashAndContentMD5() throws {
        let md5 = Data(Digest.hash(.md5, Self.payload)).base64EncodedString()
        let good = try VerifyingBody(MemoryBody(Self.payload, sliceSize: 300_000), payload: .signedHash(Digest.hash(.sha256, Self.payload)),
                                     contentMD5: md5, slots: .spareCores)
        let result = VerifyingBodyAWSChunkedTests.drain(good, buffer: 256 << 10)
        #expect(result.code == nil && result.bytes == Self.payload)
        var tampered = Self.payload
        tampered[1_000_000] ^= 1
        for (hash, md5Header, code) in [(Digest.hash(.sha256, Self.payload), nil, "XAmzContentSHA256Mismatch"),
                                        (Digest.hash(.sha256, tampered), md5, "BadDigest")] as [([UInt8], String?, String)] {
            let bad = try VerifyingBody(MemoryBody(tampered, sliceSize: 100_000), payload: .signedHash(hash), contentMD5: md5Header, slots: .spareCores)
            let outcome = VerifyingBodyAWSChunkedTests.drain(bad, buffer: 256 << 10)
            #expect(outcome.code == code)
            #expect(outcome.bytes.count < tampered.count)
        }
    }

    @Test func signedChunksAndTrailers() throws {
        let crc = RunningChecksum.compute(.crc32, Self.payload)
        let headers = VerifyingBodyAWSChunkedTests.headers(.signedWithTrailer, length: Self.payload.count,
                                                           extra: ["x-amz-trailer": "x-amz-checksum-crc32"])
        let body = AWSChunkedTestEncoder.encode(Self.payload, chunkSize: 64 << 10, mode: .signedWithTrailer, chain: AWSChunkedTestEncoder.chain(),
                                                trailer: [(name: "x-amz-checksum-crc32", value: crc.base64)])
        let good = try VerifyingBodyAWSChunkedTests.body(body, .signedWithTrailer, headers: headers, slice: 200_000)
        let result = VerifyingBodyAWSChunkedTests.drain(good, buffer: 256 << 10)
        #expect(result.code == nil && result.bytes == Self.payload)
        #expect(good.verifiedChecksum == crc)
        // A flipped byte early in the body: the worker finds it, the reader throws long before the end.
        var early = body
        early[5000] ^= 1
        let bad = VerifyingBodyAWSChunkedTests.drain(try VerifyingBodyAWSChunkedTests.body(early, .signedWithTrailer, headers: headers, slice: 200_000),
                                                     buffer: 256 << 10)
        #expect(bad.code == "SignatureDoesNotMatch")
        #expect(bad.bytes.count < Self.payload.count / 2)
        // A flipped byte in the last chunk: still refused before the last bytes.
        var late = body
        late[late.count - 300] ^= 1
        let lateResult = VerifyingBodyAWSChunkedTests.drain(
            try VerifyingBodyAWSChunkedTests.body(late, .signedWithTrailer, headers: headers, slice: 200_000), buffer: 256 << 10)
        #expect(lateResult.code == "SignatureDoesNotMatch")
        #expect(lateResult.bytes.count < Self.payload.count)
    }

    /// Small signed chunks put more boundaries in one slot than it carries (`maxMarksPerSlot`): still every chunk
    /// signature checked in order, and a tampered chunk in the middle refused before the end.
    @Test func manySmallSignedChunks() throws {
        let payload = Array(Self.payload[0..<(1 << 20) + 12_345])
        let body = AWSChunkedTestEncoder.encode(payload, chunkSize: 500, mode: .signed, chain: AWSChunkedTestEncoder.chain())
        let headers = VerifyingBodyAWSChunkedTests.headers(.signed, length: payload.count)
        let good = VerifyingBodyAWSChunkedTests.drain(try VerifyingBodyAWSChunkedTests.body(body, .signed, headers: headers, slice: 70_000),
                                                      buffer: 256 << 10)
        #expect(good.code == nil && good.bytes == payload)
        // A data byte of chunk 1000: "1f4;chunk-signature=<64>\r\n" (86 bytes), 500 data bytes, CRLF per chunk.
        var tampered = body
        tampered[1000 * 588 + 86 + 10] ^= 1
        let bad = VerifyingBodyAWSChunkedTests.drain(try VerifyingBodyAWSChunkedTests.body(tampered, .signed, headers: headers, slice: 70_000),
                                                     buffer: 256 << 10)
        #expect(bad.code == "SignatureDoesNotMatch")
        #expect(bad.bytes.count < payload.count)
    }

    /// The unsigned-trailer mode (boto3/aws CLI over https): CRC32C and CRC64NVME on the worker, zlib's CRC32 inline
    /// (cheaper than a hand-off); the trailers agree with the payload, a flipped data byte is a BadDigest before the last byte.
    @Test(arguments: [ChecksumAlgorithm.crc32, .crc32c, .crc64nvme])
    func unsignedTrailerOnTheWorker(algorithm: ChecksumAlgorithm) throws {
        let sum = RunningChecksum.compute(algorithm, Self.payload)
        let headers = VerifyingBodyAWSChunkedTests.headers(.unsignedWithTrailer, length: Self.payload.count,
                                                           extra: ["x-amz-trailer": algorithm.headerName])
        let body = AWSChunkedTestEncoder.encode(Self.payload, chunkSize: 64 << 10, mode: .unsignedWithTrailer, chain: nil,
                                                trailer: [(name: algorithm.headerName, value: sum.base64)])
        let good = try VerifyingBodyAWSChunkedTests.body(body, .unsignedWithTrailer, headers: headers, slice: 100_000)
        let result = VerifyingBodyAWSChunkedTests.drain(good, buffer: 1 << 20)
        #expect(result.code == nil && result.bytes == Self.payload)
        #expect(good.verifiedChecksum == sum)
        #expect(good.digestWorkerStarted == (algorithm != .crc32))
        var tampered = body
        tampered[body.count / 3] ^= 1
        let bad = VerifyingBodyAWSChunkedTests.drain(
            try VerifyingBodyAWSChunkedTests.body(tampered, .unsignedWithTrailer, headers: headers, slice: 100_000), buffer: 1 << 20)
        #expect(bad.code == "BadDigest")
        #expect(bad.bytes.count < Self.payload.count)
    }

    /// A large body hashes on a second thread only while a core is to spare (`BackgroundSlots`, shared with the
    /// encrypted reads): with another long transfer in flight on two cores it hashes inline, to the same results.
    /// Either way it counts as a long transfer while it is read, and gives its count and slot back at its end.
    @Test func aLargeBodyHashesInlineWhenNoCoreIsToSpare() throws {
        let md5 = Data(Digest.hash(.md5, Self.payload)).base64EncodedString()
        /// Whether the body hashed on a second thread; the counts are checked after its first piece and at its end.
        func verify(_ slots: BackgroundSlots, others: Int, secondThread: Int) throws -> Bool {
            let body = try VerifyingBody(MemoryBody(Self.payload, sliceSize: 300_000), payload: .signedHash(Digest.hash(.sha256, Self.payload)),
                                         contentMD5: md5, slots: slots)
            var first = [UInt8](repeating: 0, count: 256 << 10)
            let n = try first.withUnsafeMutableBytes { try body.read(into: $0) }
            #expect(slots.activeStreams == others + 1 && slots.inUse == secondThread)
            let rest = VerifyingBodyAWSChunkedTests.drain(body, buffer: 256 << 10)
            #expect(rest.code == nil && Array(first[0..<n]) + rest.bytes == Self.payload)
            #expect(body.payloadMD5 == Digest.hash(.md5, Self.payload))
            #expect(slots.activeStreams == others && slots.inUse == 0, "the body ended: its count and slot are back")
            return body.digestWorkerStarted
        }
        #expect(try verify(BackgroundSlots(cores: 2), others: 0, secondThread: 1), "one upload on two idle cores hashes on a second thread")

        let busy = BackgroundSlots(cores: 2)
        busy.streamStarted()  // another long transfer holds the other core
        #expect(try !verify(busy, others: 1, secondThread: 0), "no core to spare: inline")

        // A tampered body fails inline as it does on the worker, and leaves the counts as they were.
        var tampered = Self.payload
        tampered[2_000_000] ^= 1
        let bad = try VerifyingBody(MemoryBody(tampered, sliceSize: 300_000), payload: .signedHash(Digest.hash(.sha256, Self.payload)),
                                    contentMD5: nil, slots: busy)
        #expect(VerifyingBodyAWSChunkedTests.drain(bad, buffer: 256 << 10).code == "XAmzContentSHA256Mismatch")
        #expect(!bad.digestWorkerStarted && busy.activeStreams == 1 && busy.inUse == 0)
    }

    /// A large body that hashes nothing worth a second thread (no digest at all) still counts as a long transfer
    /// while it is read: it keeps a core busy, which an encrypted read asking for a second thread must see.
    @Test func aLargeBodyWithoutDigestsStillCountsAsALongTransfer() throws {
        let slots = BackgroundSlots(cores: 2)
        let body = try VerifyingBody(MemoryBody(Self.payload, sliceSize: 300_000), payload: .unsigned, contentMD5: nil, slots: slots)
        var first = [UInt8](repeating: 0, count: 256 << 10)
        _ = try first.withUnsafeMutableBytes { try body.read(into: $0) }
        #expect(slots.activeStreams == 1 && !body.digestWorkerStarted)
        slots.streamStarted()  // a long read arrives and asks for a second thread
        #expect(!slots.tryAcquire(), "beside the upload, the read finds no core to spare")
        slots.streamEnded()
        _ = VerifyingBodyAWSChunkedTests.drain(body, buffer: 256 << 10)
        #expect(slots.activeStreams == 0)
    }

    @Test func abandonedBodiesStopTheirWorker() throws {
        // Read part of a large body, then drop it: the worker must not keep the body (or the test) alive.
        for _ in 0..<50 {
            let body = try VerifyingBody(MemoryBody(Self.payload, sliceSize: 256 << 10), payload: .signedHash(Digest.hash(.sha256, Self.payload)),
                                         contentMD5: nil, slots: .spareCores)
            var buffer = [UInt8](repeating: 0, count: 256 << 10)
            _ = try buffer.withUnsafeMutableBytes { try body.read(into: $0) }
        }
    }
}

/// `computePayloadMD5()`: the MD5 a streamed upload's or part's ETag comes from, computed with the other digests (on
/// their worker for bodies of a megabyte and more), once also when the client sent a Content-MD5.
@Suite struct VerifyingBodyPayloadMD5Tests {
    static let large = VerifyingBodyThreadedDigestTests.payload
    static let small = Array(large.prefix(100_000))

    @Test(arguments: [(false, 300_000), (true, 300_000), (false, 7_777), (true, 7_777)])
    func isTheMD5OfThePayloadWithOrWithoutOtherDigests(large: Bool, slice: Int) throws {
        let payload = large ? Self.large : Self.small
        for payloadMode in [PayloadMode.unsigned, .signedHash(Digest.hash(.sha256, payload))] {
            let body = try VerifyingBody(MemoryBody(payload, sliceSize: slice), payload: payloadMode, contentMD5: nil)
            body.computePayloadMD5()
            #expect(body.payloadMD5 == nil)
            let result = VerifyingBodyAWSChunkedTests.drain(body, buffer: 256 << 10)
            #expect(result.code == nil && result.bytes == payload)
            #expect(body.payloadMD5 == Digest.hash(.md5, payload))
        }
    }

    @Test func notComputedUnlessAskedOrDeclared() throws {
        let plain = try VerifyingBody(MemoryBody(Self.large, sliceSize: 300_000), payload: .unsigned, contentMD5: nil)
        #expect(VerifyingBodyAWSChunkedTests.drain(plain, buffer: 256 << 10).code == nil)
        #expect(plain.payloadMD5 == nil)
        // A declared Content-MD5 is checked and is then the payload's MD5 (one pass, also when asked for).
        let md5 = Data(Digest.hash(.md5, Self.large)).base64EncodedString()
        for ask in [false, true] {
            let declared = try VerifyingBody(MemoryBody(Self.large, sliceSize: 300_000), payload: .unsigned, contentMD5: md5)
            if ask { declared.computePayloadMD5() }
            #expect(VerifyingBodyAWSChunkedTests.drain(declared, buffer: 256 << 10).code == nil)
            #expect(declared.payloadMD5 == Digest.hash(.md5, Self.large))
        }
    }

    /// A part sent with `x-amz-checksum-crc32` (the SDKs' default) and no Content-MD5 is not MD5-hashed: its checksum is
    /// verified inline, no worker starts, and a wrong checksum is a BadDigest before the last byte. Asked for the MD5,
    /// the same body hashes on the worker.
    @Test func aCRC32BodyIsVerifiedWithoutMD5OrWorker() throws {
        let crc = RunningChecksum.compute(.crc32, Self.large)
        func body(_ bytes: [UInt8], checksum: String) throws -> VerifyingBody {
            let declaration = try PayloadDeclaration.parse(headers: ["x-amz-checksum-crc32": checksum], payload: .unsigned, chain: nil)
            return VerifyingBody(MemoryBody(bytes, sliceSize: 300_000), declaration: declaration, slots: .spareCores)
        }
        let good = try body(Self.large, checksum: crc.base64)
        #expect(!ClientETag.partETagIsPlaintextMD5(contentMD5: false, checksum: good.declaration.checksum))
        let result = VerifyingBodyAWSChunkedTests.drain(good, buffer: 256 << 10)
        #expect(result.code == nil && result.bytes == Self.large)
        #expect(good.verifiedChecksum == crc && good.payloadMD5 == nil && !good.digestWorkerStarted)

        var tampered = Self.large
        tampered[Self.large.count - 5] ^= 1
        let bad = try body(tampered, checksum: crc.base64)
        let outcome = VerifyingBodyAWSChunkedTests.drain(bad, buffer: 256 << 10)
        #expect(outcome.code == "BadDigest")
        #expect(outcome.bytes.count < Self.large.count && bad.verifiedChecksum == nil && !bad.digestWorkerStarted)

        let asked = try body(Self.large, checksum: crc.base64)
        asked.computePayloadMD5()
        #expect(VerifyingBodyAWSChunkedTests.drain(asked, buffer: 256 << 10).code == nil)
        #expect(asked.payloadMD5 == Digest.hash(.md5, Self.large) && asked.digestWorkerStarted)
    }

    /// A body failing a check has no payload MD5 (nothing could take it for an ETag), small or large.
    @Test func aFailedBodyHasNone() throws {
        for payload in [Self.small, Self.large] {
            var tampered = payload
            tampered[payload.count / 2] ^= 1
            let body = try VerifyingBody(MemoryBody(tampered, sliceSize: 100_000), payload: .signedHash(Digest.hash(.sha256, payload)),
                                         contentMD5: nil)
            body.computePayloadMD5()
            #expect(VerifyingBodyAWSChunkedTests.drain(body, buffer: 256 << 10).code == "XAmzContentSHA256Mismatch")
            #expect(body.payloadMD5 == nil)
        }
    }

    /// aws-chunked bodies (signed chunks, on the worker) give the MD5 of the decoded payload.
    @Test func awsChunkedGivesTheDecodedPayloadsMD5() throws {
        let headers = VerifyingBodyAWSChunkedTests.headers(.signed, length: Self.large.count)
        let framed = AWSChunkedTestEncoder.encode(Self.large, chunkSize: 64 << 10, mode: .signed, chain: AWSChunkedTestEncoder.chain())
        let body = try VerifyingBodyAWSChunkedTests.body(framed, .signed, headers: headers, slice: 100_000)
        body.computePayloadMD5()
        let result = VerifyingBodyAWSChunkedTests.drain(body, buffer: 256 << 10)
        #expect(result.code == nil && result.bytes == Self.large)
        #expect(body.payloadMD5 == Digest.hash(.md5, Self.large))
    }
}

extension BackgroundSlots {
    /// Always a core to spare: tests that check the hashing thread's path run it whatever runs beside them.
    static let spareCores = BackgroundSlots(cores: 1 << 20)
}
