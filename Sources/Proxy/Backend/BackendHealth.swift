import Synchronization

/// When the backend last answered anything (any HTTP status, even 4xx/5xx): the readiness signal.
/// A backend that answers with errors is reachable; only silence (connect failures, timeouts) is unready.
/// Recorded on every backend answer, so it is one atomic (nanoseconds since this object was made), written
/// only when it moves by a millisecond or more: no lock, and the cache line is mostly read.
final class BackendHealth: Sendable {
    private let origin = ContinuousClock.now
    private let lastAnswer = Atomic<Int64>(Int64.min)

    init() {}

    func recordAnswer(at instant: ContinuousClock.Instant = .now) {
        let (s, atto) = (instant - origin).components
        let nanos = s * 1_000_000_000 + atto / 1_000_000_000
        var last = lastAnswer.load(ordering: .relaxed)
        while last == Int64.min || nanos - last >= 1_000_000 {
            let (exchanged, current) = lastAnswer.compareExchange(expected: last, desired: nanos, ordering: .relaxed)
            if exchanged { return }
            last = current
        }
    }

    /// The instant of the most recent answer (to the millisecond), nil if the backend never answered.
    var lastAnsweredAt: ContinuousClock.Instant? {
        let nanos = lastAnswer.load(ordering: .relaxed)
        return nanos == Int64.min ? nil : origin + .nanoseconds(nanos)
    }

    /// Whether the backend answered within `window` before `now`.
    func answered(within window: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        guard let last = lastAnsweredAt else { return false }
        return now - last <= window
    }
}
