import Foundation
import Shared
import Synchronization
import Testing
@testable import Operator

/// Runs Tests/KubeAPIServer/kube_test_apiserver.py as a real process on 127.0.0.1 with a free port.
final class TestAPIServer {
    static let script: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("KubeAPIServer/kube_test_apiserver.py").path

    let process = Process()
    let dir = TempDir()
    let port: Int
    let scheme: String
    private let control = HTTPClient(configuration: {
        var c = HTTPClientConfiguration()
        c.insecureSkipVerify = true  // control calls only; the client under test verifies
        return c
    }())

    var baseURL: String { "\(scheme)://127.0.0.1:\(port)" }

    /// `tls`: certificate and key files for HTTPS.
    init(arguments: [String] = ["--token", "t1"], tls: (cert: String, key: String)? = nil) throws {
        let ready = dir.path + "/ready.json"
        var args = [Self.script, "--port", "0", "--ready-file", ready, "--bookmark-interval", "0.3"] + arguments
        if let tls { args += ["--tls-cert", tls.cert, "--tls-key", tls.key] }
        scheme = tls == nil ? "http" : "https"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = args
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait for the ready file (bounded; a server that never comes up fails the test instead of hanging it).
        var found: Int?
        for _ in 0..<1500 {
            if let d = FileManager.default.contents(atPath: ready), let v = try? JSONValue.parse(Array(d)),
               let p = v["port"]?.int {
                found = p
                break
            }
            guard process.isRunning else { break }
            usleep(10_000)
        }
        guard let found else {
            if process.isRunning { process.terminate() }
            throw TestSupportError.failed("test API server did not start (exit \(process.isRunning ? -1 : process.terminationStatus))")
        }
        port = found
    }

    deinit { stop() }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Calls a `/__control/...` endpoint.
    @discardableResult
    func control(_ method: String, _ name: String, _ body: JSONValue? = nil) throws -> JSONValue {
        var req = HTTPClientRequest(method: method, url: "\(baseURL)/__control/\(name)",
                                    headers: body == nil ? [] : [("Content-Type", "application/json")],
                                    body: body.map { .bytes($0.encoded()) } ?? .none)
        req.totalTimeout = .seconds(30)
        let resp = try control.execute(req)
        guard resp.status == 200 else { throw TestSupportError.failed("control \(name): HTTP \(resp.status)") }
        return try JSONValue.parse(resp.body)
    }

    func client(token: String? = "t1", tokenFile: String? = nil, observer: (any KubeRequestObserver)? = nil,
                configure: (inout KubeConfig) -> Void = { _ in }) -> KubeRESTClient {
        var config = KubeConfig(server: baseURL, token: token, tokenFile: tokenFile, namespace: "default")
        configure(&config)
        return KubeRESTClient(config: config, observer: observer, requestTimeout: .seconds(30),
                              tokenRefreshInterval: .seconds(3600))
    }
}

/// Runs the `openssl` CLI (test certificates only; the product never shells out).
func openssl(_ args: [String], in dir: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw TestSupportError.failed("openssl \(args.joined(separator: " ")) failed") }
}

/// A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, made by the openssl CLI.
struct TestPKI {
    let dir: TempDir
    var caCert: String { dir.path + "/ca.crt" }
    var serverCert: String { dir.path + "/server.crt" }
    var serverKey: String { dir.path + "/server.key" }
    var clientCert: String { dir.path + "/client.crt" }
    var clientKey: String { dir.path + "/client.key" }
    var otherCACert: String { dir.path + "/other-ca.crt" }

    init() throws {
        dir = TempDir()
        let d = dir.path
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=kube-test-ca"], in: d)
        try openssl(["req", "-x509"] + ec + ["-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "2", "-subj", "/CN=other-ca"], in: d)
        dir.write("server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try openssl(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], in: d)
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "server.crt", "-days", "2", "-extfile", "server.ext"], in: d)
        dir.write("client.ext", "extendedKeyUsage=clientAuth\n")
        try openssl(["req"] + ec + ["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=operator/O=system:masters"], in: d)
        try openssl(["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "client.crt", "-days", "2", "-extfile", "client.ext"], in: d)
    }

    func read(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }
}

/// Runs `body` on a new thread; `wait()` joins it (bounded, so a hung call fails the test instead of the run).
final class Background<T: Sendable>: Sendable {
    private let result = Mutex<T?>(nil)
    private let done = Atomic<Bool>(false)

    init(_ body: @escaping @Sendable () -> T) {
        let thread = Thread { [self] in
            let r = body()
            result.withLock { $0 = r }
            done.store(true, ordering: .releasing)
        }
        thread.start()
    }

    var isDone: Bool { done.load(ordering: .acquiring) }

    func wait(upTo seconds: Int = 30) -> T? {
        for _ in 0..<(seconds * 100) {
            if isDone { return result.withLock { $0 } }
            usleep(10_000)
        }
        return nil
    }
}

/// Records REST client metrics callbacks.
final class RecordingObserver: KubeRequestObserver {
    let calls = Mutex<[(verb: String, code: String)]>([])
    func requestFinished(verb: String, resource: String, code: String, duration: Duration) {
        calls.withLock { $0.append((verb, code)) }
    }
}
