import Foundation
import Synchronization
import Testing
@testable import Operator

/// Two electors on one (fake) API server. Lease timings are short so the suite stays quick; assertions poll with
/// generous bounds and never measure time.
@Suite struct LeaderElectorTests {
    static func config(_ identity: String) -> LeaderElectionConfiguration {
        var c = LeaderElectionConfiguration(namespace: "ops", name: "lock", identity: identity)
        // Short, but with room for a loaded 2-core machine: a spurious loss would fail the manager tests.
        c.leaseDuration = .seconds(4)
        c.renewDeadline = .seconds(3)
        c.retryPeriod = .milliseconds(250)
        return c
    }

    static func holder(_ client: FakeKubeClient, namespace: String = "ops") -> String? {
        (try? client.get(.leases, ObjectKey(namespace: namespace, name: "lock"))).map { LeaseRecord(lease: $0).holderIdentity }
    }

    @Test func exactlyOneLeadsAndReleaseHandsOver() {
        let client = FakeKubeClient()
        let a = LeaderElector(client: client, configuration: Self.config("a"))
        let b = LeaderElector(client: client, configuration: Self.config("b"))
        let aWon = Mutex<Bool?>(nil)
        let ta = TestThread { let r = a.acquire(); aWon.withLock { $0 = r } }
        #expect(eventually { aWon.withLock { $0 } == true })
        a.startRenewing { Issue.record("a must not lose leadership") }
        let bWon = Mutex<Bool?>(nil)
        let tb = TestThread { let r = b.acquire(); bWon.withLock { $0 = r } }
        // b keeps observing a's renewals and must not take over.
        #expect(eventually(.seconds(60)) { b.observedHolder == "a" })
        Thread.sleep(forTimeInterval: 0.5)
        #expect(bWon.withLock { $0 } == nil)
        #expect(a.isLeader && !b.isLeader)
        #expect(Self.holder(client) == "a")
        a.stop()
        #expect(a.release())
        #expect(eventually(.seconds(60)) { bWon.withLock { $0 } == true })
        #expect(Self.holder(client) == "b")
        let lease = try? client.get(.leases, ObjectKey(namespace: "ops", name: "lock"))
        #expect(lease.map { LeaseRecord(lease: $0).leaseTransitions } == 1)
        b.stop()
        ta.join(); tb.join()
    }

    @Test func failingRenewalsLoseLeadershipOnce() {
        let client = FakeKubeClient()
        let a = LeaderElector(client: client, configuration: Self.config("a"))
        #expect(a.acquire())
        let lost = Mutex(0)
        a.startRenewing { lost.withLock { $0 += 1 } }
        client.state.withLock { $0.failCreatesAndUpdates = .server(code: 500, reason: "InternalError", message: "boom") }
        #expect(eventually(.seconds(60)) { lost.withLock { $0 } == 1 })
        #expect(!a.isLeader)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(lost.withLock { $0 } == 1)
        a.stop()
        // A lost leader does not write a release.
        #expect(!a.release())
    }

    @Test func anotherHolderTakingTheLeaseIsLossAtOnce() throws {
        let client = FakeKubeClient()
        let a = LeaderElector(client: client, configuration: Self.config("a"))
        #expect(a.acquire())
        let lost = Mutex(false)
        a.startRenewing { lost.withLock { $0 = true } }
        // Someone overwrites the lease (e.g. after a long pause of ours).
        var lease = try client.get(.leases, ObjectKey(namespace: "ops", name: "lock"))
        lease["spec"] = LeaseRecord(holderIdentity: "intruder", leaseDurationSeconds: 15, leaseTransitions: 9).spec
        _ = try client.update(.leases, lease)
        #expect(eventually(.seconds(60)) { lost.withLock { $0 } })
        a.stop()
    }

    @Test func stopInterruptsAcquire() {
        let client = FakeKubeClient()
        let a = LeaderElector(client: client, configuration: Self.config("a"))
        #expect(a.acquire())
        a.startRenewing {}
        let b = LeaderElector(client: client, configuration: Self.config("b"))
        let result = Mutex<Bool?>(nil)
        let t = TestThread { let r = b.acquire(); result.withLock { $0 = r } }
        #expect(eventually { b.observedHolder == "a" })
        b.stop()
        #expect(eventually { result.withLock { $0 } == false })
        t.join()
        a.stop()
    }

    /// Renewals that succeed but answer slowly: the lease counts from when each renewal was sent, so a leader whose
    /// answers take most of the renew window gives up rather than overlapping a successor (with the answer time, it
    /// would have kept leading indefinitely).
    @Test func renewalTimeIsWhenTheRequestWasSent() {
        let client = FakeKubeClient()
        let a = LeaderElector(client: client, configuration: Self.config("a"))
        #expect(a.acquire())
        let lost = Mutex(0)
        a.startRenewing { lost.withLock { $0 += 1 } }
        // retry 0.25 s + renew deadline 3 s = 3.25 s of validity per renewal; each answer now takes 2 s, so the
        // next renewal is sent 2.25 s after the previous one and answered 4.25 s after it: past the validity.
        client.state.withLock { $0.writeDelay = .seconds(2) }
        #expect(eventually(.seconds(60)) { lost.withLock { $0 } == 1 })
        #expect(!a.isLeader)
        a.stop()
    }
}
