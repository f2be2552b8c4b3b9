import Foundation
import Synchronization
import Testing
@testable import Proxy
@testable import Shared

/// The relay's second thread for long contents (`BackgroundStage`): the same bytes as on one thread, and on every
/// way a transfer ends the stage is gone before the caller touches the writer again.
@Suite struct DecryptingRelayTests {
    /// Slots of this suite's own (tests run in parallel; the shared ones follow the machine's cores).
    let slots = BackgroundSlots(cores: 1000)
    let encryptor = ObjectEncryptor(keyRing: EncryptionFixtures.ring(), layout: try! ChunkLayout(chunkSize: 4096))

    /// Stands in for a `PlannedReader`: "decrypts" by flipping bits, fails on a byte 0xEE (as a chunk that does not
    /// verify), and records the threads it ran on.
    final class FlippingReader: RangeDecryptor {
        let contentLength: Int
        var status: Int { 200 }
        var contentRange: String? { nil }
        var backendRange: String? { nil }
        let threads = Mutex<Set<String>>([])
        let updates = Atomic<Int>(0)
        private var seen = 0

        init(contentLength: Int) { self.contentLength = contentLength }

        func update(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
            updates.add(1, ordering: .relaxed)
            threads.withLock { _ = $0.insert(Self.threadName) }
            if input.contains(0xEE) { throw EncryptionError(.tamperDetected, "chunk at \(seen) does not verify") }
            seen += input.count
            try Self.flip(Array(input)).withUnsafeBytes { try emit($0) }
        }

        func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
            guard seen == contentLength else { throw EncryptionError(.truncated, "\(seen) of \(contentLength) bytes") }
        }

