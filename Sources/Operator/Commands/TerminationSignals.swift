import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM/SIGINT delivered to a dedicated thread (not an async signal handler, so the callback may lock and log).
enum TerminationSignals {
    /// Blocks SIGTERM and SIGINT for the calling thread — call it first in `main`, before any other thread exists,
    /// so that every thread inherits the mask — and starts a thread that `sigwait`s for them. `handler` runs on that
    /// thread for the first signal; a second one exits the process at once with status 1 (an impatient operator).
    static func install(_ handler: @escaping @Sendable (Int32) -> Void) {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let waitSet = set
        let thread = Thread {
            var set = waitSet
            var first = true
            while true {
                var signal: Int32 = 0
                guard sigwait(&set, &signal) == 0 else { continue }
                if first {
                    first = false
                    handler(signal)
                } else {
                    exit(1)
                }
            }
        }
        thread.name = "signals"
        thread.start()
    }
}

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
