import Testing
@testable import Proxy

/// Deterministic fuzzing of the TTLV decoder: random well-formed trees round-trip, and mutations of
/// real messages either decode (to something that re-encodes to the same bytes) or fail with
/// `TTLVError`, never crash or loop. `fuzz/run-ttlv.sh` runs the same decoder under libFuzzer.
@Suite struct TTLVFuzzTests {
    typealias RNG = SplitMix64

    static func randomItem(_ rng: inout RNG, depth: Int) -> TTLV {
        let tag = UInt32(0x420000) | UInt32.random(in: 0...0xFFFF, using: &rng)
        switch Int.random(in: 0..<(depth < 4 ? 11 : 10), using: &rng) {
        case 0: return TTLV(tag, .integer(Int32.random(in: .min ... .max, using: &rng)))
        case 1: return TTLV(tag, .longInteger(Int64.random(in: .min ... .max, using: &rng)))
        case 2: return TTLV(tag, .bigInteger((0..<(8 * Int.random(in: 1...3, using: &rng))).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        case 3: return TTLV(tag, .enumeration(UInt32.random(in: 0...UInt32.max, using: &rng)))
        case 4: return TTLV(tag, .boolean(Bool.random(using: &rng)))
        case 5: return TTLV(tag, .textString(String((0..<Int.random(in: 0...20, using: &rng)).map { _ in "aé€z0 ".randomElement(using: &rng)! })))
        case 6: return TTLV(tag, .byteString((0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        case 7: return TTLV(tag, .dateTime(Int64.random(in: 0...4_000_000_000, using: &rng)))
        case 8: return TTLV(tag, .interval(UInt32.random(in: 0...UInt32.max, using: &rng)))
        case 9: return TTLV(tag, .structure([]))
        default:
            return .structure(tag, (0..<Int.random(in: 1...5, using: &rng)).map { _ in randomItem(&rng, depth: depth + 1) })
        }
    }

    @Test func randomTreesRoundTrip() throws {
        var rng = RNG(seed: 0x5EED_0001)
        for _ in 0..<2000 {
            let item = Self.randomItem(&rng, depth: 0)
            let bytes = item.encoded()
            #expect(bytes.count % 8 == 0)
            #expect(try TTLV.decode(bytes) == item)
        }
    }

    @Test func mutationsNeverCrash() throws {
        var rng = RNG(seed: 0x5EED_0002)
        let seeds = [TTLVTests.pykmipEncryptResponse,
                     KMIPMessage.decrypt(uid: "abc", ciphertext: [1, 2, 3], nonce: Array(repeating: 0, count: 12), aad: [4], tag: Array(repeating: 1, count: 16)).encoded()]
        var decoded = 0
        for i in 0..<20_000 {
            var b = seeds[i % seeds.count]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let pos = b.isEmpty ? 0 : Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !b.isEmpty: b[pos] = UInt8.random(in: 0...255, using: &rng)
                case 1 where !b.isEmpty: b[pos] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                case 2: b = Array(b.prefix(pos))
                case 3: b.insert(contentsOf: Array(repeating: UInt8.random(in: 0...255, using: &rng), count: 8), at: pos)
                default: if !b.isEmpty { b.remove(at: pos) }
                }
            }
            do {
                let item = try TTLV.decode(b)
                decoded += 1
                // Whatever decodes is canonical: it re-encodes to the same bytes.
                #expect(item.encoded() == b)
                _ = try? KMIPMessage.outcome(of: item, for: .encrypt)
            } catch {
                // TTLVError is the only failure the signature allows.
            }
        }
        #expect(decoded > 0)
    }
}
