import Foundation
import Shared
import Synchronization
import Testing
@testable import Operator

/// A real Kubernetes 1.20.2 control plane (etcd + kube-apiserver + kube-controller-manager, from
/// Tests/KubeAPIServer/kube_cluster.py), started once per test process and shared by the `Cluster…` suites, which
/// each work in their own namespace. The binaries come from scripts/kube-build.sh's cache; when they are missing
/// the tests fail (they never skip). The process tree stops, and its directory goes, when the test process exits.
final class KubeCluster: @unchecked Sendable {
    static let script = APITypesTests.repoRoot.appendingPathComponent("Tests/KubeAPIServer/kube_cluster.py").path

    let info: JSONValue
    let dir: String
    private let process: Process

    var server: String { info["server"]?.string ?? "" }
    var caFile: String { info["ca"]?.string ?? "" }
    var adminToken: String { info["adminToken"]?.string ?? "" }
    var operatorToken: String { info["operatorToken"]?.string ?? "" }
    var adminKubeconfig: String { info["adminKubeconfig"]?.string ?? "" }
    var operatorKubeconfig: String { info["operatorKubeconfig"]?.string ?? "" }
    var etcd: String { info["etcd"]?.string ?? "" }

    /// The shared cluster with the CRD, the operator's namespace and RBAC installed (as a user would, with kubectl).
    static let shared: Result<KubeCluster, TestSupportError> = {
        do {
            let cluster = try KubeCluster(arguments: [])
            try cluster.install()
            return .success(cluster)
        } catch let e as TestSupportError {
            return .failure(e)
        } catch {
            return .failure(.failed("\(error)"))
        }
    }()

    static func get() throws -> KubeCluster { try shared.get() }

    init(arguments: [String], dir: String? = nil) throws {
        let d = dir ?? (NSTemporaryDirectory() + "s3gw-kube-" + UUID().uuidString.prefix(8))
        self.dir = d
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        let ready = d + "/ready-\(UUID().uuidString.prefix(6)).json"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        // A directory made here is the harness's to remove when it stops (one given is the caller's).
        p.arguments = [Self.script, "--dir", d, "--ready-file", ready] + (dir == nil ? ["--remove-dir"] : []) + arguments
        p.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        p.standardError = errors
        try p.run()
        process = p
        ExitReaper.register(p.processIdentifier, signal: SIGTERM)
        var found: JSONValue?
        for _ in 0..<(180 * 20) {
            if let data = FileManager.default.contents(atPath: ready), let v = try? JSONValue.parse(Array(data)) {
                found = v
                break
            }
            guard p.isRunning else { break }
            usleep(50_000)
        }
        guard let found else {
            if p.isRunning { p.terminate() }
            let message = String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
            throw TestSupportError.failed("the real Kubernetes control plane did not start: \(message)")
        }
        info = found
    }

    deinit { stop() }

