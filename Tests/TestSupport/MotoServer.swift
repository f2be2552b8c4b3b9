import Foundation
import Glibc

/// A moto S3 server on a free loopback port for the lifetime of the value (stopped in `deinit`).
/// `init` throws `MissingDependency` ("moto_server not on PATH: run scripts/deps.sh test") when moto is not
/// installed: a test that needs it fails, it never skips.
public final class MotoServer {
    public let port: Int
    private let process: Process

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    public init() throws {
        let executable = try RequiredTool.path("moto_server")
        port = try freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Poll until the port accepts connections (moto needs a couple of seconds to import).
        for _ in 0..<300 {
            if canConnect(port: port) { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        stop()
        throw StartFailed(port: port)
    }

    deinit { stop() }

    /// moto's server ignores SIGTERM, so it gets SIGKILL; its state lives in memory only.
    private func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public struct StartFailed: Error, CustomStringConvertible {
        public var port: Int
        public var description: String { "moto_server did not accept connections on 127.0.0.1:\(port) within 30 s" }
    }
}
