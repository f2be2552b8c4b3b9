import Synchronization

/// When the backend last answered anything (any HTTP status, even 4xx/5xx): the readiness signal.
/// A backend that answers with errors is reachable; only silence (connect failures, timeouts) is unready.
final class BackendHealth: Sendable {
    private let lastAnswer = Mutex<ContinuousClock.Instant?>(nil)

    init() {}

    func recordAnswer(at instant: ContinuousClock.Instant = .now) {
        lastAnswer.withLock { last in
            if last.map({ $0 < instant }) ?? true { last = instant }
        }
    }

    /// The instant of the most recent answer, nil if the backend never answered.
    var lastAnsweredAt: ContinuousClock.Instant? { lastAnswer.withLock { $0 } }

    /// Whether the backend answered within `window` before `now`.
    func answered(within window: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        guard let last = lastAnsweredAt else { return false }
        return now - last <= window
    }
}
