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
}
