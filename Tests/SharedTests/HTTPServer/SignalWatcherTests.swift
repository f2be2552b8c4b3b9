import Glibc
import Synchronization
import Testing
@testable import Shared

@Suite struct SignalWatcherTests {
    @Test func deliversSignalsOnItsThread() throws {
        let seen = Mutex<[Int32]>([])
        SignalWatcher.start(signals: [SIGUSR2]) { sig in seen.withLock { $0.append(sig) } }
        kill(getpid(), SIGUSR2)
        for _ in 0..<2000 where seen.withLock({ $0.isEmpty }) { usleep(1000) }
        #expect(seen.withLock { $0 } == [SIGUSR2])
    }
}
