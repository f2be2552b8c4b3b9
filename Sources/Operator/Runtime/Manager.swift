import Foundation
import Shared
import Synchronization

struct ManagerConfiguration: Sendable {
    /// nil disables the probe listener.
    var healthProbeBindAddress: String? = ":8081"
    /// nil disables the metrics listener.
    var metricsBindAddress: String? = ":8080"
    /// nil runs without leader election (every replica acts).
    var leaderElection: LeaderElectionConfiguration?
    /// How long SIGTERM waits for reconciles in flight.
    var gracefulShutdownTimeout: Duration = .seconds(30)

    init() {}
}

/// Why `Manager.run()` returned.
enum ManagerExit: Equatable, Sendable {
    /// Shutdown was requested and completed (exit 0).
    case shutdown
    /// Leadership was lost: work stopped at once; the process should exit non-zero so it restarts as a candidate.
    case leadershipLost
    /// Could not start (e.g. a listener failed to bind).
    case failed(String)

    var exitCode: Int32 {
        switch self {
        case .shutdown: return 0
        case .leadershipLost, .failed: return 1
        }
    }
}

/// Hooks for the manager's own metrics.
protocol ManagerMetrics: Sendable {
    func leaderStatus(name: String, isLeader: Bool)
    /// Prometheus text exposition of every metric in the process.
    func exposition() -> String
}

struct NoManagerMetrics: ManagerMetrics {
    func leaderStatus(name: String, isLeader: Bool) {}
    func exposition() -> String { "" }
}

/// Runs the operator's moving parts in controller-runtime's order:
/// probe/metrics listeners → informers (also on standby replicas, so a new leader starts with warm caches and
/// standbys report ready) → wait for cache sync (`/readyz` turns 200) → leader election → controllers' workers.
///
/// `requestShutdown()` (SIGTERM/SIGINT) stops the watches, drains reconciles in flight (bounded by
/// `gracefulShutdownTimeout`), releases the Lease and returns `.shutdown`. Losing the Lease stops the workers at
/// once and returns `.leadershipLost` without waiting.
final class Manager: Sendable {
    let configuration: ManagerConfiguration
    private let client: any KubeClient
    private let electionClient: any KubeClient
    private let log: any RuntimeLog
    private let metrics: any ManagerMetrics

    private struct InformerKey: Hashable {
        var resource: GroupVersionResource
        var namespace: String?
        var labelSelector: String?
    }

    private struct State {
        var informers: [InformerKey: SharedInformer] = [:]
        var informerOrder: [SharedInformer] = []
        var controllers: [Controller] = []
        var started = false
        var ready = false
        var exit: ManagerExit?
        var elector: LeaderElector?
        var probeAddress: String?
        var metricsAddress: String?
    }
    private let state = Mutex(State())
    /// Fires on a shutdown request or on leadership loss; `state.exit` says which.
    private let wake = StopSignal()

    /// `electionClient` (default: `client`) carries the Lease requests; give it a request timeout below the renew
    /// deadline.
    init(client: any KubeClient, configuration: ManagerConfiguration, log: any RuntimeLog = SilentLog(),
         metrics: any ManagerMetrics = NoManagerMetrics(), electionClient: (any KubeClient)? = nil) {
        self.client = client
        self.electionClient = electionClient ?? client
        self.configuration = configuration
        self.log = log
        self.metrics = metrics
    }

    // MARK: Setup (before run)

    /// The shared informer for `configuration`'s kind, namespace and selector, created on first use.
    /// `indexers` are only used when the informer is created.
    func informer(_ configuration: InformerConfiguration, indexers: [String: IndexFunc] = [:]) -> SharedInformer {
        let key = InformerKey(resource: configuration.resource, namespace: configuration.namespace,
                              labelSelector: configuration.labelSelector)
        return state.withLock { s in
            precondition(!s.started, "Manager: create informers before run()")
            if let existing = s.informers[key] { return existing }
            let informer = SharedInformer(client: client, configuration: configuration, indexers: indexers, log: log)
            s.informers[key] = informer
            s.informerOrder.append(informer)
            return informer
        }
    }

    func add(_ controller: Controller) {
        state.withLock { s in
            precondition(!s.started, "Manager: add controllers before run()")
            s.controllers.append(controller)
        }
    }

    // MARK: Status

    /// True once every informer has synced (what `/readyz` reports).
    var isReady: Bool { state.withLock { $0.ready } }

    var isLeader: Bool {
        let elector = state.withLock { $0.elector }
        guard let elector else { return state.withLock { $0.started } }
        return elector.isLeader
    }

    /// "host:port" of the bound listeners (useful with port 0), once `run()` has started them.
    var probeAddress: String? { state.withLock { $0.probeAddress } }
    var metricsAddress: String? { state.withLock { $0.metricsAddress } }

    // MARK: Running

    /// Whether shutdown was requested (for `run(prepare:)` loops that wait on something).
    var isShuttingDown: Bool { state.withLock { $0.exit != nil } }

    /// Sleeps up to `duration`; returns false when shutdown was requested meanwhile.
    func sleepUnlessShuttingDown(_ duration: Duration) -> Bool { wake.sleep(duration) }

