import Foundation
import Glibc
/// A moto S3 server on a free loopback port for the lifetime of the value (stopped in `deinit`).
final class MotoServer {
    let port: Int
    private let process: Process

    static let available: Bool = {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        return paths.contains { FileManager.default.isExecutableFile(atPath: "\($0)/moto_server") }
    }()

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Thrown when moto is not installed: a test that needs it fails with this message rather than being skipped.
    struct NotInstalled: Error, CustomStringConvertible {
        var description: String { "moto_server is not on PATH: run scripts/deps.sh test (make test does) to install moto[server]" }
    }

    init() throws {
        guard Self.available else { throw NotInstalled() }
        port = try freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["moto_server", "-H", "127.0.0.1", "-p", String(port)]
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

    struct StartFailed: Error { var port: Int }
}

/// A loopback port nobody listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
