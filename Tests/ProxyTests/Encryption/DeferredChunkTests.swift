import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// Chunks handed over to be opened elsewhere (`ChunkOpener.update(_:space:emit:deferring:)`, `DeferredChunk`): what a
/// relay's second thread opens is the same plaintext, in the same place, as what the opener opens itself; a modified
/// chunk handed over fails there and leaves zeros; a chunk still arriving when the caller stops handing over is
/// opened by the opener.
@Suite struct DeferredChunkTests {
    static let layout = try! ChunkLayout(chunkSize: 4096)
    static let sealed = 4096 + 16

    /// A stand-in for a stage: one output buffer filled in order. Chunks the opener decrypts into its space (or
    /// emits from its own buffer) and chunks handed over (their ciphertext, opened later) both land at `position`.
    final class Output {
        let buffer: UnsafeMutableRawBufferPointer
        var position = 0
        var handedOver: [DeferredChunk] = []

        init(capacity: Int) {
            buffer = .allocate(byteCount: capacity + 4096, alignment: 16)
            buffer.initializeMemory(as: UInt8.self, repeating: 0x99)
        }
        deinit { buffer.deallocate() }

        func space(_ count: Int) -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: buffer[position...]) }

        func emit(_ chunk: UnsafeRawBufferPointer) {
            if chunk.baseAddress != UnsafeRawPointer(buffer.baseAddress! + position) {
                (buffer.baseAddress! + position).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count)
            }
            position += chunk.count
        }

        func take(_ chunk: DeferredChunk) {
            #expect(UnsafeRawPointer(chunk.target.baseAddress) == UnsafeRawPointer(buffer.baseAddress! + position))
            handedOver.append(chunk)
            position += chunk.target.count
        }

        var bytes: [UInt8] { Array(buffer[0..<position]) }
    }

    private func sealWhole(_ plaintext: [UInt8]) throws -> [UInt8] {
        var rng = SplitMix64(seed: 3)
        let sealer = try ChunkSealer(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.layout)
        return try EncryptionFixtures.seal(plaintext, with: sealer, rng: &rng, maxPiece: 50_000)
    }

    private func plannedOpener(_ ciphertext: [UInt8]) throws -> ChunkOpener {
        try ChunkOpener(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: Self.layout,
                        maxCiphertextLength: ciphertext.count)
    }

    /// Feeds `ciphertext` in pieces (`cuts`: where pieces end), handing over every other chunk offered while
    /// `handsOver(pieceIndex)`; returns the output and the chunks handed over, not yet opened.
    private func feed(_ ciphertext: [UInt8], cuts: [Int], handsOver: (Int) -> Bool = { _ in true }) throws -> Output {
        let cuts = cuts.filter { $0 < ciphertext.count }
        let output = Output(capacity: ciphertext.count)
        let opener = try plannedOpener(ciphertext)
        var turn = 0
        let deferral = ChunkDeferral(wants: { turn += 1; return turn % 2 == 0 }, take: { output.take($0) })
        for (index, (from, to)) in zip([0] + cuts, cuts + [ciphertext.count]).enumerated() where to > from {
            try Array(ciphertext[from..<to]).withUnsafeBytes { piece in
                try opener.update(piece, space: output.space, emit: output.emit, deferring: handsOver(index) ? deferral : nil)
            }
        }
        try opener.finish(emit: output.emit)
        return output
    }

    /// Whole chunks in a piece and chunks split across pieces (cut anywhere in the ciphertext or the tag) are handed
    /// over alike; until opened they hold ciphertext, never plaintext; opened, on another thread, the output is
    /// the plaintext. The final chunk is never handed over.
    @Test(arguments: [[], [1], [15], [Self.sealed + 100], [Self.sealed + 4095], [Self.sealed + 4100], [2 * Self.sealed],
                      Array(stride(from: 1000, to: 9 * Self.sealed, by: 1000)), Array(stride(from: 7, to: 9 * Self.sealed, by: 7))])
    func handedOverChunksOpenToThePlaintextElsewhere(cuts: [Int]) throws {
        let plaintext = SplitMix64(seed: 5).bytesOf(8 * 4096 + 123)
        let ciphertext = try sealWhole(plaintext)
        let output = try feed(ciphertext, cuts: cuts)
        #expect(output.handedOver.count >= 3, "cuts \(cuts.prefix(3))")
        #expect(output.handedOver.allSatisfy { $0.index < 8 }, "the final chunk stays with the opener")
        for chunk in output.handedOver {
            let range = Int(chunk.index) * 4096..<Int(chunk.index + 1) * 4096
            #expect(Array(chunk.target) != Array(plaintext[range]), "chunk \(chunk.index) holds plaintext before it is opened")
        }
        // Opened on a thread of their own, as a relay's stage does.
        nonisolated(unsafe) let handedOver = output.handedOver
        nonisolated(unsafe) var failures: [any Error] = []
        let done = DispatchSemaphore(value: 0)
        Thread {
            for chunk in handedOver {
                do { try chunk.open() } catch { failures.append(error) }
            }
            done.signal()
        }.start()
        done.wait()
        #expect(failures.isEmpty)
        #expect(output.bytes == plaintext, "cuts \(cuts.prefix(3))")
    }

    /// A modified byte in a chunk handed over (its ciphertext or its tag) fails when it is opened: `tamperDetected`,
    /// and zeros where its plaintext would be. The chunks around it are unaffected.
    @Test(arguments: [0, 100, 4095, 4096, 4111])
    func aModifiedChunkHandedOverFailsAndLeavesZeros(at offset: Int) throws {
        let plaintext = [UInt8](repeating: 0x41, count: 6 * 4096)
        var ciphertext = try sealWhole(plaintext)
        // Chunk 1 is the first handed over (every other chunk offered, the first kept).
        ciphertext[Self.sealed + offset] ^= 0x10
        let output = try feed(ciphertext, cuts: [Self.sealed + 2000, 4 * Self.sealed])
        let bad = try #require(output.handedOver.first { $0.index == 1 })
        var failure: EncryptionError?
        do { try bad.open() } catch { failure = error }
        #expect(failure?.code == .tamperDetected)
        #expect(bad.target.allSatisfy { $0 == 0 })
        for chunk in output.handedOver where chunk.index != 1 { try chunk.open() }
        #expect(output.bytes[0..<4096].allSatisfy { $0 == 0x41 } && output.bytes[(2 * 4096)...].allSatisfy { $0 == 0x41 })
    }

    /// A chunk whose handing over began in one piece and whose last bytes come when the caller no longer hands
    /// over (a relay that gave its second thread up mid-stream) is opened by the opener, where it lies, and emitted.
    @Test func aChunkStillArrivingWhenHandingOverStopsIsOpenedByTheOpener() throws {
        let plaintext = SplitMix64(seed: 8).bytesOf(5 * 4096 + 9)
        let ciphertext = try sealWhole(plaintext)
        // Piece 0 ends inside chunk 1 (the first handed over); later pieces hand nothing over.
        let output = try feed(ciphertext, cuts: [Self.sealed + 1000, 3 * Self.sealed + 7], handsOver: { $0 == 0 })
        #expect(output.handedOver.isEmpty)
        #expect(output.bytes == plaintext)
    }

    /// The same, with chunk 1 modified: the opener finds it, and nothing of it is emitted or left.
    @Test func aModifiedChunkStillArrivingWhenHandingOverStopsFailsAtTheOpener() throws {
        let plaintext = [UInt8](repeating: 0x41, count: 5 * 4096)
        var ciphertext = try sealWhole(plaintext)
        ciphertext[Self.sealed + 3000] ^= 1
        var thrown: EncryptionError?
        do {
            _ = try feed(ciphertext, cuts: [Self.sealed + 1000], handsOver: { $0 == 0 })
        } catch let error as EncryptionError {
            thrown = error
        }
        #expect(thrown?.code == .tamperDetected)
    }

    /// A range's first and last chunks are cut, so a `PlannedReader` hands over only chunks wholly inside it;
    /// the output is the range either way.
    @Test(arguments: [nil, "bytes=100-", "bytes=5000-30000", "bytes=4096-8191", "bytes=-5000"])
    func aPlannedReaderHandsOverOnlyChunksInsideTheRange(range: String?) throws {
        let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring(), layout: Self.layout)
        let id = ObjectIdentity(bucket: "b", key: "k")
        let plaintext = SplitMix64(seed: 13).bytesOf(10 * 4096 + 500)
        let (metadata, sealer) = try encryptor.beginObject(id, plaintextLength: plaintext.count)
        var stored: [UInt8] = []
        try sealer.update(plaintext) { stored += $0 }
        try sealer.finish { stored += $0 }
        let plan = try ReadPlan(storedLength: stored.count, layout: Self.layout, rangeHeader: range)
        let reader = try PlannedReader(plan: plan, encryptor: encryptor, metadata: metadata, identity: id)
        var fetched = stored[...]
        if let backendRange = plan.backendRange, case .closed(let a, let b)? = ByteRange.parse(backendRange) {
            fetched = stored[a...min(b, stored.count - 1)]
        }
        let output = Output(capacity: fetched.count)
        var turn = 0
        let deferral = ChunkDeferral(wants: { turn += 1; return turn % 2 == 0 }, take: { output.take($0) })
        while !fetched.isEmpty {
            let n = min(fetched.count, 3000)
            try fetched.prefix(n).withUnsafeBytes { try reader.update($0, space: output.space, emit: output.emit, deferring: deferral) }
            fetched = fetched.dropFirst(n)
        }
        try reader.finish(emit: output.emit)
        for chunk in output.handedOver { try chunk.open() }
        let start = plan.skip + plan.firstChunkIndex * 4096
        #expect(output.bytes == Array(plaintext[start..<(start + plan.contentLength)]), "\(range ?? "whole")")
        if plan.contentLength >= 4 * 4096 { #expect(!output.handedOver.isEmpty, "\(range ?? "whole")") }
        let firstWhole = plan.skip == 0 ? plan.firstChunkIndex : plan.firstChunkIndex + 1
        #expect(output.handedOver.allSatisfy { Int($0.index) >= firstWhole && Int($0.index + 1) * 4096 <= start + plan.contentLength })
    }
}

private extension SplitMix64 {
    func bytesOf(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(count)
    }
}
