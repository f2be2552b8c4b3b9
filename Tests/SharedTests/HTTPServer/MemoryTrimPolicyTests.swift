import Testing
@testable import Shared

struct MemoryTrimPolicyTests {
    let start = ContinuousClock.now

    @Test func decidesAtMostOncePerInterval() {
        var policy = MemoryTrimPolicy(now: start)
        let offsets = [0, 2_000, 2_001, 3_000, 4_002]  // milliseconds after the start
        let due = offsets.map { policy.due(now: start + .milliseconds($0)) }
        #expect(due == [false, false, true, false, true])
    }

    /// One burst, step by step: (what happens, threads, busy, trims?).
    @Test func trimsAfterTheWorkAndAgainWhenTheBurstsThreadsHaveEnded() {
        var policy = MemoryTrimPolicy(now: start)
        let steps: [(String, noteBusy: Bool, threads: Int, busy: Int, trims: Bool)] = [
            ("idle since start: nothing to give back", false, 0, 0, false),
            ("a burst starts", true, 40, 40, false),
            ("its requests still run", false, 40, 3, false),
            ("its requests finished, its threads still wait for work", false, 40, 0, true),
            ("nothing changed", false, 40, 0, false),
            ("some threads ended (their caches went back to the arenas)", false, 25, 0, true),
            ("the rest ended", false, 0, 0, true),
            ("idle", false, 0, 0, false),
            ("one request on a new thread, still running", true, 1, 1, false),
            ("it finished", false, 1, 0, true),
        ]
        for step in steps {
            if step.noteBusy { policy.noteBusy() }
            let trims = policy.shouldTrim(threads: step.threads, busy: step.busy)
            #expect(trims == step.trims, "\(step.0)")
        }
    }

    @Test func neverTrimsWhileARequestRuns() {
        var policy = MemoryTrimPolicy(now: start)
        policy.noteBusy()
        let whileRunning = policy.shouldTrim(threads: 10, busy: 1)
        #expect(!whileRunning)
        #expect(policy.busySinceTrim, "the work is still to be trimmed after")
        let afterwards = policy.shouldTrim(threads: 10, busy: 0)
        #expect(afterwards)
        let moreThreads = policy.shouldTrim(threads: 12, busy: 0)
        #expect(!moreThreads, "more threads without work noted is nothing to give back")
    }
}
