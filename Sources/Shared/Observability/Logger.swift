import Foundation
import Synchronization

/// Severity of a log line; `LOG_LEVEL` picks the lowest one written.
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case debug, info, warn, error

    public init?(_ text: String) {
        switch text.lowercased() {
        case "debug": self = .debug
        case "info": self = .info
        case "warn", "warning": self = .warn
        case "error": self = .error
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .debug: return "debug"
        case .info: return "info"
        case .warn: return "warn"
        case .error: return "error"
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// A value in a structured log line.
public enum LogValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral
{
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }

    public static func int(_ value: Int) -> LogValue { .int(Int64(value)) }
}

/// Where log lines go. Each line is written with one `write(2)` so lines from
/// concurrent threads never interleave.
public final class LogSink: Sendable {
    private let fd: Int32
    private let captured: CapturedLines?

    private final class CapturedLines: Sendable {
        let lines = Mutex<[String]>([])
    }

    /// Standard output, as container runtimes collect it.
    public static let standardOutput = LogSink(fd: 1)
    public static let standardError = LogSink(fd: 2)

    public init(fd: Int32) {
        self.fd = fd
        self.captured = nil
    }

    /// Keeps lines in memory; for tests.
    public init(capturing: Void) {
        self.fd = -1
        self.captured = CapturedLines()
    }

    public var capturedLines: [String] { captured?.lines.withLock { $0 } ?? [] }

    func write(_ line: String) {
        if let captured {
            captured.lines.withLock { $0.append(line) }
            return
        }
        var data = line
        data.append("\n")
        data.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}

/// A JSON-lines logger: `{"time":"…","level":"info","msg":"…",…fields}`.
/// Values are copied into the line as given, so callers never pass secrets.
public struct Logger: Sendable {
    public let level: LogLevel
    private let sink: LogSink
    private let context: [(String, LogValue)]

    public init(level: LogLevel = .info, sink: LogSink = .standardOutput) {
        self.level = level
        self.sink = sink
        self.context = []
    }

    private init(level: LogLevel, sink: LogSink, context: [(String, LogValue)]) {
        self.level = level
        self.sink = sink
        self.context = context
    }

    /// A logger that adds `fields` to every line.
    public func with(_ fields: KeyValuePairs<String, LogValue>) -> Logger {
        Logger(level: level, sink: sink, context: context + fields.map { ($0.key, $0.value) })
    }

    public func isEnabled(_ level: LogLevel) -> Bool { level >= self.level }

    public func debug(_ message: @autoclosure () -> String, _ fields: KeyValuePairs<String, LogValue> = [:]) {
        log(.debug, message(), fields)
    }

    public func info(_ message: @autoclosure () -> String, _ fields: KeyValuePairs<String, LogValue> = [:]) {
        log(.info, message(), fields)
    }

    public func warn(_ message: @autoclosure () -> String, _ fields: KeyValuePairs<String, LogValue> = [:]) {
        log(.warn, message(), fields)
    }

    public func error(_ message: @autoclosure () -> String, _ fields: KeyValuePairs<String, LogValue> = [:]) {
        log(.error, message(), fields)
    }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String,
                    _ fields: KeyValuePairs<String, LogValue> = [:]) {
        guard isEnabled(level) else { return }
        var line = "{\"time\":\""
        line += Self.timestamp()
        line += "\",\"level\":\""
        line += level.name
        line += "\",\"msg\":"
        JSON.appendString(message(), to: &line)
        for (key, value) in context { Self.append(key, value, to: &line) }
        for (key, value) in fields { Self.append(key, value, to: &line) }
        line += "}"
        sink.write(line)
    }

    private static func append(_ key: String, _ value: LogValue, to line: inout String) {
        line += ","
        JSON.appendString(key, to: &line)
        line += ":"
        switch value {
        case .string(let s): JSON.appendString(s, to: &line)
        case .int(let i): line += String(i)
        case .double(let d): line += d.isFinite ? String(d) : "null"
        case .bool(let b): line += b ? "true" : "false"
        }
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-26T17:29:54.123Z`.
    public static func timestamp(_ date: Date = Date()) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let millis = Int((interval - Double(seconds)) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}

/// Minimal JSON string escaping (RFC 8259) for log lines and small documents.
public enum JSON {
    public static func appendString(_ string: String, to out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    public static func quote(_ string: String) -> String {
        var out = ""
        appendString(string, to: &out)
        return out
    }
}
