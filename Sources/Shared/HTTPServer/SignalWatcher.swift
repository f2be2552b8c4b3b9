import Foundation
import Glibc
import Synchronization

/// Write end of the self-pipe the signal handler writes to; set once, before any handler is installed.
nonisolated(unsafe) private var signalPipeWriteFD: Int32 = -1

/// Turns process signals (SIGTERM, SIGINT…) into calls on an ordinary thread,
/// where it is safe to lock, log and call `HTTPServer.shutdown(grace:)`.
///
/// The installed signal handler only writes the signal number to a pipe
/// (async-signal-safe); a dedicated thread reads the pipe and calls `onSignal`.
/// Unlike sigwait() this works whatever signal mask the process's other threads have.
/// One watcher per process; later `start` calls add signals and replace the callback.
public final class SignalWatcher: Sendable {
    private static let shared = Mutex<SignalWatcher?>(nil)

    private let callback: Mutex<@Sendable (Int32) -> Void>
    private let readFD: Int32

    private init(readFD: Int32, callback: @escaping @Sendable (Int32) -> Void) {
        self.readFD = readFD
        self.callback = Mutex(callback)
    }

    /// Installs handlers for `signals` and starts the watching thread.
    @discardableResult
    public static func start(signals: [Int32], onSignal: @escaping @Sendable (Int32) -> Void) -> SignalWatcher {
        let watcher: SignalWatcher = shared.withLock { current in
            if let current {
                current.callback.withLock { $0 = onSignal }
                return current
            }
            var fds: [Int32] = [0, 0]
            precondition(pipe(&fds) == 0, "cannot create the signal pipe")
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
            signalPipeWriteFD = fds[1]
            let w = SignalWatcher(readFD: fds[0], callback: onSignal)
            let thread = Thread { w.loop() }
            thread.name = "signal-watcher"
            thread.start()
            current = w
            return w
        }
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = write(signalPipeWriteFD, &byte, 1)
                errno = saved
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
        return watcher
    }

    private func loop() {
        var byte: UInt8 = 0
        while true {
            let n = read(readFD, &byte, 1)
            if n == 1 {
                let cb = callback.withLock { $0 }
                cb(Int32(byte))
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
