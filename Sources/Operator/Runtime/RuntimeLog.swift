/// The runtime's logging seam: the manager bridges it to the process's JSON logger; tests collect lines.
protocol RuntimeLog: Sendable {
    func log(_ level: RuntimeLogLevel, _ message: String, _ fields: [String: String])
}

enum RuntimeLogLevel: String, Sendable, Comparable {
    case debug, info, warn, error

    private var rank: Int {
        switch self {
        case .debug: return 0
        case .info: return 1
        case .warn: return 2
        case .error: return 3
        }
    }

    static func < (a: RuntimeLogLevel, b: RuntimeLogLevel) -> Bool { a.rank < b.rank }
}

extension RuntimeLog {
    func debug(_ message: String, _ fields: [String: String] = [:]) { log(.debug, message, fields) }
    func info(_ message: String, _ fields: [String: String] = [:]) { log(.info, message, fields) }
    func warn(_ message: String, _ fields: [String: String] = [:]) { log(.warn, message, fields) }
    func error(_ message: String, _ fields: [String: String] = [:]) { log(.error, message, fields) }
}

/// Discards everything.
struct SilentLog: RuntimeLog {
    func log(_ level: RuntimeLogLevel, _ message: String, _ fields: [String: String]) {}
}
