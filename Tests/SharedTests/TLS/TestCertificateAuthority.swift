import Foundation
import Glibc
@testable import Shared

/// A throw-away CA made with the `openssl` command at test time, issuing certificates for 127.0.0.1/localhost.
final class TestCertificateAuthority {
    struct Issued {
        let certificate: String
        let key: String
        let serial: String
    }

    private let directory = TempDir(prefix: "s3gw-tls")
    var caCertificate: String { path("ca.pem") }
    private var counter = 0

    init() throws {
        try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                          "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2", "-subj", "/CN=s3gw test CA"])
    }

    func path(_ name: String) -> String { directory.path + "/" + name }

    /// A leaf certificate signed by this CA (RSA 2048 so that RSA key-exchange suites could be offered).
    func issue(commonName: String = "localhost", clientAuth: Bool = false) throws -> Issued {
        counter += 1
        let name = "leaf\(counter)"
        // The top byte is never zero, so the 16 hex digits are exactly how OpenSSL prints the serial back
        // (a leading 00 byte would be dropped there and the comparison would fail one run in 256).
        let serial = String(format: "%016llX", UInt64.random(in: 0x1000_0000_0000_0000...UInt64(Int64.max)))
        let ext = path("\(name).ext")
        try (clientAuth
            ? "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
            : "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                + "subjectAltName=DNS:localhost,IP:127.0.0.1\n").write(toFile: ext, atomically: true, encoding: .utf8)
        try Self.openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", path("\(name).key"),
                          "-out", path("\(name).csr"), "-subj", "/CN=\(commonName)"])
        try Self.openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                          "-set_serial", "0x" + serial, "-days", "2", "-out", path("\(name).pem"), "-extfile", ext])
        return Issued(certificate: path("\(name).pem"), key: path("\(name).key"), serial: serial)
    }

    /// Runs `openssl`; throws with its output when it fails.
    @discardableResult
    static func openssl(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        if process.terminationStatus != 0 && stdin == nil {
            throw TestCAError(message: "openssl \(arguments.joined(separator: " ")): \(output)")
        }
        return (process.terminationStatus, output)
    }

    /// A background `openssl` (e.g. `s_server`), killed by `stop()`. posix_spawn instead of Foundation's
    /// Process, whose waitUntilExit can hang in the test runner once the child was killed.
    final class Background {
        let pid: pid_t

        init(_ arguments: [String]) throws {
            var pid: pid_t = 0
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0) }
            let argv = (["openssl"] + arguments).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            let rc = posix_spawn(&pid, "/usr/bin/openssl", &actions, nil, argv, environ)
            guard rc == 0 else { throw TestCAError(message: "posix_spawn openssl: \(rc)") }
            self.pid = pid
        }

        var isRunning: Bool {
            var status: Int32 = 0
            return waitpid(pid, &status, WNOHANG) == 0
        }

        func stop() {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }

    struct TestCAError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
