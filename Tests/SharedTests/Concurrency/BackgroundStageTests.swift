import Foundation
import Synchronization
import Testing
@testable import Shared

@Suite struct BackgroundStageTests {
    struct Boom: Error, Equatable {}

    @Test func everyByteArrivesInOrderOnAnotherThread() throws {
        let received = Mutex<[UInt8]>([])
        let threads = Mutex<Set<String>>([])
        let producer = "\(Thread.current)"
        let stage = BackgroundStage(depth: 3, bufferSize: 1000) { bytes in
            received.withLock { $0 += bytes }
            threads.withLock { _ = $0.insert("\(Thread.current)") }
        }
        var expected: [UInt8] = []
        var rng = SystemRandomNumberGenerator()
        for size in [1, 999, 1000, 1001, 0, 4096, 17, 2500] {
            let piece = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            expected += piece
            try piece.withUnsafeBytes { try stage.submit($0) }
        }
        try stage.finish()
        #expect(received.withLock { $0 } == expected)
        #expect(threads.withLock { $0.count } == 1 && !threads.withLock { $0.contains(producer) })
    }

    /// Work committed with bytes runs on the stage's thread, in order, before the buffer holding those bytes is
    /// consumed, and may rewrite them there (a chunk handed over is decrypted in place).
    @Test func committedWorkRunsOnTheStageBeforeItsBufferIsConsumed() throws {
        let received = Mutex<[[UInt8]]>([])
        let ran = Mutex<[Int]>([])
        let producer = "\(Thread.current)"
        let workThreads = Mutex<Set<String>>([])
        let stage = BackgroundStage(depth: 2, bufferSize: 100) { bytes in received.withLock { $0.append(Array(bytes)) } }
        for i in 0..<7 {
            let space = try stage.space(minimum: 30)
            let region = UnsafeMutableRawBufferPointer(rebasing: space[0..<30])
            region.initializeMemory(as: UInt8.self, repeating: 0)
            try stage.commit(30, finishing: {
                ran.withLock { $0.append(i) }
                workThreads.withLock { _ = $0.insert("\(Thread.current)") }
                region.initializeMemory(as: UInt8.self, repeating: UInt8(i + 1))
            })
        }
        try stage.finish()
        #expect(ran.withLock { $0 } == Array(0..<7))
        #expect(workThreads.withLock { $0.count == 1 && !$0.contains(producer) })
        let bytes: [UInt8] = received.withLock { Array($0.joined()) }
        var expected: [UInt8] = []
        for i in 0..<7 { expected += [UInt8](repeating: UInt8(i + 1), count: 30) }
        #expect(bytes == expected)
    }

    /// Work that throws stops the stage as a failing consumer does: its buffer is not consumed, later work does
    /// not run, and the producer's next step throws the error.
    @Test func workThatThrowsStopsTheStageBeforeItsBufferIsConsumed() throws {
        let received = Mutex<Int>(0)
        let ran = Mutex<[Int]>([])
        let stage = BackgroundStage(depth: 2, bufferSize: 100) { bytes in received.withLock { $0 += bytes.count } }
        var thrown: (any Error)?
        do {
            for i in 0..<20 {
                _ = try stage.space(minimum: 50)
                try stage.commit(50, finishing: {
                    ran.withLock { $0.append(i) }
                    if i == 2 { throw Boom() }
                })
            }
            try stage.finish()
        } catch {
            thrown = error
        }
        stage.stop()
        #expect(thrown as? Boom == Boom())
        // Buffer 0 (work 0 and 1) was consumed; buffer 1 (work 2 and 3) was not, and work 3 never ran.
        #expect(received.withLock { $0 } == 100)
        #expect(ran.withLock { $0 } == [0, 1, 2])
    }

