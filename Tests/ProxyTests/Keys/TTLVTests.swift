import Testing
@testable import Proxy

@Suite struct TTLVTests {
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.filter { !$0.isWhitespace && $0 != "|" })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// The encoding examples of the KMIP specification (§9.1.2), one per type.
    static let specExamples: [(TTLV, String)] = [
        (TTLV(0x420020, .integer(8)), "420020 | 02 | 00000004 | 00000008 00000000"),
        (TTLV(0x420020, .longInteger(123_456_789_000_000_000)), "420020 | 03 | 00000008 | 01B69B4BA5749200"),
        (TTLV(0x420020, .bigInteger(bytes("0000000003FD35EB6BC2DF4618080000"))),
         "420020 | 04 | 00000010 | 0000000003FD35EB 6BC2DF4618080000"),
        (TTLV(0x420020, .enumeration(255)), "420020 | 05 | 00000004 | 000000FF 00000000"),
        (TTLV(0x420020, .boolean(true)), "420020 | 06 | 00000008 | 0000000000000001"),
        (TTLV(0x420020, .textString("Hello World")), "420020 | 07 | 0000000B | 48656C6C6F20576F726C640000000000"),
        (TTLV(0x420020, .byteString([1, 2, 3])), "420020 | 08 | 00000003 | 0102030000000000"),
        (TTLV(0x420020, .dateTime(0x47DA67F8)), "420020 | 09 | 00000008 | 0000000047DA67F8"),
        (TTLV(0x420020, .interval(864_000)), "420020 | 0A | 00000004 | 000D2F0000000000"),
        (.structure(0x420020, [TTLV(0x420004, .enumeration(254)), TTLV(0x420005, .integer(255))]),
         "420020 | 01 | 00000020 | 420004 05 00000004 000000FE00000000 | 420005 02 00000004 000000FF00000000"),
    ]

    @Test func specificationExamplesEncodeAndDecode() throws {
        for (item, hex) in Self.specExamples {
            #expect(item.encoded() == Self.bytes(hex), "\(item)")
            #expect(try TTLV.decode(Self.bytes(hex)) == item)
        }
    }

    /// An Encrypt response captured from PyKMIP 0.11 (AES-GCM with a tag), as a real server encodes it.
    static let pykmipEncryptResponse = bytes("""
        42007b01000000d042007a0100000048420069010000002042006a0200000004000000010000000042006b02000000040000000400000000\
        4200920900000008000000006b0a6fca42000d0200000004000000010000000042000f010000007842005c05000000040000001f00000000\
        42007f0500000004000000000000000042007c0100000050420094070000000131000000000000004200c20800000020718dc59c3b2f5cd4\
        76d52c7617e76fef5e2dcc7510b38a4acdf5503d056249f74200ff0800000010f0d48d25e7344d7fd03e38c19069f571
        """)

    @Test func decodesARealServerResponse() throws {
        let message = try TTLV.decode(Self.pykmipEncryptResponse)
        #expect(try TTLV.messageSize(header: Self.pykmipEncryptResponse.prefix(8)) == Self.pykmipEncryptResponse.count)
        guard case .success(let payload) = try KMIPMessage.outcome(of: message, for: .encrypt) else {
            Issue.record("expected success")
            return
        }
        #expect(payload?[KMIPTag.uniqueIdentifier]?.text == "1")
        let result = try KMIPMessage.encryptResult(payload)
        #expect(result.ciphertext.count == 32)
        #expect(result.tag == Self.bytes("f0d48d25e7344d7fd03e38c19069f571"))
        #expect(message.encoded() == Self.pykmipEncryptResponse)
        #expect(throws: TTLVError.self) { try KMIPMessage.outcome(of: message, for: .decrypt) }
    }

    @Test func requestsHaveTheSpecifiedShape() throws {
        let request = KMIPMessage.encrypt(uid: "42", plaintext: [1, 2], nonce: Array(repeating: 7, count: 12), aad: [9])
        let decoded = try TTLV.decode(request.encoded())
        #expect(decoded == request)
        let header = try #require(decoded[KMIPTag.requestHeader])
        #expect(header[KMIPTag.protocolVersion]?[KMIPTag.protocolVersionMajor]?.integer == 1)
        #expect(header[KMIPTag.protocolVersion]?[KMIPTag.protocolVersionMinor]?.integer == 4)
        let item = try #require(decoded[KMIPTag.batchItem])
        #expect(item[KMIPTag.operation]?.enumeration == 0x1F)
        let payload = try #require(item[KMIPTag.requestPayload])
        let tags = payload.children(KMIPTag.uniqueIdentifier).count + payload.children(KMIPTag.data).count
        #expect(tags == 2)
        #expect(payload[KMIPTag.cryptographicParameters]?[KMIPTag.blockCipherMode]?.enumeration == 9)
        #expect(payload[KMIPTag.authenticatedEncryptionAdditionalData]?.bytes == [9])
    }

    @Test func failuresCarryReasonAndMessage() throws {
        let response = TTLV.structure(KMIPTag.responseMessage, [
            .structure(KMIPTag.responseHeader, [TTLV(KMIPTag.batchCount, .integer(1))]),
            .structure(KMIPTag.batchItem, [
                TTLV(KMIPTag.operation, .enumeration(0x20)),
                TTLV(KMIPTag.resultStatus, .enumeration(1)),
                TTLV(KMIPTag.resultReason, .enumeration(0x0C)),
                TTLV(KMIPTag.resultMessage, .textString("The decryption key must be in the Active state")),
            ]),
        ])
        let outcome = try KMIPMessage.outcome(of: TTLV.decode(response.encoded()), for: .decrypt)
        #expect(outcome == .failure(reason: 0x0C, message: "The decryption key must be in the Active state"))
        let error = KMIPKeyProvider.error(operation: .decrypt, key: "7", reason: 0x0C, message: "inactive")
        #expect(error.code == .denied)
        #expect(KMIPKeyProvider.error(operation: .decrypt, key: "7", reason: 0x0A, message: "tag").code == .invalidCiphertext)
        #expect(KMIPKeyProvider.error(operation: .encrypt, key: "7", reason: 0x100, message: "").code == .unavailable)
    }

    @Test func strictDecodingRejectsMalformedInput() {
        let good = Self.bytes("420020 | 02 | 00000004 | 00000008 00000000")
        let cases: [(String, [UInt8])] = [
            ("non-zero padding", Self.bytes("420020 | 02 | 00000004 | 00000008 00000001")),
            ("wrong integer length", Self.bytes("420020 | 02 | 00000008 | 00000008 00000000")),
            ("truncated", Array(good.dropLast())),
            ("trailing bytes", good + [0, 0, 0, 0, 0, 0, 0, 0]),
            ("unknown type", Self.bytes("420020 | 0B | 00000004 | 00000008 00000000")),
            ("not a KMIP tag", Self.bytes("120020 | 02 | 00000004 | 00000008 00000000")),
            ("boolean 2", Self.bytes("420020 | 06 | 00000008 | 0000000000000002")),
            ("invalid UTF-8", Self.bytes("420020 | 07 | 00000002 | C328000000000000")),
            ("length beyond the end", Self.bytes("420020 | 08 | 7FFFFFF0 | 0102030000000000")),
            ("structure length not a multiple of 8", Self.bytes("420020 | 01 | 00000004 | 00000000 00000000")),
            ("child overruns structure", Self.bytes("420020 | 01 | 00000008 | 420004 05 00000004 000000FE00000000")),
            ("empty", []),
        ]
        for (name, input) in cases {
            #expect(throws: TTLVError.self, "\(name)") { try TTLV.decode(input) }
        }
    }

    @Test func limitsBoundDepthItemsAndSize() throws {
        var nested = TTLV(0x420001, .integer(1))
        for _ in 0..<20 { nested = .structure(0x420002, [nested]) }
        #expect(throws: TTLVError.self) { try TTLV.decode(nested.encoded()) }
        var limits = TTLV.Limits()
        limits.maxDepth = 32
        #expect(try TTLV.decode(nested.encoded(), limits: limits) == nested)

        let wide = TTLV.structure(0x420002, Array(repeating: TTLV(0x420001, .integer(1)), count: 5000))
        #expect(throws: TTLVError.self) { try TTLV.decode(wide.encoded()) }
        limits.maxMessageSize = 64
        #expect(throws: TTLVError.self) { try TTLV.decode(TTLV(0x420001, .byteString(Array(repeating: 1, count: 100))).encoded(), limits: limits) }
        #expect(throws: TTLVError.self) { try TTLV.messageSize(header: Self.bytes("42007B 01 00100000"), limits: limits) }
        #expect(throws: TTLVError.self) { try TTLV.messageSize(header: Self.bytes("42007B 02 00000008")) }
    }
}
