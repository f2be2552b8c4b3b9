import Testing
@testable import Proxy
@testable import Shared

@Suite struct ReadPlanTests {
    let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring(), layout: try! ChunkLayout(chunkSize: 4096))
    let id = ObjectIdentity(bucket: "b", key: "k")

    private func store(_ plaintext: [UInt8]) throws -> (EncryptionMetadata, [UInt8]) {
        let (meta, sealer) = try encryptor.beginObject(id, plaintextLength: plaintext.count)
        var body: [UInt8] = []
        try sealer.update(plaintext) { body += $0 }
        try sealer.finish { body += $0 }
        return (meta, body)
    }

    /// Plays the backend: applies the plan's backend range to the stored body.
    private func fetch(_ plan: ReadPlan, _ body: [UInt8]) -> [UInt8] {
        guard let range = plan.backendRange, case .closed(let a, let b)? = ByteRange.parse(range) else { return body }
        return Array(body[a...min(b, body.count - 1)])
    }

    private func read(_ plan: ReadPlan, _ meta: EncryptionMetadata, _ fetched: [UInt8]) throws -> [UInt8] {
        let reader = try PlannedReader(plan: plan, encryptor: encryptor, metadata: meta, identity: id)
        var out: [UInt8] = []
        var offset = 0
        while offset < fetched.count {
            let n = min(1000, fetched.count - offset)
            try reader.update(Array(fetched[offset..<(offset + n)])) { out += $0 }
            offset += n
        }
        try reader.finish { out += $0 }
        return out
    }

    @Test func servesWholeRangedAndUnsatisfiable() throws {
        var rng = SplitMix64(seed: 1)
        let plaintext = rng.bytes(3 * 4096 + 50)
        let (meta, body) = try store(plaintext)
        let layout = try meta.chunkLayout

        let whole = try ReadPlan(storedLength: body.count, layout: layout, rangeHeader: nil)
        #expect(whole.status == 200 && whole.contentLength == plaintext.count && whole.backendRange == nil)
        #expect(try read(whole, meta, fetch(whole, body)) == plaintext)

        let cases: [(String, ClosedRange<Int>)] = [
            ("bytes=0-0", 0...0), ("bytes=4095-4096", 4095...4096), ("bytes=5000-", 5000...(plaintext.count - 1)),
            ("bytes=-10", (plaintext.count - 10)...(plaintext.count - 1)), ("bytes=100-999999", 100...(plaintext.count - 1)),
        ]
        for (header, expected) in cases {
            let plan = try ReadPlan(storedLength: body.count, layout: layout, rangeHeader: header)
            #expect(plan.status == 206, "\(header)")
            #expect(plan.contentRange == "bytes \(expected.lowerBound)-\(expected.upperBound)/\(plaintext.count)")
            #expect(plan.contentLength == expected.count)
            #expect(try read(plan, meta, fetch(plan, body)) == Array(plaintext[expected]), "\(header)")
        }
        let bad = try ReadPlan(storedLength: body.count, layout: layout, rangeHeader: "bytes=\(plaintext.count)-")
        #expect(bad.status == 416 && bad.contentRange == "bytes */\(plaintext.count)" && bad.contentLength == 0)
        let ignored = try ReadPlan(storedLength: body.count, layout: layout, rangeHeader: "bytes=0-1,5-6")
        #expect(ignored.status == 200)
        // An impossible stored size (a 16-byte remainder after full chunks) is refused before anything is fetched.
        #expect(throws: EncryptionError.self) { try ReadPlan(storedLength: body.count - 50, layout: layout, rangeHeader: nil) }
    }

    @Test func shortOrLongBackendAnswersAreErrors() throws {
        var rng = SplitMix64(seed: 2)
        let plaintext = rng.bytes(4096 + 10)
        let (meta, body) = try store(plaintext)
        let plan = try ReadPlan(storedLength: body.count, layout: meta.chunkLayout, rangeHeader: nil)
        do {
            _ = try read(plan, meta, body + [1])
            Issue.record("long answer accepted")
        } catch let error as EncryptionError { #expect(error.code == .trailingData) }
        do {
            _ = try read(plan, meta, Array(body.dropLast(3)))
            Issue.record("short answer accepted")
        } catch let error as EncryptionError { #expect(error.code == .truncated) }
    }
}
