import Foundation

/// A one-way stop flag that threads can sleep on: `sleep` returns early when `stop()` is called.
final class StopSignal: @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var stopped = false

    init() {}

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    var isStopped: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopped
    }

    /// Sleeps for `duration`; returns false when stopped (before or during the sleep).
    @discardableResult
    func sleep(_ duration: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: max(0, duration.runtimeSeconds))
        condition.lock()
        defer { condition.unlock() }
        while !stopped {
            if !condition.wait(until: deadline) { return !stopped }
        }
        return false
    }

    /// Blocks until stopped or `timeout` passed; returns whether it was stopped.
    @discardableResult
    func wait(timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: max(0, timeout.runtimeSeconds))
        condition.lock()
        defer { condition.unlock() }
        while !stopped {
            if !condition.wait(until: deadline) { return stopped }
        }
        return true
    }

    /// Blocks until stopped.
    func wait() {
        condition.lock()
        while !stopped { condition.wait() }
        condition.unlock()
    }
}