    /// Bytes written into `space(minimum:)` and committed join the stream without a copy, in order with submitted
    /// ones; a space that no longer fits the buffer being filled hands it over and starts a fresh one.
    @Test func spaceAndCommitWriteInPlace() throws {
        let received = Mutex<[[UInt8]]>([])
        let stage = BackgroundStage(depth: 2, bufferSize: 100) { bytes in received.withLock { $0.append(Array(bytes)) } }
        var expected: [UInt8] = []
        func write(_ count: Int, _ value: UInt8) throws {
            let space = try stage.space(minimum: count)
            #expect(space.baseAddress.map(UnsafeRawPointer.init) == stage.nextByte)
            #expect(space.count >= min(count, 100))
            let n = min(count, space.count)
            space.baseAddress!.initializeMemory(as: UInt8.self, repeating: value, count: n)
            try stage.commit(n)
            expected += [UInt8](repeating: value, count: n)
        }
        try write(60, 1)
        try write(30, 2)
        try [UInt8](repeating: 3, count: 5).withUnsafeBytes { try stage.submit($0) }
        expected += [UInt8](repeating: 3, count: 5)
        try write(40, 4)   // 95 buffered: handed over, a fresh buffer
        try write(60, 5)   // exactly fills it: handed over at once
        try write(250, 6)  // more than a buffer: a whole fresh buffer
        try stage.finish()
        #expect(received.withLock { $0 } == [Array(expected[0..<95]), Array(expected[95..<195]), Array(expected[195...])])
    }

