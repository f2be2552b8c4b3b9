import Testing
@testable import Shared

@Suite struct AEADTests {
    private func hex(_ s: String) -> [UInt8] { Encoding.fromHex(s)! }

    /// GCM specification (McGrew & Viega) test case 16: AES-256, 60-byte plaintext, 20-byte AAD.
    @Test func aes256GCMKnownAnswer() throws {
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
        let iv = hex("cafebabefacedbaddecaf888")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let expected = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            + "76fc6ece0f4e1768cddf8853bb2d551b"
        let sealed = try AEAD.seal(.aes256GCM, key: key, nonce: iv, aad: aad, plaintext: plaintext)
        #expect(Encoding.hex(sealed) == expected)
        #expect(try AEAD.open(.aes256GCM, key: key, nonce: iv, aad: aad, sealed: sealed) == plaintext)
    }

    /// GCM test case 13: empty plaintext, zero key and IV: only a tag.
    @Test func aes256GCMEmptyMessage() throws {
        let sealed = try AEAD.seal(.aes256GCM, key: [UInt8](repeating: 0, count: 32), nonce: [UInt8](repeating: 0, count: 12), aad: [], plaintext: [])
        #expect(Encoding.hex(sealed) == "530f8afbc74536b9a963b4f1c4cb738b")
        #expect(try AEAD.open(.aes256GCM, key: [UInt8](repeating: 0, count: 32), nonce: [UInt8](repeating: 0, count: 12), aad: [], sealed: sealed) == [])
    }

    /// RFC 8439 §2.8.2.
    @Test func chacha20Poly1305KnownAnswer() throws {
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        let nonce = hex("070000004041424344454647")
        let aad = hex("50515253c0c1c2c3c4c5c6c7")
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let expected = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
            + "1ae10b594f09e26a7e902ecbd0600691"
        let sealed = try AEAD.seal(.chacha20Poly1305, key: key, nonce: nonce, aad: aad, plaintext: plaintext)
        #expect(Encoding.hex(sealed) == expected)
        #expect(try AEAD.open(.chacha20Poly1305, key: key, nonce: nonce, aad: aad, sealed: sealed) == plaintext)
    }

    /// A duplicate opens what the key sealed, independently of the original: each keeps its own message state, so
    /// two threads can open one stream's messages at once.
    @Test(arguments: AEADAlgorithm.allCases)
    func aDuplicateOpensIndependentlyOfTheOriginal(_ algorithm: AEADAlgorithm) throws {
        let key = SecureRandom.bytes(32)
        let aad = Array("aad".utf8)
        let messages = (0..<2).map { i in (nonce: SecureRandom.bytes(12), plaintext: SecureRandom.bytes(1000 + i)) }
        let sealed = try messages.map { try AEAD.seal(algorithm, key: key, nonce: $0.nonce, aad: aad, plaintext: $0.plaintext) }
        let original = try AEADContext(algorithm: algorithm, key: key, sealing: false)
        let copy = try original.duplicate()
        #expect(copy.algorithm == algorithm && !copy.sealing)
        // The original starts message 0 in pieces; the copy opens message 1 whole meanwhile; the original finishes.
        var first = [UInt8](repeating: 0, count: messages[0].plaintext.count)
        var second = [UInt8](repeating: 0, count: messages[1].plaintext.count)
        let count0 = messages[0].plaintext.count
        try messages[0].nonce.withUnsafeBytes { n in
            try aad.withUnsafeBytes { a in try original.openStart(nonce: n, aad: a) }
        }
        try sealed[0].withUnsafeBytes { s in
            try first.withUnsafeMutableBytes { o in
                try original.openUpdate(UnsafeRawBufferPointer(rebasing: s[0..<500]), into: o.baseAddress!)
                try messages[1].nonce.withUnsafeBytes { n in
                    try aad.withUnsafeBytes { a in
                        try sealed[1].withUnsafeBytes { s1 in
                            try second.withUnsafeMutableBytes { o1 in _ = try copy.open(nonce: n, aad: a, sealed: s1, into: o1) }
                        }
                    }
                }
                try original.openUpdate(UnsafeRawBufferPointer(rebasing: s[500..<count0]), into: o.baseAddress! + 500)
                try original.openFinish(tag: UnsafeRawBufferPointer(rebasing: s[count0...]), wiping: o)
            }
        }
        #expect(first == messages[0].plaintext && second == messages[1].plaintext)
    }

