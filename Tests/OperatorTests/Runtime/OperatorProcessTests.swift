import Foundation
import Glibc
import Shared
import Synchronization
import Testing
@testable import Operator

/// Parsed JSON log lines, appended by a reader thread.
final class LogLines: Sendable {
    private let lines = Mutex<[JSONValue]>([])
    func append(_ v: JSONValue) { lines.withLock { $0.append(v) } }
    var all: [JSONValue] { lines.withLock { $0 } }
}

/// One `encryption-gateway-operator` process with its stdout (JSON log lines) captured.
final class OperatorProcess: @unchecked Sendable {
    static let binary: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/encryption-gateway-operator").path

    private let process: Process
    private let output = LogLines()
    private let readerDone = StopSignal()

    init(arguments: [String]) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw TestSupportError.failed("\(Self.binary) missing: run `swift build` first")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        process = p
        try p.run()
        let handle = pipe.fileHandleForReading
        let thread = Thread { [output, readerDone] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 0x0A) {
                    let line = pending[pending.startIndex..<nl]
                    pending = Data(pending[(nl + 1)...])
                    if let v = try? JSONValue.parse(Array(line)) { output.append(v) }
                }
            }
            readerDone.stop()
        }
        thread.start()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var logs: [JSONValue] { output.all }

    func logs(_ message: String) -> [JSONValue] { logs.filter { $0["msg"]?.string == message } }

    var identity: String? { logs("starting operator").first?["identity"]?.string }

    func address(of endpoint: String) -> String? {
        logs("listening").first { $0["endpoint"]?.string == endpoint }?["addr"]?.string
    }

    var isRunning: Bool { process.isRunning }

    var pid: pid_t { process.processIdentifier }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits (bounded) for exit; returns the status, or nil if still running.
    func waitForExit(_ limit: Duration = .seconds(60)) -> Int32? {
        guard eventually(limit, { !process.isRunning }) else { return nil }
        readerDone.wait(timeout: .seconds(10))
        return process.terminationStatus
    }
}

/// Two operator processes compete for the Lease on the test API server.
@Suite(.serialized) struct OperatorProcessTests {
    static func kubeconfig(_ dir: TempDir, server: TestAPIServer) -> String {
        dir.write("kubeconfig", """
            apiVersion: v1
            kind: Config
            current-context: test
            clusters:
            - name: test
              cluster:
                server: \(server.baseURL)
            users:
            - name: op
              user:
                token: t1
            contexts:
            - name: test
              context:
                cluster: test
                user: op
                namespace: ops
            """)
    }

    static func start(_ kubeconfig: String) throws -> OperatorProcess {
        try OperatorProcess(arguments: [
            "--kubeconfig", kubeconfig, "--leader-election-id", "op-lock",
            "--leader-election-lease-duration=6s", "--leader-election-renew-deadline=4s",
            "--leader-election-retry-period=500ms", "--health-probe-bind-address=127.0.0.1:0",
            "--metrics-bind-address=127.0.0.1:0", "--workers=2", "--graceful-shutdown-timeout=10s", "--log-level=debug",
        ])
    }

    static func holder(_ kube: any KubeClient) -> String? {
        (try? kube.get(.leases, ObjectKey(namespace: "ops", name: "op-lock"))).map { LeaseRecord(lease: $0).holderIdentity }
    }

    static func gateway(_ name: String) -> JSONValue {
        ["apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
         "metadata": ["name": .string(name), "namespace": "apps"], "spec": [:]]
    }

