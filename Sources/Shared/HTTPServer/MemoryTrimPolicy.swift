/// When the event loop gives freed heap memory back to the system (`malloc_trim`): a pure decision, so the
/// loop only feeds it what it sees and the rule is tested without a burst.
///
/// glibc keeps freed memory in its arenas, and each thread's cache of freed blocks goes back to an arena only
/// when the thread ends. A burst therefore leaves memory behind twice: once when its requests finish, and again
/// when the pool lets its extra threads go after their idle time. Trimming only after the first left RSS at
/// 3–4 × its resting level for good (bench/memory.py); trimming again once threads have ended brings it back.
struct MemoryTrimPolicy: Sendable {
    /// At most one decision (and so one look at the pool's counts) per `interval`.
    var interval: Duration = .seconds(2)
    private(set) var lastCheck: ContinuousClock.Instant
    /// Set when a request was handed to the pool since the last trim.
    private(set) var busySinceTrim = false
    /// The pool's thread count at the last trim.
    private(set) var threadsAtTrim = 0

    init(now: ContinuousClock.Instant) {
        lastCheck = now
    }

    /// A request was handed to a worker.
    mutating func noteBusy() {
        busySinceTrim = true
    }

    /// Whether it is time to look at the pool's counts (at most once per `interval`).
    mutating func due(now: ContinuousClock.Instant) -> Bool {
        guard now - lastCheck > interval else { return false }
        lastCheck = now
        return true
    }

    /// Whether to trim now, given the pool's current counts; records the trim when it says yes. Never while a
    /// request runs (its memory is in use); after work since the last trim, or once threads have ended since.
    mutating func shouldTrim(threads: Int, busy: Int) -> Bool {
        guard busy == 0, busySinceTrim || threads < threadsAtTrim else { return false }
        busySinceTrim = false
        threadsAtTrim = threads
        return true
    }
}
