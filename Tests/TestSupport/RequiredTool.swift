import Foundation

/// A dependency of a test that is not installed. Tests never skip for this: they fail with this message, which
/// says how to install what is missing (CI installs everything with scripts/deps.sh).
public struct MissingDependency: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}

/// Looks up the programs and Python modules tests depend on.
public enum RequiredTool {
    /// How to get what is missing. The Python packages go into `.work/venv` when the system's python3 lacks them,
    /// and only `make` puts that on PATH.
    public static let installHint = "run scripts/deps.sh test; outside make (`make swift-test SWIFT_TEST_ARGS=...`), "
        + "put its .work/venv/bin first on PATH"

    /// The path of `name` on `PATH`; throws "NAME not on PATH: run scripts/deps.sh test …" when it is missing.
    public static func path(_ name: String, install: String = installHint) throws(MissingDependency) -> String {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        for directory in paths where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        throw MissingDependency("\(name) not on PATH: \(install)")
    }

    /// Checks that `python3` imports every module in `modules`; throws naming the ones it cannot import.
    public static func pythonModules(_ modules: [String]) throws(MissingDependency) {
        let python = try path("python3")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", """
            import importlib, sys
            missing = []
            for m in sys.argv[1:]:
                try:
                    importlib.import_module(m)
                except ImportError:
                    missing.append(m)
            print(" ".join(missing))
            """] + modules
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { throw MissingDependency("python3 did not start: \(error)") }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let missing = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard p.terminationStatus == 0, missing.isEmpty else {
            throw MissingDependency("python3 cannot import \(missing.isEmpty ? modules.joined(separator: " ") : missing): "
                                    + installHint)
        }
    }
}
