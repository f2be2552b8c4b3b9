import Foundation
import Testing
@testable import Operator

@Suite struct LeaseDecisionTests {
    static let me = "me_1"
    static let t0 = ContinuousClock.now
    static let wall = "2026-11-26T18:00:00.000000Z"

    static func held(by holder: String, transitions: Int = 3, renew: String = "2026-11-26T17:59:58.000000Z") -> LeaseRecord {
        LeaseRecord(holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: "2026-11-26T17:00:00.000000Z",
                    renewTime: renew, leaseTransitions: transitions)
    }

    @Test func absentLeaseIsCreated() {
        var obs = LeaseObservation()
        let d = LeaseDecision.decide(current: nil, observation: &obs, identity: Self.me, leaseDuration: .seconds(15),
                                     now: Self.t0, wallNow: Self.wall)
        #expect(d == .create(LeaseRecord(holderIdentity: Self.me, leaseDurationSeconds: 15, acquireTime: Self.wall,
                                         renewTime: Self.wall, leaseTransitions: 0)))
    }

    @Test func freshlyObservedOtherHolderIsRespectedEvenIfItsRenewTimeLooksOld() {
        // Clocks are never compared: the first sighting starts the local expiry timer.
        var obs = LeaseObservation()
        let stale = Self.held(by: "other", renew: "2000-01-01T00:00:00.000000Z")
        let d = LeaseDecision.decide(current: stale, observation: &obs, identity: Self.me, leaseDuration: .seconds(15),
                                     now: Self.t0, wallNow: Self.wall)
        #expect(d == .heldByOther(holder: "other"))
        #expect(obs == LeaseObservation(record: stale, time: Self.t0))
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var observed: LeaseRecord?
        var observedAgo: Duration
        var current: LeaseRecord
        var expected: LeaseDecision
        var expectObservationReset: Bool
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(label: "held by other, unchanged, within duration",
             observed: held(by: "other"), observedAgo: .seconds(14), current: held(by: "other"),
             expected: .heldByOther(holder: "other"), expectObservationReset: false),
        Case(label: "held by other, unchanged past duration: take over",
             observed: held(by: "other"), observedAgo: .seconds(16), current: held(by: "other"),
             expected: .update(LeaseRecord(holderIdentity: me, leaseDurationSeconds: 15, acquireTime: wall,
                                           renewTime: wall, leaseTransitions: 4)),
             expectObservationReset: false),
        Case(label: "held by other, renewed since last seen: timer restarts",
             observed: held(by: "other"), observedAgo: .seconds(60),
             current: held(by: "other", renew: "2026-11-26T18:00:01.000000Z"),
             expected: .heldByOther(holder: "other"), expectObservationReset: true),
        Case(label: "our own lease: renew keeps acquireTime and transitions",
             observed: held(by: me), observedAgo: .seconds(2), current: held(by: me),
             expected: .update(LeaseRecord(holderIdentity: me, leaseDurationSeconds: 15,
                                           acquireTime: "2026-11-26T17:00:00.000000Z", renewTime: wall,
                                           leaseTransitions: 3)),
             expectObservationReset: false),
        Case(label: "released lease (empty holder) is taken at once",
             observed: nil, observedAgo: .zero,
             current: LeaseRecord(holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 7),
             expected: .update(LeaseRecord(holderIdentity: me, leaseDurationSeconds: 15, acquireTime: wall,
                                           renewTime: wall, leaseTransitions: 8)),
             expectObservationReset: true),
        Case(label: "someone else took our lease",
             observed: held(by: me), observedAgo: .seconds(2), current: held(by: "thief", transitions: 4),
             expected: .heldByOther(holder: "thief"), expectObservationReset: true),
        Case(label: "holder's own short duration governs expiry",
             observed: LeaseRecord(holderIdentity: "other", leaseDurationSeconds: 2, leaseTransitions: 1),
             observedAgo: .seconds(3),
             current: LeaseRecord(holderIdentity: "other", leaseDurationSeconds: 2, leaseTransitions: 1),
             expected: .update(LeaseRecord(holderIdentity: me, leaseDurationSeconds: 15, acquireTime: wall,
                                           renewTime: wall, leaseTransitions: 2)),
             expectObservationReset: false),
    ]

    @Test(arguments: cases)
    func decision(_ c: Case) {
        let now = Self.t0 + .seconds(100)
        let seenAt = now - c.observedAgo
        var obs = LeaseObservation(record: c.observed, time: c.observed == nil ? nil : seenAt)
        let d = LeaseDecision.decide(current: c.current, observation: &obs, identity: Self.me,
                                     leaseDuration: .seconds(15), now: now, wallNow: Self.wall)
        #expect(d == c.expected)
        #expect(obs.record == c.current)
        #expect(obs.time == (c.expectObservationReset ? now : seenAt))
    }

    @Test func releasedRecordHasNoHolderAndExpiresFast() {
        let r = LeaseDecision.released(from: Self.held(by: Self.me, transitions: 5), wallNow: Self.wall)
        #expect(r.holderIdentity.isEmpty)
        #expect(r.leaseDurationSeconds == 1)
        #expect(r.leaseTransitions == 5)
    }

    @Test func recordRoundTripsThroughLeaseSpec() {
        let r = Self.held(by: "x", transitions: 9)
        #expect(LeaseRecord(lease: ["spec": r.spec]) == r)
        #expect(LeaseRecord(lease: ["metadata": ["name": "l"]]) == LeaseRecord())
    }

    @Test(arguments: [
        (15, 10, 2, true), (15, 15, 2, false), (15, 10, 9, false), (3, 2, 1, true), (5, 2, 2, false), (3, 2, 0, false), (6, 4, 1, true),
    ])
    func configurationValidation(lease: Int, renew: Int, retry: Int, valid: Bool) {
        var c = LeaderElectionConfiguration(namespace: "ns", name: "n", identity: "i")
        c.leaseDuration = .seconds(lease)
        c.renewDeadline = .seconds(renew)
        c.retryPeriod = .seconds(retry)
        #expect((c.validate() == nil) == valid)
    }

    @Test func microTimeFormat() {
        #expect(MicroTime.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000000Z")
        #expect(MicroTime.format(Date(timeIntervalSince1970: 1_700_000_000.25)) == "2023-11-14T22:13:20.250000Z")
    }
}
