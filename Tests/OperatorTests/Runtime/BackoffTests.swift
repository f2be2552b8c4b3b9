import Testing
@testable import Operator

@Suite struct BackoffTests {
    @Test func listWatchDoublesFrom800msTo30s() {
        let b = Backoff.listWatch
        let seconds = (0..<8).map { b.delay(forAttempt: $0) }
        #expect(seconds == [.milliseconds(800), .milliseconds(1600), .milliseconds(3200), .milliseconds(6400),
                            .milliseconds(12800), .milliseconds(25600), .seconds(30), .seconds(30)])
    }

    @Test func perItemDoublesFrom5msTo1000s() {
        let b = Backoff.perItem
        #expect(b.delay(forAttempt: 0) == .milliseconds(5))
        #expect(b.delay(forAttempt: 1) == .milliseconds(10))
        #expect(b.delay(forAttempt: 10) == .milliseconds(5120))
        // 5 ms · 2^17 = 655.36 s < 1000 s; 2^18 would exceed the cap.
        #expect(b.delay(forAttempt: 17) == .milliseconds(655_360))
        #expect(b.delay(forAttempt: 18) == .seconds(1000))
        #expect(b.delay(forAttempt: 5000) == .seconds(1000))
        #expect(b.delay(forAttempt: Int.max) == .seconds(1000))
    }

    @Test func jitterStaysWithinFactor() {
        let b = Backoff(initial: .seconds(1), cap: .seconds(8), jitter: 1.0)
        for attempt in 0..<6 {
            let base = b.delay(forAttempt: attempt)
            #expect(b.jitteredDelay(forAttempt: attempt, random: 0) == base)
            let high = b.jitteredDelay(forAttempt: attempt, random: 0.999)
            #expect(high > base && high < base * 2)
        }
    }

    @Test func sequenceAdvancesAndResets() {
        var seq = BackoffSequence(Backoff(initial: .milliseconds(100), cap: .milliseconds(300)))
        #expect([seq.next(), seq.next(), seq.next(), seq.next()] ==
                [.milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(300)])
        seq.reset()
        #expect(seq.next() == .milliseconds(100))
    }

    @Test func listWatchIsJitteredAsTheDocsPromise() {
        let b = Backoff.listWatch
        #expect(b.jitter == 1.0)
        #expect(b.jitteredDelay(forAttempt: 0, random: 0.5) == .milliseconds(1200))
        var seq = BackoffSequence(b)
        let delays = (0..<20).map { _ in seq.next(random: Double.random(in: 0..<1)) }
        // Drawn from [base, 2·base): the first is within [0.8 s, 1.6 s) and they are not all equal to the base.
        #expect(delays[0] >= .milliseconds(800) && delays[0] < .milliseconds(1600))
        #expect(delays.contains { $0 != .seconds(30) && $0 != .milliseconds(800) })
    }

    @Test func aFailureLongAfterThePreviousStartsFromTheInitialDelay() {
        var seq = BackoffSequence(Backoff.listWatch)
        let t0 = ContinuousClock.now
        // A streak of failures a few seconds apart climbs to the cap…
        var t = t0
        for _ in 0..<7 {
            _ = seq.next(now: t, random: 0)
            t += .seconds(5)
        }
        #expect(seq.next(now: t, random: 0) == .seconds(30))
        // …then a watch is healthy for 9 minutes and drops: the retry waits 0.8 s, not 25.6 s or 30 s.
        #expect(seq.next(now: t + .seconds(9 * 60), random: 0) == .milliseconds(800))
        #expect(seq.next(now: t + .seconds(9 * 60 + 1), random: 0) == .milliseconds(1600))
        // Failures within 2 minutes of each other keep climbing.
        #expect(seq.next(now: t + .seconds(9 * 60 + 100), random: 0) == .milliseconds(3200))
    }
}