    @Test(arguments: AEADAlgorithm.allCases)
    func everyFlippedBitFailsAndReleasesNothing(_ algorithm: AEADAlgorithm) throws {
        let key = SecureRandom.bytes(32)
        let nonce = SecureRandom.bytes(12)
        let aad = Array("aad".utf8)
        let plaintext = (0..<100).map { UInt8($0) }
        let sealed = try AEAD.seal(algorithm, key: key, nonce: nonce, aad: aad, plaintext: plaintext)
        let context = try AEADContext(algorithm: algorithm, key: key, sealing: false)
        for position in stride(from: 0, to: sealed.count * 8, by: 7) {
            var damaged = sealed
            damaged[position / 8] ^= 1 << UInt8(position % 8)
            var output = [UInt8](repeating: 0xAA, count: plaintext.count)
            #expect(throws: AEADError.authenticationFailed) {
                try damaged.withUnsafeBytes { s in
                    try aad.withUnsafeBytes { a in
                        try nonce.withUnsafeBytes { n in
                            try output.withUnsafeMutableBytes { o in _ = try context.open(nonce: n, aad: a, sealed: s, into: o) }
                        }
                    }
                }
            }
            #expect(output.allSatisfy { $0 == 0 }, "failed open must zero its output")
        }
        // Wrong AAD and wrong nonce fail too; the same context still opens the genuine message afterwards.
        #expect(throws: AEADError.authenticationFailed) { try AEAD.open(algorithm, key: key, nonce: nonce, aad: Array("aae".utf8), sealed: sealed) }
        var otherNonce = nonce
        otherNonce[11] ^= 1
        #expect(throws: AEADError.authenticationFailed) { try AEAD.open(algorithm, key: key, nonce: otherNonce, aad: aad, sealed: sealed) }
        #expect(try AEAD.open(algorithm, key: key, nonce: nonce, aad: aad, sealed: sealed) == plaintext)
    }

    @Test(arguments: AEADAlgorithm.allCases)
    func reusedContextMatchesOneShotAndWorksInPlace(_ algorithm: AEADAlgorithm) throws {
        let key = SecureRandom.bytes(32)
        let sealer = try AEADContext(algorithm: algorithm, key: key, sealing: true)
        let opener = try AEADContext(algorithm: algorithm, key: key, sealing: false)
        for size in [0, 1, 15, 16, 17, 4096, 65536] {
            let plaintext = SecureRandom.bytes(size)
            let nonce = SecureRandom.bytes(12)
            let aad = SecureRandom.bytes(size % 40)
            // In place: plaintext buffer becomes ciphertext || tag, then plaintext again.
            var buffer = plaintext + [UInt8](repeating: 0, count: 16)
            let written = try buffer.withUnsafeMutableBytes { b in
                try nonce.withUnsafeBytes { n in
                    try aad.withUnsafeBytes { a in
                        try sealer.seal(nonce: n, aad: a, plaintext: UnsafeRawBufferPointer(rebasing: b[0..<size]), into: b)
                    }
                }
            }
            #expect(written == size + 16)
            #expect(buffer == (try AEAD.seal(algorithm, key: key, nonce: nonce, aad: aad, plaintext: plaintext)))
            let opened = try buffer.withUnsafeMutableBytes { b in
                try nonce.withUnsafeBytes { n in
                    try aad.withUnsafeBytes { a in try opener.open(nonce: n, aad: a, sealed: UnsafeRawBufferPointer(b), into: b) }
                }
            }
            #expect(opened == size)
            #expect(Array(buffer[0..<size]) == plaintext)
        }
    }

    /// A message opened piece by piece (`openStart`/`openUpdate`/`openFinish`) gives what `open` gives, for cuts
    /// anywhere (inside a block, on a block edge, one byte at a time); a modified byte or tag fails at the end and
    /// zeroes everything the pieces wrote.
    @Test(arguments: AEADAlgorithm.allCases)
    func piecewiseOpenMatchesOneShotAndFailsClosed(_ algorithm: AEADAlgorithm) throws {
        let key = SecureRandom.bytes(32)
        let nonce = SecureRandom.bytes(12)
        let aad = Array("chunk".utf8)
        let plaintext = SecureRandom.bytes(1000)
        let sealed = try AEAD.seal(algorithm, key: key, nonce: nonce, aad: aad, plaintext: plaintext)
        let opener = try AEADContext(algorithm: algorithm, key: key, sealing: false)
        func piecewise(_ message: [UInt8], cuts: [Int]) -> ([UInt8], AEADError?) {
            var output = [UInt8](repeating: 0xAA, count: plaintext.count)
            let result: AEADError? = message.withUnsafeBytes { m in
                nonce.withUnsafeBytes { n in
                    aad.withUnsafeBytes { a in
                        output.withUnsafeMutableBytes { o in
                            do throws(AEADError) {
                                try opener.openStart(nonce: n, aad: a)
                                var from = 0
                                for cut in cuts + [plaintext.count] where cut >= from {
                                    try opener.openUpdate(UnsafeRawBufferPointer(rebasing: m[from..<cut]), into: o.baseAddress! + from)
                                    from = cut
                                }
                                try opener.openFinish(tag: UnsafeRawBufferPointer(rebasing: m[plaintext.count...]), wiping: o)
                                return nil
                            } catch { return error }
                        }
                    }
                }
            }
            return (output, result)
        }
        for cuts in [[], [0], [1], [15, 16, 17], [500], [999], Array(0..<plaintext.count)] {
            let (opened, error) = piecewise(sealed, cuts: cuts)
            #expect(error == nil && opened == plaintext, "cuts \(cuts.prefix(3))")
        }
        for position in [0, 17, 500, 999, 1000, 1015] {
            var damaged = sealed
            damaged[position] ^= 0x20
            let (opened, error) = piecewise(damaged, cuts: [1, 500])
            #expect(error == .authenticationFailed, "byte \(position)")
            #expect(opened.allSatisfy { $0 == 0 }, "byte \(position): unverified plaintext left")
        }
        // A message abandoned half-way leaves the context usable for the next one.
        _ = piecewise(sealed, cuts: [300])
        #expect(try AEAD.open(algorithm, key: key, nonce: nonce, aad: aad, sealed: sealed) == plaintext)
        var whole = [UInt8](repeating: 0, count: plaintext.count)
        let count = try sealed.withUnsafeBytes { s in
            try nonce.withUnsafeBytes { n in
                try aad.withUnsafeBytes { a in
                    try whole.withUnsafeMutableBytes { o in
                        try opener.openStart(nonce: n, aad: a)
                        try opener.openUpdate(UnsafeRawBufferPointer(rebasing: s[0..<300]), into: o.baseAddress!)
                        return try opener.open(nonce: n, aad: a, sealed: s, into: o)
                    }
                }
            }
        }
        #expect(count == plaintext.count && whole == plaintext)
    }

    @Test func rejectsWrongSizes() throws {
        #expect(throws: AEADError.self) { _ = try AEADContext(algorithm: .aes256GCM, key: [UInt8](repeating: 0, count: 16), sealing: true) }
        #expect(throws: AEADError.self) { try AEAD.seal(.aes256GCM, key: [UInt8](repeating: 0, count: 32), nonce: [0, 1], aad: [], plaintext: [1]) }
        #expect(throws: AEADError.authenticationFailed) { try AEAD.open(.aes256GCM, key: [UInt8](repeating: 0, count: 32), nonce: [UInt8](repeating: 0, count: 12), aad: [], sealed: [1, 2, 3]) }
        #expect(AEADAlgorithm(name: "AES-256-GCM") == .aes256GCM)
        #expect(AEADAlgorithm(name: "CHACHA20-POLY1305") == .chacha20Poly1305)
        #expect(AEADAlgorithm(name: "aes-256-gcm") == nil)
    }
}
