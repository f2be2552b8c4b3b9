import Synchronization

/// Connects a signal that may arrive early (before the manager exists) to the manager once it does.
final class ShutdownRelay: Sendable {
    private struct State {
        var target: (@Sendable () -> Void)?
        var fired = false
    }
    private let state = Mutex(State())

    init() {}

    func fire() {
        let target = state.withLock { s -> (@Sendable () -> Void)? in
            s.fired = true
            return s.target
        }
        target?()
    }

    /// Sets what `fire` calls; calls it at once when a signal already came.
    func connect(_ target: @escaping @Sendable () -> Void) {
        let fired = state.withLock { s -> Bool in
            s.target = target
            return s.fired
        }
        if fired { target() }
    }

    var hasFired: Bool { state.withLock { $0.fired } }
}
