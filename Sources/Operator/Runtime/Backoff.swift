import Foundation

/// Exponential backoff with a cap, as client-go's `wait.Backoff` / `ItemExponentialFailureRateLimiter`.
///
/// `delay(forAttempt:)` is pure: attempt 0 waits `initial`, each further attempt multiplies by `factor`,
/// never exceeding `cap`. Jitter (client-go's `jitter` factor) adds a random `[0, jitter·d)` on top.
struct Backoff: Sendable, Equatable {
    var initial: Duration
    var cap: Duration
    var factor: Double = 2
    /// 0 = deterministic; client-go's reflector uses 1.0 (up to twice the base delay).
    var jitter: Double = 0

    /// Reflector list/watch failures: 0.8 s doubling to 30 s, jitter 1.0 (client-go's reflector).
    static let listWatch = Backoff(initial: .milliseconds(800), cap: .seconds(30), jitter: 1.0)
    /// Work-queue per-item failures: 5 ms doubling to 1000 s.
    static let perItem = Backoff(initial: .milliseconds(5), cap: .seconds(1000))

    /// The base delay (without jitter) before retry number `attempt` (0-based).
    func delay(forAttempt attempt: Int) -> Duration {
        let initialSeconds = initial.runtimeSeconds
        let capSeconds = cap.runtimeSeconds
        // Compare in floating point before building a Duration so that huge attempts cannot overflow.
        let exponent = Double(max(0, attempt))
        let value = initialSeconds * pow(factor, exponent)
        if !value.isFinite || value >= capSeconds { return cap }
        return .nanoseconds(Int64((value * 1e9).rounded()))
    }

    /// `delay(forAttempt:)` plus random jitter drawn from `random` (a value in [0, 1)).
    func jitteredDelay(forAttempt attempt: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
        let base = delay(forAttempt: attempt)
        guard jitter > 0 else { return base }
        return base + .nanoseconds(Int64(base.runtimeSeconds * jitter * random * 1e9))
    }
}

/// A stepping backoff for one retry loop (the informer's list/watch loop): `next()` returns the delay
/// to wait now and advances; `reset()` after a success. As client-go's `exponentialBackoffManager`, a failure that
/// comes more than `resetAfter` after the previous one starts again from the initial delay: a watch that was
/// healthy for minutes and then drops is retried quickly, not after the delay of an old failure streak.
struct BackoffSequence: Sendable {
    let backoff: Backoff
    /// client-go's reflector uses 2 minutes. nil: only `reset()` resets.
    let resetAfter: Duration?
    private(set) var attempt = 0
    private var lastFailure: ContinuousClock.Instant?

    init(_ backoff: Backoff, resetAfter: Duration? = .seconds(120)) {
        self.backoff = backoff
        self.resetAfter = resetAfter
    }

    /// The delay to wait before the next attempt; `now` and `random` (in [0, 1)) are injectable for tests.
    mutating func next(now: ContinuousClock.Instant = .now, random: Double = Double.random(in: 0..<1)) -> Duration {
        if let resetAfter, let lastFailure, lastFailure.duration(to: now) > resetAfter { attempt = 0 }
        lastFailure = now
        defer { attempt += 1 }
        return backoff.jitteredDelay(forAttempt: attempt, random: random)
    }

    mutating func reset() {
        attempt = 0
        lastFailure = nil
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    var runtimeSeconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
