// TEMPORARY: stands in for Shared/Observability's JSON Logger until it lands on main (~18:30 UTC); deleted then.
import Foundation

struct TemporaryJSONLog: RuntimeLog {
    var minimum: RuntimeLogLevel

    func log(_ level: RuntimeLogLevel, _ message: String, _ fields: [String: String]) {
        guard level >= minimum else { return }
        var object: [String: String] = fields
        object["level"] = level.rawValue
        object["msg"] = message
        object["ts"] = MicroTime.format(Date())
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        FileHandle.standardOutput.write(data + Data([0x0A]))
    }
}
