import Synchronization

/// A clock that stands still until a test moves it, for code that takes `() -> ContinuousClock.Instant` (TTLs,
/// expiry) so that expiry is tested without waiting.
public final class ManualClock: Sendable {
    private let now = Mutex(ContinuousClock.now)

    public init() {}

    /// Moves the clock forward by `duration`.
    public func advance(_ duration: Duration) { now.withLock { $0 += duration } }

    /// The reading to hand to the code under test.
    public var read: @Sendable () -> ContinuousClock.Instant { { self.now.withLock { $0 } } }
}