    /// The value of one series (`name{labels}` exactly as exposed) from a /metrics endpoint, nil when absent.
    static func metric(_ address: String, _ series: String) -> Double? {
        guard let text = rawGET(address, "/metrics")?.body else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    static func reconciled(_ p: OperatorProcess, _ key: String) -> Bool {
        p.logs("reconciled").contains { $0["key"]?.string == key }
    }

    @Test func exactlyOneLeadsKillHandsOverAndSigtermReleases() throws {
        let server = try TestAPIServer()
        let dir = TempDir()
        let kubeconfig = Self.kubeconfig(dir, server: server)
        let kube = server.client()
        _ = try kube.create(.encryptionGateways, namespace: "apps", Self.gateway("gw1"))

        let a = try Self.start(kubeconfig)
        let b = try Self.start(kubeconfig)
        #expect(eventually(.seconds(60)) { a.identity != nil && b.identity != nil })
        let ids = [a.identity ?? "", b.identity ?? ""]
        #expect(ids[0] != ids[1])

        // Exactly one leads: the Lease names it, only it logs the acquisition and reconciles.
        #expect(eventually(.seconds(60)) { ids.contains(Self.holder(kube) ?? "") })
        let leaderIsA = Self.holder(kube) == ids[0]
        let (leader, standby) = leaderIsA ? (a, b) : (b, a)
        #expect(eventually(.seconds(60)) { Self.reconciled(leader, "apps/gw1") })
        // Both are ready (caches synced); the standby keeps waiting.
        for p in [leader, standby] {
            let probes = try #require(p.address(of: "health probes"))
            #expect(eventually(.seconds(60)) { rawGET(probes, "/readyz")?.status == 200 })
        }
        // Metrics tell the same story.
        let leaderMetrics = try #require(leader.address(of: "metrics"))
        let standbyMetrics = try #require(standby.address(of: "metrics"))
        #expect(eventually(.seconds(60)) {
            Self.metric(leaderMetrics, "controller_runtime_reconcile_total{controller=\"encryptiongateway\",result=\"success\"}") ?? 0 >= 1
        })
        #expect(Self.metric(leaderMetrics, "leader_election_master_status{name=\"op-lock\"}") == 1)
        #expect(Self.metric(standbyMetrics, "leader_election_master_status{name=\"op-lock\"}") == 0)
        #expect(Self.metric(standbyMetrics, "controller_runtime_reconcile_total{controller=\"encryptiongateway\",result=\"success\"}") == nil)
        #expect(Self.metric(leaderMetrics, "rest_client_requests_total{verb=\"LIST\",code=\"200\"}") ?? 0 >= 1)
        #expect(Self.metric(leaderMetrics, "workqueue_adds_total{name=\"encryptiongateway\"}") ?? 0 >= 1)
        // Per-resource status gauges come from the leader only.
        #expect(eventually(.seconds(60)) {
            Self.metric(leaderMetrics, "encryptiongateway_status_replicas{namespace=\"apps\",name=\"gw1\"}") != nil
        })
        #expect(Self.metric(standbyMetrics, "encryptiongateway_status_replicas{namespace=\"apps\",name=\"gw1\"}") == nil)
        Thread.sleep(forTimeInterval: 1)
        #expect(leader.logs("successfully acquired lease").count == 1)
        #expect(standby.logs("successfully acquired lease").isEmpty)
        #expect(!Self.reconciled(standby, "apps/gw1"))
        #expect(Self.holder(kube) == leader.identity)

        // SIGKILL the leader: no release, so the standby takes over once the lease expires.
        leader.signal(SIGKILL)
        #expect(leader.waitForExit() != nil)
        #expect(eventually(.seconds(120)) { Self.holder(kube) == standby.identity })
        #expect(eventually(.seconds(60)) { standby.logs("successfully acquired lease").count == 1 })
        #expect(eventually(.seconds(60)) { Self.reconciled(standby, "apps/gw1") })
        let lease = try kube.get(.leases, ObjectKey(namespace: "ops", name: "op-lock"))
        #expect(LeaseRecord(lease: lease).leaseTransitions == 1)

        // SIGTERM the new leader: it releases the lease and exits 0.
        standby.signal(SIGTERM)
        #expect(standby.waitForExit() == 0)
        #expect(Self.holder(kube) == "")
        #expect(!standby.logs("released leader lease").isEmpty)
    }

    /// When renewals fail past the renew deadline the leader stops at once and exits non-zero (to restart as a
    /// fresh candidate), without releasing.
    @Test func leaderThatCannotRenewExitsNonZero() throws {
        let server = try TestAPIServer()
        let dir = TempDir()
        let kube = server.client()
        let p = try Self.start(Self.kubeconfig(dir, server: server))
        #expect(eventually(.seconds(60)) { p.identity != nil && Self.holder(kube) == p.identity })
        try server.control("POST", "inject", ["pathPrefix": "/apis/coordination.k8s.io/v1/namespaces/ops/leases",
                                              "method": "PUT", "code": 500, "reason": "InternalError",
                                              "message": "etcd unavailable", "count": 100000])
        #expect(p.waitForExit(.seconds(120)) == 1)
        #expect(!p.logs("leader election lost").isEmpty)
        #expect(p.logs("released leader lease").isEmpty)
    }

    @Test func badFlagExitsWithStatus2() throws {
        let p = try OperatorProcess(arguments: ["--workers", "none"])
        #expect(p.waitForExit() == 2)
    }

    @Test func unreachableKubeconfigExitsWithStatus2() throws {
        let p = try OperatorProcess(arguments: ["--kubeconfig", "/nonexistent/kubeconfig"])
        #expect(p.waitForExit() == 2)
    }
}
