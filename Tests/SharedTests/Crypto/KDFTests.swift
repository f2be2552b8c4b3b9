import Testing
@testable import Shared

@Suite struct KDFTests {
    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// RFC 7914 §12, first and second vectors.
    @Test func scryptRFC7914() throws {
        let a = try KDF.scrypt(password: [], salt: [], n: 16, r: 1, p: 1, length: 64)
        #expect(Encoding.hex(a) == "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906")
        let b = try KDF.scrypt(password: bytes("password"), salt: bytes("NaCl"), n: 1024, r: 8, p: 16, length: 64)
        #expect(Encoding.hex(b) == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640")
    }

    @Test func scryptRejectsBadParameters() {
        #expect(throws: KDFError.self) { try KDF.scrypt(password: [1], salt: [1], n: 1000, r: 8, p: 1, length: 32) }
        #expect(throws: KDFError.self) { try KDF.scrypt(password: [1], salt: [1], n: 1024, r: 0, p: 1, length: 32) }
        // Memory ceiling below what N and r need: OpenSSL refuses rather than allocating.
        #expect(throws: KDFError.self) { try KDF.scrypt(password: [1], salt: [1], n: 1 << 15, r: 8, p: 1, length: 32, maxMemory: 1 << 20) }
    }

    /// RFC 7914 §11 (PBKDF2-HMAC-SHA256 vector).
    @Test func pbkdf2SHA256() throws {
        let out = try KDF.pbkdf2SHA256(password: bytes("passwd"), salt: bytes("salt"), iterations: 1, length: 64)
        #expect(Encoding.hex(out) == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
    }

    /// RFC 5869 test cases 1 and 3.
    @Test func hkdfRFC5869() throws {
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        let one = try KDF.hkdfSHA256(key: ikm, salt: Array(0...12), info: Array(0xf0...0xf9), length: 42)
        #expect(Encoding.hex(one) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let three = try KDF.hkdfSHA256(key: ikm, salt: [], info: [], length: 42)
        #expect(Encoding.hex(three) == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }
}
