import Foundation
import Testing
import TestSupport
@testable import Shared

/// `Digest.hash(.sha256, …)` and `HMAC.sha256` run on per-thread reused OpenSSL contexts (ThreadSHA256).
@Suite struct ThreadSHA256Tests {
    @Test func knownAnswers() {
        #expect(Encoding.hex(Digest.hash(.sha256, [UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Encoding.hex(Digest.sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // RFC 4231 test case 6: a key longer than the block is hashed first.
        #expect(Encoding.hex(HMAC.sha256(key: [UInt8](repeating: 0xaa, count: 131),
                                         string: "Test Using Larger Than Block-Size Key - Hash Key First"))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        // An empty key is a key (all-zero pad), not "keep the previous key" — the context is reused.
        _ = HMAC.sha256(key: Array("Jefe".utf8), string: "x")
        #expect(Encoding.hex(HMAC.sha256(key: [UInt8](), string: ""))
                == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    /// The reused contexts give what an independent computation gives, call after call, whatever the key
    /// length and message, on several threads at once: SHA-256 against the incremental `Digest`, HMAC
    /// against RFC 2104 built from it.
    @Test func reusedContextsMatchIndependentComputationOnManyThreads() async {
        await withTaskGroup(of: Bool.self) { group in
            for seed in 0..<4 {
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(seed))
                    for _ in 0..<300 {
                        let key = (0..<Int.random(in: 0...130, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                        let data = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                        guard HMAC.sha256(key: key, data: data) == Self.rfc2104(key: key, data: data),
                              Digest.hash(.sha256, data) == Self.incremental(data) else { return false }
                    }
                    return true
                }
            }
            for await ok in group { #expect(ok) }
        }
    }

    /// A key set up once gives, message after message, what the one-shot HMAC under that key gives — with
    /// one-shot HMACs under other keys on the same thread in between (the thread's shared context re-keyed).
    @Test func keySetUpOnceMatchesOneShotMessageAfterMessage() {
        #expect(Encoding.hex(HMACSHA256Key(key: Array("Jefe".utf8)).mac(Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")  // RFC 4231 test case 2
        var rng = SplitMix64(seed: 12)
        for keyLength in [1, 16, 32, 64, 65, 131] {
            let key = (0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let once = HMACSHA256Key(key: key)
            for length in [0, 1, 55, 56, 64, 119, 120, 300] {
                let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                _ = HMAC.sha256(key: [UInt8](repeating: 7, count: 32), data: data)
                #expect(once.mac(data) == HMAC.sha256(key: key, data: data))
                #expect(once.mac(data) == Self.rfc2104(key: key, data: data))
                #expect(data.withUnsafeBytes { once.mac32($0) }.array == Self.rfc2104(key: key, data: data))
            }
        }
    }

    /// The inline 32-byte forms give the arrays' bytes; `==` is byte equality (constant-time, via CRYPTO_memcmp),
    /// and a difference in any one byte makes two values unequal.
    @Test func bytes32HoldsDigestsAndComparesEveryByte() {
        var rng = SplitMix64(seed: 32)
        for length in [0, 1, 55, 56, 64, 300] {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let digest = data.withUnsafeBytes { Bytes32.sha256($0) }
            #expect(digest.array == Self.incremental(data))
            #expect(digest == Bytes32(Self.incremental(data)))
            for i in [0, 7, 8, 31] {
                var changed = digest.array
                changed[i] ^= 0x01
                #expect(digest != Bytes32(changed))
            }
        }
        #expect(Bytes32().array == [UInt8](repeating: 0, count: 32))
    }

    static func incremental(_ parts: [UInt8]...) -> [UInt8] {
        var digest = Digest(.sha256)
        for part in parts { digest.update(part) }
        return digest.finalize()
    }

    static func rfc2104(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var block = key.count > 64 ? incremental(key) : key
        block += [UInt8](repeating: 0, count: 64 - block.count)
        let inner = incremental(block.map { $0 ^ 0x36 }, data)
        return incremental(block.map { $0 ^ 0x5c }, inner)
    }
}
