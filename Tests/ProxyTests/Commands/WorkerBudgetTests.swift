import Shared
import Testing
@testable import Proxy

@Suite struct WorkerBudgetTests {
    static let mib = 1 << 20
    static let request = 7 * mib / 2

    @Test(arguments: [
        (512 * mib, 128),          // the operator's default limit: (512 − 64) / 3.5
        (256 * mib, 54),
        (128 * mib, 18),
        (1024 * mib, 256),         // 274 would fit: the ceiling
        (64 << 30, 256),           // a large machine without a limit
        (90 * mib, 7),
        (64 * mib, 4),             // nothing left after the base: the floor
        (0, 4),
    ] as [(Int, Int)])
    func threadsAreWhatFitsAfterTheBaseBetweenFloorAndCeiling(memory: Int, expected: Int) {
        #expect(WorkerBudget.maxWorkerThreads(memory: memory, requestBytes: Self.request) == expected)
    }

    @Test func aBudgetBelowTheFloorsNeedIsReported() {
        let least = WorkerBudget.baseBytes + WorkerBudget.floor * Self.request
        #expect(WorkerBudget.shortfall(memory: least - 1, requestBytes: Self.request) == least)
        #expect(WorkerBudget.shortfall(memory: least, requestBytes: Self.request) == nil)
        #expect(WorkerBudget.shortfall(memory: 512 * Self.mib, requestBytes: Self.request) == nil)
    }

    /// The threads it allows, each at its estimate, and the base fit in the budget: whatever the limit
    /// above the floor's need, a burst of requests stays within it.
    @Test(arguments: [96, 128, 200, 256, 300, 512, 700, 1024, 4096])
    func theThreadsAllowedFitInTheBudget(mebibytes: Int) {
        let memory = mebibytes * Self.mib
        let request = WorkerBudget.requestBytes(workerScratch: HTTPServerConfiguration().workerScratchBytes)
        let threads = WorkerBudget.maxWorkerThreads(memory: memory, requestBytes: request)
        #expect(WorkerBudget.baseBytes + threads * request <= memory)
        // One more thread would not fit, unless the ceiling stopped it.
        #expect(threads == WorkerBudget.ceiling || WorkerBudget.baseBytes + (threads + 1) * request > memory)
    }

    /// The estimate covers the buffers a request can hold at once: if one of them grows, so does the estimate
    /// (and the thread count shrinks with it).
    @Test func theEstimateCoversEveryBufferARequestHolds() {
        let scratch = HTTPServerConfiguration().workerScratchBytes
        let request = WorkerBudget.requestBytes(workerScratch: scratch)
        // Two backend transfers at once: an UploadPartCopy's source GET and its part PUT.
        let buffers = scratch + 2 * (HTTPClient.receiveBufferSize + HTTPClient.sendBufferSize)
            + EncryptedObjectHandler.bufferedUploadLimit
        #expect(request > buffers)
        #expect(request >= buffers + S3RequestHandler.bufferedFormLimit - EncryptedObjectHandler.bufferedUploadLimit)
        #expect(WorkerBudget.requestBytes(workerScratch: scratch + Self.mib) == request + Self.mib)
        #expect(request == 7 * Self.mib / 2)  // with today's buffers: the figure docs/http-server.md gives
    }
}
