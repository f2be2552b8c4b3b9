import Foundation
import Synchronization

/// The leader-election fields of a `coordination.k8s.io/v1` Lease's spec.
struct LeaseRecord: Equatable, Sendable {
    var holderIdentity: String = ""
    var leaseDurationSeconds: Int = 0
    /// MicroTime strings ("2006-01-02T15:04:05.000000Z"), informational only: expiry is never judged by them.
    var acquireTime: String?
    var renewTime: String?
    var leaseTransitions: Int = 0

    init(holderIdentity: String = "", leaseDurationSeconds: Int = 0, acquireTime: String? = nil,
         renewTime: String? = nil, leaseTransitions: Int = 0) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }

    /// Reads a Lease object's spec (missing fields take their zero values).
    init(lease: JSONValue) {
        let spec = lease["spec"]
        holderIdentity = spec?["holderIdentity"]?.string ?? ""
        leaseDurationSeconds = spec?["leaseDurationSeconds"]?.int ?? 0
        acquireTime = spec?["acquireTime"]?.string
        renewTime = spec?["renewTime"]?.string
        leaseTransitions = spec?["leaseTransitions"]?.int ?? 0
    }

    var spec: JSONValue {
        var o: [String: JSONValue] = [
            "holderIdentity": .string(holderIdentity),
            "leaseDurationSeconds": .integer(Int64(leaseDurationSeconds)),
            "leaseTransitions": .integer(Int64(leaseTransitions)),
        ]
        if let acquireTime { o["acquireTime"] = .string(acquireTime) }
        if let renewTime { o["renewTime"] = .string(renewTime) }
        return .object(o)
    }
}

/// What this candidate last saw of the lease and when (local monotonic time): the only clock expiry is judged by,
/// so skew between machines does not matter.
struct LeaseObservation: Sendable, Equatable {
    var record: LeaseRecord?
    var time: ContinuousClock.Instant?
}

/// The pure core of client-go's `tryAcquireOrRenew`.
enum LeaseDecision: Equatable, Sendable {
    /// No lease exists: create it with this record.
    case create(LeaseRecord)
    /// Write this record over the current one (guarded by the lease's resourceVersion).
    case update(LeaseRecord)
    /// Someone else holds an unexpired lease.
    case heldByOther(holder: String)

    /// Decides what to do with `current` (nil = the Lease does not exist). Updates `observation` when the record
    /// changed since last seen. `wallNow` is the MicroTime written into acquire/renew times.
    static func decide(current: LeaseRecord?, observation: inout LeaseObservation, identity: String,
                       leaseDuration: Duration, now: ContinuousClock.Instant, wallNow: String) -> LeaseDecision {
        let durationSeconds = Int(leaseDuration.components.seconds)
        guard let current else {
            return .create(LeaseRecord(holderIdentity: identity, leaseDurationSeconds: durationSeconds,
                                       acquireTime: wallNow, renewTime: wallNow, leaseTransitions: 0))
        }
        if observation.record != current || observation.time == nil {
            observation = LeaseObservation(record: current, time: now)
        }
        let weHold = current.holderIdentity == identity
        if !current.holderIdentity.isEmpty, !weHold, let seen = observation.time,
           now < seen + .seconds(current.leaseDurationSeconds) {
            return .heldByOther(holder: current.holderIdentity)
        }
        var next = LeaseRecord(holderIdentity: identity, leaseDurationSeconds: durationSeconds,
                               acquireTime: wallNow, renewTime: wallNow,
                               leaseTransitions: current.leaseTransitions)
        if weHold {
            next.acquireTime = current.acquireTime ?? wallNow
        } else {
            next.leaseTransitions += 1
        }
        return .update(next)
    }

    /// The record written on a voluntary release: nobody holds it and it expires in a second, so a waiting
    /// candidate takes over at its next retry instead of after a full lease duration.
    static func released(from current: LeaseRecord, wallNow: String) -> LeaseRecord {
        LeaseRecord(holderIdentity: "", leaseDurationSeconds: 1, acquireTime: wallNow, renewTime: wallNow,
                    leaseTransitions: current.leaseTransitions)
    }
}

struct LeaderElectionConfiguration: Sendable {
    var namespace: String
    var name: String
    /// Unique per process: hostname + "_" + random UUID, as controller-runtime does.
    var identity: String
    var leaseDuration: Duration = .seconds(15)
    var renewDeadline: Duration = .seconds(10)
    var retryPeriod: Duration = .seconds(2)
    var releaseOnCancel = true

    init(namespace: String, name: String, identity: String = LeaderElectionConfiguration.defaultIdentity()) {
        self.namespace = namespace
        self.name = name
        self.identity = identity
    }