    /// Asks `run()` to shut down gracefully. Safe from any thread (e.g. a signal watcher), more than once.
    func requestShutdown() {
        let elector = state.withLock { s -> LeaderElector? in
            if s.exit == nil { s.exit = .shutdown }
            return s.elector
        }
        // Interrupts a pending acquire at once.
        elector?.stop()
        wake.stop()
    }

    /// Blocks until shutdown or leadership loss; returns why.
    ///
    /// `prepare` runs once the probe and metrics listeners are up and before any informer starts; it may create
    /// informers and add controllers (e.g. after discovery decided which kinds exist) and returns false when it
    /// gave up because shutdown was requested. Meanwhile `/healthz` answers and `/readyz` says not ready.
    func run(prepare: (() -> Bool)? = nil) -> ManagerExit {
        var servers: [HTTPServer] = []
        defer { for server in servers { server.shutdown(grace: .seconds(2)) } }
        do {
            if let address = configuration.healthProbeBindAddress {
                let server = try startListener(address, routes: .probes, label: "health probes")
                state.withLock { $0.probeAddress = server.boundAddress }
                servers.append(server)
            }
            if let address = configuration.metricsBindAddress {
                let server = try startListener(address, routes: .metrics, label: "metrics")
                state.withLock { $0.metricsAddress = server.boundAddress }
                servers.append(server)
            }
        } catch {
            log.error("cannot start listener", ["error": "\(error)"])
            return .failed("\(error)")
        }
        if let prepare, !prepare() {
            state.withLock { $0.started = true }
            return finish(informers: [], controllers: [], leading: false)
        }
        let (informers, controllers) = state.withLock { s in
            s.started = true
            return (s.informerOrder, s.controllers)
        }

        for informer in informers { informer.start() }
        while !informers.allSatisfy(\.hasSynced) {
            if !wake.sleep(.milliseconds(50)) { return finish(informers: informers, controllers: controllers, leading: false) }
        }
        state.withLock { $0.ready = true }
        log.info("informer caches synced", ["informers": "\(informers.count)"])

        if let election = configuration.leaderElection {
            let elector = LeaderElector(client: electionClient, configuration: election, log: log)
            let alreadyStopping = state.withLock { s -> Bool in
                s.elector = elector
                return s.exit != nil
            }
            metrics.leaderStatus(name: election.name, isLeader: false)
            if alreadyStopping || !elector.acquire() {
                return finish(informers: informers, controllers: controllers, leading: false)
            }
            metrics.leaderStatus(name: election.name, isLeader: true)
            elector.startRenewing { [self] in
                metrics.leaderStatus(name: election.name, isLeader: false)
                // Stop acting at once: a successor may already be writing.
                for c in controllers { c.stopNow() }
                state.withLock { s in if s.exit == nil { s.exit = .leadershipLost } }
                wake.stop()
            }
        }
        for c in controllers { c.start() }
        wake.wait()
        return finish(informers: informers, controllers: controllers, leading: true)
    }

    private func finish(informers: [SharedInformer], controllers: [Controller], leading: Bool) -> ManagerExit {
        let (exit, elector) = state.withLock { s in
            // Stopping caches are no longer trustworthy; tell load balancers and probes right away.
            s.ready = false
            return (s.exit ?? .shutdown, s.elector)
        }
        switch exit {
        case .leadershipLost, .failed:
            for c in controllers { c.stopNow() }
            elector?.stop(timeout: .zero)
            stopInformers(informers, timeout: .seconds(1))
        case .shutdown:
            log.info("shutting down", ["timeout": "\(configuration.gracefulShutdownTimeout)"])
            stopInformers(informers)
            if leading {
                let deadline = ContinuousClock.now + configuration.gracefulShutdownTimeout
                for c in controllers {
                    let remaining = ContinuousClock.now.duration(to: deadline)
                    if !c.drain(timeout: max(.zero, remaining)) {
                        log.warn("reconciles still running after the graceful shutdown timeout", ["controller": c.name])
                    }
                }
            } else {
                for c in controllers { c.stopNow() }
            }
            elector?.stop()
            if let elector, elector.release() {
                metrics.leaderStatus(name: elector.configuration.name, isLeader: false)
            }
        }
        log.info("manager stopped", ["reason": "\(exit)"])
        return exit
    }

    private func stopInformers(_ informers: [SharedInformer], timeout: Duration = .seconds(5)) {
        for informer in informers { informer.stop(timeout: timeout) }
    }

    private func startListener(_ address: String, routes: ProbeHandler.Routes, label: String) throws -> HTTPServer {
        let handler = ProbeHandler(routes: routes, isReady: { [self] in isReady },
                                   metricsText: { [self] in metrics.exposition() })
        var config = HTTPServerConfiguration(listenAddress: address, maxConnections: 64)
        config.idleTimeout = .seconds(30)
        let server = try HTTPServer(configuration: config, handler: handler)
        try server.start()
        log.info("listening", ["addr": server.boundAddress, "endpoint": label])
        return server
    }
}