        static func flip(_ bytes: [UInt8]) -> [UInt8] { bytes.map { $0 ^ 0x5A } }
        static var threadName: String { "\(pthread_self())" }
    }

    /// A real opener behind the relay (what a `PlannedReader` of a whole object does).
    final class OpeningReader: RangeDecryptor {
        let opener: ChunkOpener
        let contentLength: Int
        var status: Int { 200 }
        var contentRange: String? { nil }
        var backendRange: String? { nil }

        init(opener: ChunkOpener, contentLength: Int) {
            self.opener = opener
            self.contentLength = contentLength
        }

        func update(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
            try opener.update(input, emit: emit)
        }

        func update(_ input: UnsafeRawBufferPointer, space: (Int) throws -> UnsafeMutableRawBufferPointer,
                    emit: (UnsafeRawBufferPointer) throws -> Void) throws {
            try opener.update(input, space: space, emit: emit)
        }

        func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws { try opener.finish(emit: emit) }
    }

    /// A `RecordingWriter` that also records the threads its body was written on and the size of each write.
    final class ThreadRecordingWriter: ResponseWriter {
        let inner = RecordingWriter()
        var threads: Set<String> = []
        var sizes: [Int] = []
        var headWritten: Bool { inner.headWritten }
        func writeHead(_ head: HTTPResponseHead) throws { try inner.writeHead(head) }
        func write(_ bytes: UnsafeRawBufferPointer) throws {
            threads.insert(FlippingReader.threadName)
            sizes.append(bytes.count)
            try inner.write(bytes)
        }
        func finish() throws { try inner.finish() }
    }

    /// Real AES-GCM chunks through the second thread, fed in pieces of every size: every chunk verifies and the
    /// plaintext arrives whole and in order (decrypted into the stage's buffers, or copied there from the opener's).
    @Test func realChunksDecryptOnTheSecondThread() throws {
        let layout = try ChunkLayout(chunkSize: 4096)
        var rng = SplitMix64(seed: 9)
        let plaintext = rng.bytes((3 << 20) + 1234)
        let sealer = try ChunkSealer(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: layout)
        let ciphertext = try EncryptionFixtures.seal(plaintext, with: sealer, rng: &rng, maxPiece: 100_000)
        for (maxPiece, readerLayout) in [(1, layout), (16 << 10, layout), (300_000, layout), (300_000, try ChunkLayout(chunkSize: 1 << 20))] {
            let ciphertext = readerLayout == layout ? ciphertext
                : try EncryptionFixtures.seal(plaintext, with: ChunkSealer(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(),
                                                                          layout: readerLayout), rng: &rng, maxPiece: 100_000)
            let writer = RecordingWriter()
            let (metadata, _) = try encryptor.beginObject(ObjectIdentity(bucket: "b", key: "k"), plaintextLength: plaintext.count)
            let reader = OpeningReader(opener: try ChunkOpener(cipher: .aes256GCM, segmentKey: EncryptionFixtures.segmentKey(), layout: readerLayout),
                                       contentLength: plaintext.count)
            let relay = DecryptingRelay(writer: writer, reader: reader, metadata: metadata, etag: "\"e\"", requestID: RequestID(1))
            relay.slots = slots
            try relay.responseHead(status: 200, headers: metadata.headers.map { (name: $0.key, value: $0.value) })
            #expect(relay.decryptsInBackground)
            var offset = 0
            while offset < ciphertext.count {
                let n = min(ciphertext.count - offset, maxPiece == 1 ? 1 : Int.random(in: 1...maxPiece, using: &rng))
                try ciphertext[offset..<(offset + n)].withUnsafeBytes { try relay.responseBody($0) }
                offset += n
            }
            try relay.finish()
            #expect(writer.body == plaintext, "pieces up to \(maxPiece), chunks of \(readerLayout.chunkSize)")
        }
    }

    /// A real `PlannedReader` of whole objects and ranges (whose first chunk is cut, so its plaintext is moved
    /// within the stage's buffer) through the second thread and inline: the same bytes either way.
    @Test func rangesOfRealObjectsThroughTheStage() throws {
        let id = ObjectIdentity(bucket: "b", key: "k")
        var rng = SplitMix64(seed: 21)
        let (plaintext, metadata, stored) = try storedObject(id, length: (3 << 20) + 777, rng: &rng)
        for (range, background) in [(nil, true), ("bytes=100-", true), ("bytes=5000-2500000", true), ("bytes=4097-", false),
                                    (nil, false), ("bytes=5000-2500000", false)] {
            let plan = try ReadPlan(storedLength: stored.count, layout: try metadata.chunkLayout, rangeHeader: range)
            let reader = try PlannedReader(plan: plan, encryptor: encryptor, metadata: metadata, identity: id)
            let writer = RecordingWriter()
            let relay = DecryptingRelay(writer: writer, reader: reader, metadata: metadata, etag: "\"e\"", requestID: RequestID(1))
            relay.slots = slots
            relay.background = background
            relay.shareOpeningFrom = 2 << 20
            try relay.responseHead(status: plan.backendRange == nil ? 200 : 206,
                                   headers: metadata.headers.map { (name: $0.key, value: $0.value) })
            #expect(relay.decryptsInBackground == background)
            var fetched = stored[...]
            if let backendRange = plan.backendRange, case .closed(let a, let b)? = ByteRange.parse(backendRange) {
                fetched = stored[a...min(b, stored.count - 1)]
            }
            try feedAndFinish(relay, fetched, maxPiece: 200_000, rng: &rng)
            let start = plan.skip + plan.firstChunkIndex * 4096
            #expect(writer.body == Array(plaintext[start..<(start + plan.contentLength)]), "\(range ?? "whole")")
            #expect(relay.bytesOut == Int64(plan.contentLength) && !relay.decryptsInBackground)
            // With a stage, chunks of a content that long are shared out: about every other one is opened on the
            // stage's thread.
            #expect((relay.chunksOpenedOnStage > plan.contentLength / 4096 / 4) == (background && plan.contentLength >= 2 << 20),
                    "\(range ?? "whole")")
        }
    }

    /// A modified chunk anywhere in a long read through the stage, whichever thread opens it: the read fails with
    /// `tamperDetected`, and the client got only verified plaintext from before that chunk.
    @Test(arguments: [4112 + 7, 2 * 4112 + 4100, 3 * 4112 + 100, 300 * 4112 + 5, 301 * 4112 + 4111, 700 * 4112 + 2])
    func aModifiedChunkFailsTheReadWhicheverThreadOpensIt(at position: Int) throws {
        let id = ObjectIdentity(bucket: "b", key: "k")
        var rng = SplitMix64(seed: UInt64(position))
        var (plaintext, metadata, stored) = try storedObject(id, length: (3 << 20) + 99, rng: &rng)
        stored[position] ^= 0x04
        let writer = RecordingWriter()
        let relay = try wholeObjectRelay(stored: stored.count, metadata: metadata, id: id, writer: writer, slots: slots,
                                         shareOpeningFrom: 0)
        #expect(relay.decryptsInBackground)
        var thrown: (any Error)?
        do {
            try feedAndFinish(relay, stored[...], maxPiece: 200_000, rng: &rng)
        } catch {
            thrown = error
        }
        #expect((thrown as? EncryptionError)?.code == .tamperDetected, "\(position)")
        #expect(relay.encryptionFailure?.code == .tamperDetected)
        #expect(!relay.decryptsInBackground)
        let chunk = position / 4112
        #expect(writer.body.count <= chunk * 4096 && writer.body == Array(plaintext[0..<writer.body.count]), "\(position)")
        _ = plaintext.popLast()
    }

    /// A long content without a stage (more streams than slots): real chunks decrypted into the relay's batch,
    /// whatever the pieces libcurl delivers (a chunk boundary at every position of a piece, chunks straddling two
    /// pieces or many, one byte at a time). The plaintext arrives whole, the first chunk at once (with the head)
    /// and then a whole batch per write, not a chunk per write.
    @Test func inlineLongContentsAreSentAWholeBatchPerWrite() throws {
        let id = ObjectIdentity(bucket: "b", key: "k")
        var rng = SplitMix64(seed: 41)
        let (plaintext, metadata, stored) = try storedObject(id, length: (2 << 20) + 1234, rng: &rng)
        let sealedSize = try metadata.chunkLayout.sealedChunkSize
        // (first piece, later pieces): every chunk boundary falls `shift` bytes into a piece of three chunks.
        var feeds = [0, 1, 15, 16, 17, 2047, sealedSize - 17, sealedSize - 16, sealedSize - 1].map { (shift: $0, piece: 3 * sealedSize) }
        feeds += [(0, 1), (0, sealedSize), (0, sealedSize + 1), (0, sealedSize - 1), (5, 16 << 10), (0, 256 << 10)]
        for (shift, piece) in feeds {
            let writer = ThreadRecordingWriter()
            let relay = try inlineRelay(id, metadata, storedLength: stored.count, writer: writer)
            var rest = stored[...]
            if shift > 0 {
                try rest.prefix(shift).withUnsafeBytes { try relay.responseBody($0) }
                rest = rest.dropFirst(shift)
            }
            while !rest.isEmpty {
                try rest.prefix(piece).withUnsafeBytes { try relay.responseBody($0) }
                rest = rest.dropFirst(piece)
            }
            try relay.finish()
            #expect(writer.inner.body == plaintext, "shift \(shift), pieces of \(piece)")
            #expect(relay.bytesOut == Int64(plaintext.count))
            // 4096-byte chunks: the first alone, then 64 chunks per write, then the rest.
            #expect(writer.sizes.first == 4096)
            #expect(writer.sizes.dropFirst().dropLast().allSatisfy { $0 == DecryptingRelay.backgroundBufferSize }, "\(writer.sizes)")
            #expect(writer.sizes.count <= 2 + plaintext.count / DecryptingRelay.backgroundBufferSize)
        }
    }

    /// Inline with a batch, a modified byte anywhere (first chunk, a chunk boundary, inside a batch, the final
    /// chunk) fails the transfer: only plaintext of chunks before it that verified was written, never a byte of
    /// the bad chunk, and a bad first chunk leaves the head unwritten (a clean error response).
    @Test(arguments: [0, 5, 4111, 4112, 4113, 300_000, 1 << 20, -1])
    func inlineTamperingAnywhereFailsClosed(at position: Int) throws {
        let id = ObjectIdentity(bucket: "b", key: "k")
        var rng = SplitMix64(seed: 43)
        let (plaintext, metadata, original) = try storedObject(id, length: (2 << 20) + 99, rng: &rng)
        var stored = original
        let at = position < 0 ? stored.count + position : position
        stored[at] ^= 0x01
        let writer = RecordingWriter()
        let relay = try inlineRelay(id, metadata, storedLength: stored.count, writer: writer)
        #expect(throws: EncryptionError.self) {
            try feedAndFinish(relay, stored[...], maxPiece: 100_000, rng: &rng)
        }
        let sealedSize = try metadata.chunkLayout.sealedChunkSize
        let badChunk = at / sealedSize
        #expect(relay.encryptionFailure != nil)
        #expect(writer.body.count <= badChunk * 4096 && writer.body == Array(plaintext[0..<writer.body.count]), "at \(at)")
        #expect(relay.clientResponseStarted == (badChunk > 0 && writer.head != nil))
        #expect(badChunk > 0 || writer.head == nil)
    }

    /// A writer that can be read while the stage writes, and tells each write.
    final class SignallingWriter: ResponseWriter, @unchecked Sendable {
        private let inner = RecordingWriter()
        private let lock = NSLock()
        let wrote = DispatchSemaphore(value: 0)
        var headWritten: Bool { lock.withLock { inner.headWritten } }
        func writeHead(_ head: HTTPResponseHead) throws { try lock.withLock { try inner.writeHead(head) } }
        func write(_ bytes: UnsafeRawBufferPointer) throws {
            try lock.withLock { try inner.write(bytes) }
            wrote.signal()
        }
        func finish() throws { try lock.withLock { try inner.finish() } }
        var body: [UInt8] { lock.withLock { inner.body } }
    }

    /// Through the stage, the head and the first verified chunk reach the client while the rest of the ciphertext
    /// has not even arrived (they do not wait for a full stage buffer); everything after follows in order.
    @Test(arguments: [nil, "bytes=100-"])
    func theFirstVerifiedChunkGoesOutBeforeTheRestArrives(range: String?) throws {
        let id = ObjectIdentity(bucket: "b", key: "k")
        var rng = SplitMix64(seed: 33)
        let (plaintext, metadata, stored) = try storedObject(id, length: 3 << 20, rng: &rng)
        let plan = try ReadPlan(storedLength: stored.count, layout: try metadata.chunkLayout, rangeHeader: range)
        let reader = try PlannedReader(plan: plan, encryptor: encryptor, metadata: metadata, identity: id)
        let writer = SignallingWriter()
        let relay = DecryptingRelay(writer: writer, reader: reader, metadata: metadata, etag: "\"e\"", requestID: RequestID(1))
        relay.slots = slots
        try relay.responseHead(status: range == nil ? 200 : 206, headers: metadata.headers.map { (name: $0.key, value: $0.value) })
        #expect(relay.decryptsInBackground)
        // The first chunk in pieces, as libcurl hands it over, and one byte of the second (only that tells the
        // opener the first is not the final chunk).
        let first = try metadata.chunkLayout.sealedChunkSize + 1
        for offset in stride(from: 0, to: first, by: 1000) {
            try stored[offset..<min(first, offset + 1000)].withUnsafeBytes { try relay.responseBody($0) }
        }
        try #require(writer.wrote.wait(timeout: .now() + 20) == .success, "nothing written after the first chunk")
        let skip = plan.skip
        #expect(writer.headWritten)
        #expect(writer.body == Array(plaintext[skip..<4096]))
        try stored[first...].withUnsafeBytes { try relay.responseBody($0) }
        try relay.finish()
        #expect(writer.body == Array(plaintext[skip...]))
        #expect(relay.bytesOut == Int64(plaintext.count - skip))
    }

    /// Feeds `bytes` to the relay in pieces of 1…`maxPiece` bytes, as libcurl delivers them, then finishes it.
    private func feedAndFinish(_ relay: DecryptingRelay, _ bytes: ArraySlice<UInt8>, maxPiece: Int, rng: inout SplitMix64) throws {
        var rest = bytes
        while !rest.isEmpty {
            let n = min(rest.count, Int.random(in: 1...maxPiece, using: &rng))
            try rest.prefix(n).withUnsafeBytes { try relay.responseBody($0) }
            rest = rest.dropFirst(n)
        }
        try relay.finish()
    }

    /// A random plaintext of `length` bytes and the object the encryptor stores for it.
    private func storedObject(_ id: ObjectIdentity, length: Int, rng: inout SplitMix64) throws
        -> (plaintext: [UInt8], metadata: EncryptionMetadata, stored: [UInt8]) {
        let plaintext = rng.bytes(length)
        let (metadata, sealer) = try encryptor.beginObject(id, plaintextLength: plaintext.count)
        var stored: [UInt8] = []
        try sealer.update(plaintext) { stored += $0 }
        try sealer.finish { stored += $0 }
        return (plaintext, metadata, stored)
    }

    /// A relay of a whole stored object through a real `PlannedReader`, without a stage, its head received.
    private func inlineRelay(_ id: ObjectIdentity, _ metadata: EncryptionMetadata, storedLength: Int,
                             writer: any ResponseWriter) throws -> DecryptingRelay {
        let plan = try ReadPlan(storedLength: storedLength, layout: try metadata.chunkLayout, rangeHeader: nil)
        let reader = try PlannedReader(plan: plan, encryptor: encryptor, metadata: metadata, identity: id)
        let relay = DecryptingRelay(writer: writer, reader: reader, metadata: metadata, etag: "\"e\"", requestID: RequestID(1))
        relay.slots = slots
        relay.background = false
        try relay.responseHead(status: 200, headers: metadata.headers.map { (name: $0.key, value: $0.value) })
        return relay
    }

    /// A relay of a whole stored object through the planned reader, sharing `slots`, its response head written.
    private func wholeObjectRelay(stored length: Int, metadata: EncryptionMetadata, id: ObjectIdentity,
                                  writer: any ResponseWriter, slots: BackgroundSlots,
                                  shareOpeningFrom: Int = DecryptingRelay.openingShareThreshold) throws -> DecryptingRelay {
        let plan = try ReadPlan(storedLength: length, layout: try metadata.chunkLayout, rangeHeader: nil)
        let relay = DecryptingRelay(writer: writer, reader: try PlannedReader(plan: plan, encryptor: encryptor, metadata: metadata, identity: id),
                                    metadata: metadata, etag: "\"e\"", requestID: RequestID(1))
        relay.slots = slots
        relay.shareOpeningFrom = shareOpeningFrom
        try relay.responseHead(status: 200, headers: metadata.headers.map { (name: $0.key, value: $0.value) })
        return relay
    }

    private func relay(contentLength: Int, writer: any ResponseWriter, background: Bool = true,
                       slots: BackgroundSlots? = nil) throws -> (DecryptingRelay, FlippingReader) {
        let (metadata, _) = try encryptor.beginObject(ObjectIdentity(bucket: "b", key: "k"), plaintextLength: contentLength)
        let reader = FlippingReader(contentLength: contentLength)
        let relay = DecryptingRelay(writer: writer, reader: reader, metadata: metadata, etag: "\"e\"", requestID: RequestID(1))
        relay.background = background
        relay.slots = slots ?? self.slots
        let headers = metadata.headers.map { (name: $0.key, value: $0.value) } + [(name: "Content-Length", value: "\(contentLength)")]
        try relay.responseHead(status: 200, headers: headers)
        return (relay, reader)
    }

    private func body(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(count).map { $0 == 0xEE ? 0 : $0 }
    }

    private func feed(_ relay: DecryptingRelay, _ bytes: [UInt8], piece: Int = 16 << 10) throws {
        var offset = 0
        while offset < bytes.count {
            let n = min(piece, bytes.count - offset)
            try bytes[offset..<(offset + n)].withUnsafeBytes { try relay.responseBody($0) }
            offset += n
        }
    }

    @Test func aLongContentIsSentFromASecondThreadAndAShortOneInline() throws {
        for (length, background) in [(3 << 20, true), (3 << 20, false), (DecryptingRelay.backgroundThreshold - 1, true)] {
            let threadWriter = ThreadRecordingWriter()
            let writer = threadWriter.inner
            let (relay, reader) = try relay(contentLength: length, writer: threadWriter, background: background)
            let expectsStage = background && length >= DecryptingRelay.backgroundThreshold
            #expect(relay.decryptsInBackground == expectsStage)
            let ciphertext = body(length, seed: UInt64(length))
            try feed(relay, ciphertext, piece: 7_777)
            try relay.finish()
            #expect(!relay.decryptsInBackground)
            #expect(writer.head?.status == 200 && writer.head?.contentLength == Int64(length))
            #expect(writer.body == FlippingReader.flip(ciphertext), "\(length) \(background)")
            #expect(relay.bytesOut == Int64(length) && relay.encryptionFailure == nil)
            // Decrypted on the caller's thread (libcurl's); written there too, or on the stage's thread.
            #expect(reader.threads.withLock { $0 } == [FlippingReader.threadName])
            #expect(threadWriter.threads.count == 1)
            #expect(threadWriter.threads.contains(FlippingReader.threadName) == !expectsStage, "\(length) \(background)")
        }
    }

    /// A chunk that does not verify, first or later: the producer learns it, the stage is gone, and nothing
    /// unverified was written (the head goes out with the first verified bytes only).
    @Test func aChunkThatDoesNotVerifyStopsTheStage() throws {
        // At 2 MiB, more than the stage's buffers were filled: the head has gone out.
        for badAt in [0, 2 << 20] {
            let writer = RecordingWriter()
            let (relay, reader) = try relay(contentLength: 3 << 20, writer: writer)
            var ciphertext = body(3 << 20, seed: 3)
            ciphertext[badAt] = 0xEE
            var thrown: (any Error)?
            do {
                try feed(relay, ciphertext)
                try relay.finish()
            } catch {
                thrown = error
            }
            #expect(thrown is EncryptionError, "\(badAt)")
            #expect(relay.encryptionFailure?.code == .tamperDetected)
            #expect(!relay.decryptsInBackground)
            #expect(relay.clientResponseStarted == (badAt > 0))
            // The good bytes before the bad piece and nothing after.
            let written = writer.body.count
            #expect(written <= badAt && writer.body == FlippingReader.flip(Array(ciphertext[0..<written])))
            let updates = reader.updates.load(ordering: .relaxed)
            try? feed(relay, [1, 2, 3])
            #expect(reader.updates.load(ordering: .relaxed) == updates, "no decryption after the failure")
        }
    }

    @Test func aClientThatGoesAwayStopsTheStage() throws {
        let writer = RecordingWriter()
        writer.failWritesAfterBytes = 300 << 10
        let (relay, _) = try relay(contentLength: 4 << 20, writer: writer)
        #expect(throws: RecordingWriter.ClientGone.self) {
            try feed(relay, body(4 << 20, seed: 4))
            try relay.finish()
        }
        #expect(!relay.decryptsInBackground && relay.clientResponseStarted && relay.encryptionFailure == nil)
        #expect(relay.bytesOut == Int64(writer.body.count) && writer.body.count <= 300 << 10)
    }

    /// The backend's transfer breaks (the exchange then asks `clientResponseStarted`): the stage stops, and what
    /// the client got is final, so the caller may decide on it and use the writer.
    @Test func aBackendFailureMidStreamStopsTheStage() throws {
        let writer = RecordingWriter()
        let (relay, reader) = try relay(contentLength: 4 << 20, writer: writer)
        let ciphertext = body(4 << 20, seed: 5)
        try feed(relay, Array(ciphertext[0..<(1 << 20)]))
        let started = relay.clientResponseStarted
        #expect(!relay.decryptsInBackground)
        let updates = reader.updates.load(ordering: .relaxed)
        let written = writer.body
        #expect(started == (writer.head != nil) && relay.bytesOut == Int64(written.count))
        #expect(written == FlippingReader.flip(Array(ciphertext[0..<written.count])))
        #expect(reader.updates.load(ordering: .relaxed) == updates)
        #expect(throws: BackgroundStage.Stopped.self) { try feed(relay, [1]) }
    }

    /// A relay dropped mid-stream without any of the above still ends its thread.
    @Test func aDroppedRelayEndsItsThread() throws {
        weak var weakRelay: DecryptingRelay?
        weak var weakReader: FlippingReader?
        weak var weakStage: BackgroundStage?
        do {
            let writer = RecordingWriter()
            let (relay, reader) = try relay(contentLength: 2 << 20, writer: writer)
            weakRelay = relay
            weakReader = reader
            weakStage = relay.backgroundStage
            #expect(weakStage != nil)
            try feed(relay, body(1 << 20, seed: 6))
        }
        // The stage's thread holds the stage until it returns.
        #expect(eventually { weakRelay == nil && weakReader == nil && weakStage == nil })
    }

    /// On two cores the first long read gets a second thread and the next does not; every way a stage ends gives
    /// its slot back, and every way a read ends stops counting it.
    @Test func secondThreadsFollowTheLongReadsInFlight() throws {
        let slots = BackgroundSlots(cores: 2)
        func make() throws -> DecryptingRelay {
            let (relay, _) = try relay(contentLength: 2 << 20, writer: RecordingWriter(), slots: slots)
            return relay
        }
        do {
            let first = try make()
            #expect(first.decryptsInBackground && slots.inUse == 1 && slots.activeStreams == 1)
            try feed(first, body(2 << 20, seed: 7))
            try first.finish()
            #expect(slots.inUse == 0 && slots.activeStreams == 0)
        }
        do {
            let failed = try make()
            #expect(failed.decryptsInBackground)
            _ = failed.clientResponseStarted  // a failure path
            #expect(slots.inUse == 0)
        }
        #expect(slots.activeStreams == 0)
        do {
            let dropped = try make()
            #expect(dropped.decryptsInBackground && slots.inUse == 1)
        }
        #expect(slots.inUse == 0 && slots.activeStreams == 0)
        let short = try relay(contentLength: DecryptingRelay.backgroundThreshold - 1, writer: RecordingWriter(), slots: slots).0
        #expect(!short.decryptsInBackground && slots.activeStreams == 0, "a short content is not a long read")
        let a = try make(), b = try make()
        #expect(a.decryptsInBackground && !b.decryptsInBackground && slots.inUse == 1 && slots.activeStreams == 2)
        withExtendedLifetime((a, b, short)) {}
    }

    /// A read with a second thread gives it up at its next piece once another long read arrives (two cores), and
    /// goes on inline: everything the stage held is sent first, then whole batches from the caller's thread. Real
    /// chunks, cut inside a chunk (the opener is decrypting it into the stage's space), at a chunk boundary, inside
    /// the tag, and one byte in: the client gets exactly the plaintext, in order.
    @Test(arguments: [1, 4096 + 16 - 3, 3 * (4096 + 16), 5 * (4096 + 16) + 2000, (1 << 20) + 7])
    func aReadGivesUpItsSecondThreadWhenAnotherArrives(cut: Int) throws {
        let id = ObjectIdentity(bucket: "b", key: "k")
        var rng = SplitMix64(seed: 51)
        let (plaintext, metadata, stored) = try storedObject(id, length: (3 << 20) + 555, rng: &rng)
        let slots = BackgroundSlots(cores: 2)
        let writer = ThreadRecordingWriter()
        let relay = try wholeObjectRelay(stored: stored.count, metadata: metadata, id: id, writer: writer, slots: slots)
        #expect(relay.decryptsInBackground)
        try stored[0..<cut].withUnsafeBytes { try relay.responseBody($0) }
        #expect(relay.decryptsInBackground, "alone on two cores, it keeps its second thread")
        let other = try self.relay(contentLength: 2 << 20, writer: RecordingWriter(), slots: slots).0
        #expect(!other.decryptsInBackground && slots.activeStreams == 2)
        var rest = stored[cut...]
        var firstPiece = true
        while !rest.isEmpty {
            // Ends inside a chunk, so that a first chunk begun before the switch is still unverified after it.
            try rest.prefix(100).withUnsafeBytes { try relay.responseBody($0) }
            rest = rest.dropFirst(100)
            if firstPiece {
                #expect(!relay.decryptsInBackground && slots.inUse == 0, "gave it up at its next piece")
                // Nothing unverified went out: no head before the first chunk verified.
                #expect(writer.headWritten == (cut + 100 >= 4096 + 16), "cut at \(cut)")
                firstPiece = false
            }
            try rest.prefix(100_000).withUnsafeBytes { try relay.responseBody($0) }
            rest = rest.dropFirst(100_000)
        }
        try relay.finish()
        #expect(writer.inner.body == plaintext, "cut at \(cut)")
        #expect(relay.bytesOut == Int64(plaintext.count))
        // The stage sent the first chunk if it had verified before the switch; the rest went out from the caller's
        // thread, a whole batch per write after the first.
        #expect(writer.threads.contains(FlippingReader.threadName))
        #expect(writer.threads.count == (cut >= 4096 + 16 ? 2 : 1), "cut at \(cut)")
        #expect(writer.sizes.count <= 4 + plaintext.count / DecryptingRelay.backgroundBufferSize, "\(writer.sizes)")
        #expect(slots.activeStreams == 1)
        withExtendedLifetime(other) {}
    }

    /// A chunk that fails after the read gave up its second thread (also one that was split across the switch)
    /// fails the transfer closed: only verified plaintext before it was written.
    @Test(arguments: [4096 + 16 + 5, 4 * (4096 + 16) - 1, 200_000])
    func tamperingAfterGivingUpTheSecondThreadFailsClosed(at position: Int) throws {
        let id = ObjectIdentity(bucket: "b", key: "k")
        var rng = SplitMix64(seed: 53)
        let (plaintext, metadata, original) = try storedObject(id, length: (2 << 20) + 11, rng: &rng)
        var stored = original
        stored[position] ^= 0x40
        let slots = BackgroundSlots(cores: 2)
        let writer = RecordingWriter()
        let relay = try wholeObjectRelay(stored: stored.count, metadata: metadata, id: id, writer: writer, slots: slots)
        // The switch falls inside the chunk before the bad one (and for the first position, inside the bad one).
        let cut = 4096 + 16 + 2
        try stored[0..<cut].withUnsafeBytes { try relay.responseBody($0) }
        let other = try self.relay(contentLength: 2 << 20, writer: RecordingWriter(), slots: slots).0
        #expect(throws: EncryptionError.self) {
            var rest = stored[cut...]
            while !rest.isEmpty {
                try rest.prefix(50_000).withUnsafeBytes { try relay.responseBody($0) }
                rest = rest.dropFirst(50_000)
            }
            try relay.finish()
        }
        #expect(!relay.decryptsInBackground && relay.encryptionFailure?.code == .tamperDetected)
        let badChunk = position / (4096 + 16)
        #expect(writer.body.count <= badChunk * 4096 && writer.body == Array(plaintext[0..<writer.body.count]))
        withExtendedLifetime(other) {}
    }

    /// The client's head drops the gateway's metadata, the backend's checksums, ranges, MD5 and ETag whatever the
    /// case of their names, sets the plaintext ETag and keeps the rest as sent.
    @Test func clientHeadersDropWhatDescribesTheCiphertextInAnyCase() {
        let backend: HTTPFields = HTTPFields([
            ("X-Amz-Meta-S3EG-Version", "2"), ("x-amz-meta-s3eg-key", "k"), ("X-AMZ-CHECKSUM-CRC32", "c"),
            ("x-amz-checksum-type", "FULL_OBJECT"), ("Content-Range", "bytes 0-1/2"), ("content-md5", "m"), ("ETAG", "\"cipher\""),
            ("Content-Type", "text/plain"), ("X-Amz-Meta-Color", "blue"), ("Last-Modified", "Sat, 28 Nov 2026 00:00:00 GMT"),
        ].map { (name: $0.0, value: $0.1) })
        let fields = EncryptedResponseHeaders.clientHeaders(backend, etag: "\"plain\"")
        #expect(fields.map(\.name) == ["Content-Type", "X-Amz-Meta-Color", "Last-Modified", "ETag"])
        #expect(fields["etag"] == "\"plain\"" && fields["x-amz-meta-color"] == "blue")
    }

    /// Dropping the gateway's metadata before the forwarding rules (a shortcut) gives exactly what the rules then
    /// `clientHeaders` give: hop-by-hop, `Connection`-named, `proxy-…`, server-owned, ciphertext-describing fields go.
    @Test(arguments: [
        [("x-amz-meta-s3eg-version", "2"), ("Content-Type", "a/b"), ("ETag", "\"c\""), ("Content-Length", "9")],
        [("Connection", "x-amz-meta-s3eg-mac, X-Extra"), ("x-extra", "1"), ("X-Amz-Meta-S3eg-Mac", "m"), ("x-amz-meta-s3egx", "kept")],
        [("Transfer-Encoding", "chunked"), ("Proxy-Thing", "p"), ("Date", "d"), ("x-amz-request-id", "r"), ("Server", "s"),
         ("X-AMZ-META-S3EG-SALT", "s"), ("x-amz-checksum-crc32", "c"), ("Content-Range", "bytes 0-1/2"), ("Last-Modified", "l")],
        [("x-amz-meta-s3eg-", ""), ("Keep-Alive", "timeout=5"), ("x-amz-meta-color", "blue"), ("Content-MD5", "m")],
        // Names sharing a first letter with a dropped one, short names, duplicates.
        [("E", "1"), ("ETag", "\"a\""), ("etag", "\"b\""), ("Expires", "e"), ("c", "2"), ("Content-Ranges", "3"), ("Content-Type", "t"),
         ("X", "4"), ("x-amz-checksum", "5"), ("X-Amz-Checksum-SHA256", "6"), ("x-amz-version-id", "7"), ("Cache-Control", "no")],
        [],
    ])
    func clientHeadersFromABackendAnswer(headers: [(String, String)]) {
        let backend = headers.map { (name: $0.0, value: $0.1) }
        let shortcut = EncryptedResponseHeaders.clientHeaders(forwardingFrom: backend, etag: "\"p\"")
        let rules = EncryptedResponseHeaders.clientHeaders(BackendClient.forwardableResponseHeaders(backend), etag: "\"p\"")
        #expect(shortcut.map(\.name) == rules.map(\.name))
        #expect(shortcut.map(\.value) == rules.map(\.value))
        #expect(!shortcut.contains { EncryptionMetadata.isReserved(headerName: $0.name) })
        // Only the plaintext ETag, once, last.
        #expect(shortcut.filter { $0.name.caseInsensitiveEquals("etag") }.map(\.value) == ["\"p\""])
        #expect(shortcut.map(\.name).last == "ETag")
        #expect(!shortcut.contains { EncryptedResponseHeaders.describesCiphertext($0.name) && $0.name != "ETag" })
    }

    /// What describes the ciphertext, by name in any case; names that only share a first letter or a prefix do not.
    @Test(arguments: [
        ("x-amz-meta-s3eg-version", true), ("X-AMZ-META-S3EG-MAC", true), ("x-amz-checksum-crc32", true),
        ("X-Amz-Checksum-Type", true), ("Content-Range", true), ("CONTENT-MD5", true), ("etag", true), ("ETag", true),
        ("x-amz-checksum", false), ("x-amz-meta-s3eg", false), ("Content-Type", false), ("Content-Ranges", false),
        ("content-md", false), ("ETags", false), ("E", false), ("", false), ("Expires", false), ("x", false),
    ])
    func describesCiphertext(name: String, expected: Bool) {
        #expect(EncryptedResponseHeaders.describesCiphertext(name) == expected)
    }

    /// The head's metadata must be the plan's (another object's answer is refused), unless the caller made the
    /// relay from those very headers (the single-round-trip GET), which skips parsing them twice.
    @Test func theHeadsMetadataIsComparedUnlessTheCallerReadIt() throws {
        let id = ObjectIdentity(bucket: "b", key: "k")
        let (planned, _) = try encryptor.beginObject(id, plaintextLength: 10)
        let (other, _) = try encryptor.beginObject(id, plaintextLength: 10)
        let headers = other.headers.map { (name: $0.key, value: $0.value) }
        let refused = DecryptingRelay(writer: RecordingWriter(), reader: FlippingReader(contentLength: 10), metadata: planned,
                                      etag: "\"e\"", requestID: RequestID(1))
        #expect(s3ErrorCode { try refused.responseHead(status: 200, headers: headers) } == S3Error.objectChanged().code)
        let checked = DecryptingRelay(writer: RecordingWriter(), reader: FlippingReader(contentLength: 10), metadata: other,
                                      etag: "\"e\"", requestID: RequestID(1))
        try checked.responseHead(status: 200, headers: headers, metadataChecked: true)
        #expect(checked.status == 200)
    }
}