    /// Stops this control plane (SIGTERM to the harness, which stops its children; SIGKILL after 30 s).
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        if !eventually(.seconds(30), { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// CRD (kubectl apply -f config/crd, as README says), operator namespace and RBAC (config/manager/namespace.yaml,
    /// config/rbac).
    func install() throws {
        let root = APITypesTests.repoRoot.path
        // Kubernetes < 1.25 does not know x-kubernetes-validations; kubectl's client-side check would refuse the
        // CRD (the API server itself drops the rules), hence --validate=false on 1.20 only.
        try kubectl(["apply", "--validate=false", "-f", root + "/config/crd"])
        try waitUntilEstablished("encryptiongateways.s3gateway.dev")
        try kubectl(["apply", "-f", root + "/config/manager/namespace.yaml", "-f", root + "/config/rbac"])
    }

    /// Waits up to 60 s for a CRD's `Established` condition to be `True`. Not `kubectl wait --for
    /// condition=established`: it exits at once with ".status.conditions accessor error" when its first look at the
    /// CRD comes before the API server has written any condition (seen under load; knative/operator#2338).
    func waitUntilEstablished(_ crd: String) throws {
        let query = ["get", "crd/" + crd, "-o", "jsonpath={.status.conditions[?(@.type==\"Established\")].status}"]
        var last = ""
        if eventually(.seconds(60), {
            last = (try? kubectl(query)) ?? last
            if last == "True" { return true }
            usleep(100_000)
            return false
        }) { return }
        throw TestSupportError.failed("crd/\(crd) not Established after 60 s (condition status: \"\(last)\")")
    }

    @discardableResult
    func kubectl(_ args: [String], namespace: String? = nil, input: String? = nil) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["kubectl", "--kubeconfig", adminKubeconfig] + (namespace.map { ["-n", $0] } ?? []) + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let stdin = Pipe()
        p.standardInput = stdin
        try p.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try? stdin.fileHandleForWriting.close()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw TestSupportError.failed("kubectl \(args.joined(separator: " ")) failed: \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }

    func client(token: String? = nil, server: String? = nil, observer: (any KubeRequestObserver)? = nil) -> KubeRESTClient {
        // A user agent of its own, so the tests' writes never look like the operator's (field managers).
        KubeRESTClient(config: KubeConfig(server: server ?? self.server, caFile: caFile, token: token ?? adminToken),
                       observer: observer, userAgent: "cluster-tests", requestTimeout: .seconds(30))
    }

    /// etcd's current revision (= the API server's newest resourceVersion), through etcd's JSON gateway.
    func etcdRevision() throws -> Int64 {
        let r = try etcdCall("/v3/kv/range", ["key": "AA==", "limit": 1])
        guard let rev = r[path: "header", "revision"]?.string.flatMap({ Int64($0) }) else {
            throw TestSupportError.failed("etcd range: no revision in \(r.jsonString)")
        }
        return rev
    }

    /// Compacts etcd's history up to `revision`: older resourceVersions are gone (410) for watches served by etcd.
    func compactEtcd(_ revision: Int64) throws {
        _ = try etcdCall("/v3/kv/compaction", ["revision": .string(String(revision)), "physical": true])
    }

    private func etcdCall(_ path: String, _ body: JSONValue) throws -> JSONValue {
        let http = HTTPClient()
        var req = HTTPClientRequest(method: "POST", url: etcd + path, headers: [("Content-Type", "application/json")],
                                    body: .bytes(body.encoded()))
        req.totalTimeout = .seconds(30)
        let resp = try http.execute(req)
        guard resp.status == 200 else { throw TestSupportError.failed("etcd \(path): HTTP \(resp.status)") }
        return try JSONValue.parse(resp.body)
    }

    /// A fresh namespace for one test.
    func namespace(_ prefix: String) throws -> String {
        let name = "\(prefix)-\(UUID().uuidString.prefix(6).lowercased())"
        _ = try client().create(.namespaces, namespace: nil, ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(name)]])
        return name
    }
}

/// The operator binary, running cluster-wide under the least-privilege ServiceAccount identity of config/rbac with
/// leader election on the real API server; shared by the cluster suites. Every test ends by checking that its log
/// has no "forbidden" (the RBAC check of issue 9).
enum ClusterOperator {
    static let shared: Result<OperatorProcess, TestSupportError> = {
        do {
            let cluster = try KubeCluster.get()
            let p = try OperatorProcess(arguments: [
                "--kubeconfig", cluster.operatorKubeconfig, "--leader-election-namespace=s3gateway-system",
                "--health-probe-bind-address=127.0.0.1:0", "--metrics-bind-address=127.0.0.1:0",
                "--workers=4", "--log-level=debug", "--gateway-image=test/gateway:1",
            ])
            ExitReaper.register(p.pid, signal: SIGKILL)
            guard eventually(.seconds(120), { !p.logs("successfully acquired lease").isEmpty }) else {
                return .failure(.failed("the operator did not acquire its Lease: \(p.logs.suffix(20))"))
            }
            return .success(p)
        } catch let e as TestSupportError {
            return .failure(e)
        } catch {
            return .failure(.failed("\(error)"))
        }
    }()

    static func get() throws -> OperatorProcess { try shared.get() }

    /// Lines of the operator's log that mention a refused request.
    static func forbidden(_ p: OperatorProcess) -> [JSONValue] {
        p.logs.filter { $0.jsonString.lowercased().contains("forbidden") }
    }
}

/// Processes shared by a whole test run (the control plane, the operator) have no owner whose deinit stops them:
/// they are signalled when the test process exits.
enum ExitReaper {
    private static let pids = Mutex<[(pid_t, Int32)]>([])
    private static let installed: Void = { atexit { ExitReaper.reap() } }()

    static func register(_ pid: pid_t, signal: Int32) {
        _ = installed
        pids.withLock { $0.append((pid, signal)) }
    }

    static func reap() {
        for (pid, sig) in pids.withLock({ $0 }) { kill(pid, sig) }
    }
}
