import Shared

/// How many requests the gateway serves at once (the worker pool's `maxWorkerThreads`) within its memory
/// budget (`MemoryBudget`: the machine's memory, capped by the pod's memory limit).
///
/// Each request in flight holds buffers on its worker thread, so memory at a peak grows with the requests
/// served at once, not with object sizes. Before this rule the pool allowed 256 whatever the limit: 512
/// concurrent 1 MiB uploads against a gateway limited to 256 MiB got it OOM-killed at ≈ 120 threads; without
/// a limit the same burst peaked at 494 MiB with 192 threads, near the operator's default limit (512 MiB) with
/// 64 more threads allowed (docs/http-server.md). Requests beyond the count wait for a thread in order on the
/// event loops, where a waiting connection costs a few KiB.
enum WorkerBudget {
    /// Memory kept for everything that is not a request in flight: the process at rest (≈ 32 MiB), the
    /// caches, the event loops' connections, the decrypting stages of large reads (a few per core).
    static let baseBytes = 64 << 20
    /// The most threads, however much memory there is (as before this rule).
    static let ceiling = 256
    /// The fewest threads, however little memory there is: below this the gateway could not overlap even
    /// a few slow backend answers.
    static let floor = 4

    /// What one request holds at its peak: the worker's own buffers; libcurl's buffers for two backend transfers
    /// at once (an UploadPartCopy reads its source while it writes the part); the largest body the gateway holds
    /// whole (an upload up to `bufferedUploadLimit`, sealed as it arrives; a POST form and a part copy's plaintext
    /// pipe hold as much); and the stack it touches with the allocator's slack. Measured per thread, 512 at once:
    /// 2.0–2.9 MiB for 1 MiB uploads, 3.0 MiB for UploadPartCopy of 8 MiB parts.
    static func requestBytes(workerScratch: Int) -> Int {
        let largestBody = max(EncryptedObjectHandler.bufferedUploadLimit, S3RequestHandler.bufferedFormLimit)
        let transfers = 2 * (HTTPClient.receiveBufferSize + HTTPClient.sendBufferSize)
        let stackAndSlack = 512 << 10
        return workerScratch + transfers + largestBody + stackAndSlack
    }

    /// Threads for `memory` bytes: what is left after `baseBytes`, a request's worth each, between `floor`
    /// and `ceiling`.
    static func maxWorkerThreads(memory: Int, requestBytes: Int) -> Int {
        let fits = max(0, memory - baseBytes) / max(1, requestBytes)
        return min(ceiling, max(floor, fits))
    }

    /// The memory `floor` threads need, when `memory` is less than that (the gateway then runs, but a burst
    /// of uploads can exceed its limit); nil when it is enough.
    static func shortfall(memory: Int, requestBytes: Int) -> Int? {
        let least = baseBytes + floor * requestBytes
        return memory < least ? least : nil
    }
}