    static func defaultIdentity() -> String {
        "\(ProcessInfo.processInfo.hostName)_\(UUID().uuidString.lowercased())"
    }

    /// client-go's rules: leaseDuration > renewDeadline > retryPeriod × 1.2 (the jitter factor), all positive.
    func validate() -> String? {
        if retryPeriod <= .zero { return "leader election retry period must be positive" }
        if leaseDuration <= renewDeadline { return "leader election lease duration must be greater than the renew deadline" }
        if renewDeadline <= retryPeriod * 1.2 { return "leader election renew deadline must be greater than 1.2 × the retry period" }
        if leaseDuration < .seconds(1) { return "leader election lease duration must be at least 1s" }
        return nil
    }
}

/// Leader election on a Lease (client-go's `leaderelection` with a `LeaseLock`).
///
/// `acquire()` blocks until this process holds the lease (or `stop()`); `startRenewing(onLost:)` then renews
/// every `retryPeriod`. Leadership is lost — `onLost` runs once, at once — when another holder shows up, or when
/// no renewal succeeded for `retryPeriod + renewDeadline` (a watchdog thread checks this, so a hung request
/// cannot keep a stale leader working). All writes carry the lease's resourceVersion: racing candidates get 409.
final class LeaderElector: Sendable {
    let configuration: LeaderElectionConfiguration
    private let client: any KubeClient
    private let log: any RuntimeLog
    private let stopSignal = StopSignal()

    private struct State {
        var observation = LeaseObservation()
        var leading = false
        var lost = false
        var lastRenew: ContinuousClock.Instant?
        var onLost: (@Sendable () -> Void)?
        var renewing = false
    }
    private let state = Mutex(State())
    private let renewFinished = StopSignal()
    /// Serialises tryAcquireOrRenew with release so a release cannot race a renewal.
    private let writeLock = Mutex(())

    init(client: any KubeClient, configuration: LeaderElectionConfiguration, log: any RuntimeLog = SilentLog()) {
        self.client = client
        self.configuration = configuration
        self.log = log
    }

    var isLeader: Bool { state.withLock { $0.leading && !$0.lost } }

    /// The holder this candidate last observed (empty when none).
    var observedHolder: String { state.withLock { $0.observation.record?.holderIdentity ?? "" } }

    private var leaseKey: ObjectKey { ObjectKey(namespace: configuration.namespace, name: configuration.name) }

    // MARK: Acquire / renew

    /// Blocks until the lease is ours (true) or `stop()` was called (false). Retries every `retryPeriod`
    /// (jittered up to 1.2×, as client-go).
    func acquire() -> Bool {
        log.info("attempting to acquire leader lease", ["lease": leaseKey.description, "identity": configuration.identity])
        var lastHolder = ""
        while !stopSignal.isStopped {
            switch tryAcquireOrRenew() {
            case .success(let sentAt):
                state.withLock { s in
                    s.leading = true
                    s.lastRenew = sentAt
                }
                log.info("successfully acquired lease", ["lease": leaseKey.description, "identity": configuration.identity])
                return true
            case .heldByOther(let holder):
                if holder != lastHolder {
                    log.info("new leader observed", ["lease": leaseKey.description, "leader": holder])
                    lastHolder = holder
                }
            case .failed(let error):
                log.warn("error acquiring lease", ["lease": leaseKey.description, "error": "\(error)"])
            }
            let jitter = Double.random(in: 0..<0.2)
            if !stopSignal.sleep(configuration.retryPeriod * (1 + jitter)) { return false }
        }
        return false
    }

    /// Starts renewing on a background thread. `onLost` runs once if leadership is lost (not on `stop()`).
    func startRenewing(onLost: @escaping @Sendable () -> Void) {
        state.withLock { s in
            s.onLost = onLost
            s.renewing = true
        }
        let renewer = Thread { [self] in
            renewLoop()
            renewFinished.stop()
        }
        renewer.name = "leader-renew"
        renewer.start()
        let watchdog = Thread { [self] in watchdogLoop() }
        watchdog.name = "leader-watchdog"
        watchdog.start()
    }

    /// Stops acquiring/renewing and waits (up to `timeout`) for the renew thread, which may be inside a request.
    /// Does not release: call `release()` after the work that needed the lease has stopped.
    func stop(timeout: Duration = .seconds(5)) {
        stopSignal.stop()
        if state.withLock({ $0.renewing }) { renewFinished.wait(timeout: timeout) }
    }

