import Testing
@testable import Shared

@Suite struct DigestTests {
    @Test func sha256KnownAnswers() {
        #expect(Encoding.hex(Digest.sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Encoding.hex(Digest.sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func md5KnownAnswer() {
        #expect(Encoding.hex(Digest.hash(.md5, Array("abc".utf8))) == "900150983cd24fb0d6963f7d28e17f72")
    }

    @Test func incrementalEqualsOneShot() {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var d = Digest(.sha256)
        d.update(Array(data[..<4097]))
        d.update(Array(data[4097...]))
        #expect(d.finalize() == Digest.hash(.sha256, data))
    }

    @Test func hmacRFC4231Case2() {
        let mac = HMAC.sha256(key: Array("Jefe".utf8), string: "what do ya want for nothing?")
        #expect(Encoding.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func hexRoundTripAndRejects() {
        #expect(Encoding.fromHex("00ff10Ab") == [0, 255, 16, 171])
        #expect(Encoding.fromHex("abc") == nil)
        #expect(Encoding.fromHex("zz") == nil)
    }

    static let hexCases: [([UInt8], String)] = [
        ([], ""), ([0x00], "00"), ([0x09, 0x0a, 0xf0, 0xff], "090af0ff"),
        ((0...255).map { UInt8($0) }, (0...255).map { b -> String in
            let digits = Array("0123456789abcdef")
            return "\(digits[b / 16])\(digits[b % 16])"
        }.joined()),
    ]

    @Test(arguments: hexCases)
    func hexEncodesLowerCase(bytes: [UInt8], expected: String) {
        #expect(Encoding.hex(bytes) == expected)
        #expect(Encoding.hex(bytes[...]) == expected)
        var out: [UInt8] = Array("x=".utf8)
        Encoding.appendHex(bytes, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "x=" + expected)
        #expect(Encoding.fromHex(expected) == bytes)
    }

    @Test func randomBytesDiffer() {
        let a = SecureRandom.bytes(32), b = SecureRandom.bytes(32)
        #expect(a.count == 32)
        #expect(a != b)
    }
}