    /// `flush()` hands a partly filled buffer over at once: the consumer gets those bytes while the producer
    /// still holds back more; the next bytes start a fresh buffer, and an empty flush hands nothing over.
    @Test func flushHandsOverAPartlyFilledBuffer() throws {
        let received = Mutex<[[UInt8]]>([])
        let consumed = DispatchSemaphore(value: 0)
        let stage = BackgroundStage(depth: 2, bufferSize: 100) { bytes in
            received.withLock { $0.append(Array(bytes)) }
            consumed.signal()
        }
        try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try stage.submit($0) }
        try stage.flush()
        try stage.flush()
        try #require(consumed.wait(timeout: .now() + 20) == .success, "the flushed bytes never reached the consumer")
        #expect(received.withLock { $0 } == [[UInt8](repeating: 1, count: 10)])
        let space = try stage.space(minimum: 100)
        #expect(space.count == 100)
        space.baseAddress!.initializeMemory(as: UInt8.self, repeating: 2, count: 100)
        try stage.commit(100)
        try stage.finish()
        #expect(received.withLock { $0 } == [[UInt8](repeating: 1, count: 10), [UInt8](repeating: 2, count: 100)])
    }

    @Test func aConsumerErrorReachesSpace() throws {
        let stage = BackgroundStage(depth: 1, bufferSize: 8) { _ in throw Boom() }
        #expect(throws: Boom.self) {
            for _ in 0..<100 {
                _ = try stage.space(minimum: 8)
                try stage.commit(8)
            }
        }
        stage.stop()
    }

    /// The producer is never more than `depth` buffers (plus the one being filled) ahead of the consumer.
    @Test func theProducerStaysWithinItsBuffers() throws {
        let depth = 2, size = 64
        let submitted = Atomic<Int>(0)
        let consumed = Atomic<Int>(0)
        let worstLead = Atomic<Int>(0)
        let stage = BackgroundStage(depth: depth, bufferSize: size) { bytes in
            let lead = submitted.load(ordering: .acquiring) - consumed.load(ordering: .acquiring)
            var worst = worstLead.load(ordering: .relaxed)
            while lead > worst, !worstLead.compareExchange(expected: worst, desired: lead, ordering: .relaxed).exchanged {
                worst = worstLead.load(ordering: .relaxed)
            }
            consumed.add(bytes.count, ordering: .releasing)
        }
        let piece = [UInt8](repeating: 7, count: 10)
        for _ in 0..<2000 {
            try piece.withUnsafeBytes { try stage.submit($0) }
            submitted.add(piece.count, ordering: .releasing)
        }
        try stage.finish()
        #expect(consumed.load(ordering: .acquiring) == 20_000)
        #expect(worstLead.load(ordering: .relaxed) <= (depth + 1) * size + piece.count)
    }

    @Test func aConsumerErrorReachesTheProducer() throws {
        let stage = BackgroundStage(depth: 1, bufferSize: 8) { bytes in
            if bytes.contains(0xFF) { throw Boom() }
        }
        let good = [UInt8](repeating: 1, count: 8), bad = [UInt8](repeating: 0xFF, count: 8)
        try good.withUnsafeBytes { try stage.submit($0) }
        try bad.withUnsafeBytes { try stage.submit($0) }
        // The failure shows at the latest when the producer finishes; later submits fail the same way.
        var thrown: (any Error)?
        do {
            for _ in 0..<100 { try good.withUnsafeBytes { try stage.submit($0) } }
            try stage.finish()
        } catch {
            thrown = error
        }
        #expect(thrown as? Boom == Boom())
        #expect(throws: Boom.self) { try good.withUnsafeBytes { try stage.submit($0) } }
    }

    @Test func stopEndsAStageForGood() throws {
        let consumed = Atomic<Int>(0)
        let stage = BackgroundStage(depth: 2, bufferSize: 4) { _ in consumed.add(1, ordering: .relaxed) }
        let piece: [UInt8] = [1, 2, 3, 4]
        for _ in 0..<2 { try piece.withUnsafeBytes { try stage.submit($0) } }
        stage.stop()
        #expect(consumed.load(ordering: .relaxed) <= 2)
        #expect(throws: BackgroundStage.Stopped.self) { try piece.withUnsafeBytes { try stage.submit($0) } }
        stage.stop()  // idempotent
        #expect(throws: BackgroundStage.Stopped.self) { try stage.finish() }
    }

    /// Whatever way a stage ends, its thread goes and it lets go of its consumer (which may hold the stage's owner).
    @Test func everyEndingReleasesTheThreadAndTheConsumer() throws {
        final class Owner {}
        enum Ending: CaseIterable { case finish, stop, cancel, consumerError }
        for ending in Ending.allCases {
            weak var weakStage: BackgroundStage?
            weak var weakOwner: Owner?
            do {
                let owner = Owner()
                weakOwner = owner
                let stage = BackgroundStage(depth: 1, bufferSize: 4) { bytes in
                    _ = owner
                    if ending == .consumerError { throw Boom() }
                }
                weakStage = stage
                try ([1, 2, 3, 4] as [UInt8]).withUnsafeBytes { try stage.submit($0) }
                switch ending {
                case .finish: try stage.finish()
                case .stop: stage.stop()
                case .cancel: stage.cancel()
                case .consumerError: #expect(throws: Boom.self) { try stage.finish() }
                }
            }
            #expect(eventually { weakStage == nil && weakOwner == nil }, "\(ending)")
        }
    }

    /// `cancel()` does not wait, so a consumer may call it on its own thread.
    @Test func aConsumerMayCancelItsOwnStage() throws {
        let holder = Mutex<BackgroundStage?>(nil)
        let stage = BackgroundStage(depth: 1, bufferSize: 1) { _ in holder.withLock { $0?.cancel() } }
        holder.withLock { $0 = stage }
        #expect(throws: BackgroundStage.Stopped.self) {
            for _ in 0..<100 { try ([1] as [UInt8]).withUnsafeBytes { try stage.submit($0) } }
            try stage.finish()
        }
        holder.withLock { $0 = nil }
    }

    /// Stages one after another run on the same parked thread and buffers; what a stage held is wiped once it is gone.
    @Test func stagesReuseAParkedThreadAndWipedBuffers() throws {
        let threads = ParkedThreads(name: "test-stage", maxParked: 1, idleTimeout: .seconds(60))
        let cache = BufferCache(limit: 1 << 20)
        let secret = [UInt8](repeating: 0x5A, count: 300)
        var seenBuffers: Set<Int> = []
        for _ in 0..<3 {
            let buffers = Mutex<Set<Int>>([])
            do {
                let stage = BackgroundStage(depth: 2, bufferSize: 100, threads: threads, buffers: cache) { bytes in
                    buffers.withLock { _ = $0.insert(Int(bitPattern: bytes.baseAddress)) }
                }
                try secret.withUnsafeBytes { try stage.submit($0) }
                try stage.finish()
            }
            // The stage goes once its thread has returned it; its buffers go back to the cache, wiped.
            #expect(eventually { cache.bytesKept == 200 && threads.parkedCount == 1 })
            seenBuffers.formUnion(buffers.withLock { $0 })
            let kept = [cache.take(size: 100), cache.take(size: 100)]
            #expect(kept.allSatisfy { $0.allSatisfy { $0 == 0 } })
            kept.forEach(cache.give)
        }
        #expect(threads.threadsStarted == 1)
        #expect(seenBuffers.count == 2)
    }
}