    /// Gives the lease up if we still hold it, so a successor need not wait for expiry. Best effort.
    @discardableResult
    func release() -> Bool {
        guard configuration.releaseOnCancel else { return false }
        let wasLeading = state.withLock { s -> Bool in
            defer { s.leading = false }
            return s.leading && !s.lost
        }
        guard wasLeading else { return false }
        return writeLock.withLock { _ -> Bool in
            do {
                let lease = try client.get(.leases, leaseKey)
                let current = LeaseRecord(lease: lease)
                guard current.holderIdentity == configuration.identity else { return false }
                var object = lease
                object["spec"] = LeaseDecision.released(from: current, wallNow: MicroTime.format(Date())).spec
                _ = try client.update(.leases, object)
                log.info("released leader lease", ["lease": leaseKey.description])
                return true
            } catch {
                log.warn("failed to release leader lease", ["lease": leaseKey.description, "error": "\(error)"])
                return false
            }
        }
    }

    private func renewLoop() {
        let c = configuration
        while !stopSignal.isStopped {
            if !stopSignal.sleep(c.retryPeriod) { return }
            let roundStart = ContinuousClock.now
            while true {
                if stopSignal.isStopped { return }
                switch tryAcquireOrRenew() {
                case .success(let sentAt):
                    // The lease runs from when the renewal was sent, not from when its answer came back: a slow
                    // answer must not extend how long this process believes it leads (others may already see
                    // the lease expire on their clocks).
                    state.withLock { $0.lastRenew = sentAt }
                case .heldByOther(let holder):
                    loseLeadership(reason: "lease is held by \(holder)")
                    return
                case .failed(let error):
                    log.warn("failed to renew lease", ["lease": leaseKey.description, "error": "\(error)"])
                    if roundStart.duration(to: .now) >= c.renewDeadline {
                        loseLeadership(reason: "failed to renew lease within \(c.renewDeadline)")
                        return
                    }
                    if !stopSignal.sleep(c.retryPeriod) { return }
                    continue
                }
                break
            }
        }
    }

    private func watchdogLoop() {
        let c = configuration
        let limit = c.retryPeriod + c.renewDeadline
        let tick = min(c.retryPeriod / 2, .milliseconds(500))
        while stopSignal.sleep(tick) {
            let (stale, lost) = state.withLock { s -> (Bool, Bool) in
                guard let last = s.lastRenew else { return (false, s.lost) }
                return (last.duration(to: .now) > limit, s.lost)
            }
            if lost { return }
            if stale {
                loseLeadership(reason: "no successful renewal for \(limit)")
                return
            }
        }
    }

    private func loseLeadership(reason: String) {
        let callback = state.withLock { s -> (@Sendable () -> Void)? in
            guard !s.lost else { return nil }
            s.lost = true
            s.leading = false
            return s.onLost
        }
        guard let callback else { return }
        log.error("leader election lost", ["lease": leaseKey.description, "reason": reason])
        callback()
    }

    private enum Attempt {
        /// `sentAt`: when the successful write was sent.
        case success(sentAt: ContinuousClock.Instant)
        case heldByOther(String)
        case failed(KubeError)
    }

    private func tryAcquireOrRenew() -> Attempt {
        writeLock.withLock { _ -> Attempt in
            let c = configuration
            let existing: JSONValue?
            do throws(KubeError) {
                existing = try client.getIfExists(.leases, leaseKey)
            } catch {
                return .failed(error)
            }
            let now = ContinuousClock.now
            let wallNow = MicroTime.format(Date())
            let decision = state.withLock { s in
                LeaseDecision.decide(current: existing.map(LeaseRecord.init(lease:)), observation: &s.observation,
                                     identity: c.identity, leaseDuration: c.leaseDuration, now: now, wallNow: wallNow)
            }
            let sentAt = ContinuousClock.now
            do throws(KubeError) {
                let written: JSONValue
                switch decision {
                case .heldByOther(let holder):
                    return .heldByOther(holder)
                case .create(let record):
                    let lease: JSONValue = [
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": ["name": .string(c.name), "namespace": .string(c.namespace)],
                        "spec": record.spec,
                    ]
                    written = try client.create(.leases, namespace: c.namespace, lease)
                case .update(let record):
                    var lease = existing ?? .null
                    lease["spec"] = record.spec
                    written = try client.update(.leases, lease)
                }
                // Observe our own write at the time we sent it (client-go's setObservedRecord after update).
                state.withLock { s in s.observation = LeaseObservation(record: LeaseRecord(lease: written), time: sentAt) }
                return .success(sentAt: sentAt)
            } catch {
                return .failed(error)
            }
        }
    }
}

/// Kubernetes `MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
enum MicroTime {
    static func format(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
        var seconds = Int(micros / 1_000_000)
        let fraction = Int(micros % 1_000_000)
        var tm = tm()
        gmtime_r(&seconds, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                      Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
                      Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), fraction)
    }
}
