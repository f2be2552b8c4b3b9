import Foundation
import Shared

/// Settings of the offline commands (`rotate`, `decrypt`), read from the same environment
/// contract as the gateway but without requiring what only a serving gateway needs
/// (`GATEWAY_ACCESS_KEY`/`GATEWAY_SECRET_KEY`, the listen address).
enum ToolSettings {
    static let previousPasswordsVariable = GatewaySetting.encryptionPreviousPasswords.rawValue

    /// Splits `ENCRYPTION_PREVIOUS_PASSWORDS` exactly as the gateway does.
    static func previousPasswords(_ text: String?) throws(ConfigurationError) -> [String] {
        try GatewayConfiguration.previousPasswords(text)
    }

    /// The keys, from the same settings as the gateway (docs/keys.md): every configured provider, the
    /// default key and the policy file. Key files are read and passwords derived here (exit 2 on errors).
    static func keys(environment: [String: String]) throws(ConfigurationError) -> (settings: KeySettings, service: KeyService) {
        let settings = try KeySettings.parse({ name in environment[name.rawValue].flatMap { $0.isEmpty ? nil : $0 } },
                                             environment: environment)
        return (settings, try settings.makeKeyService())
    }

    /// The backend client from BACKEND_ENDPOINT, BACKEND_REGION, BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY,
    /// BACKEND_CA_FILE and BACKEND_TLS_INSECURE_SKIP_VERIFY.
    static func backendClient(environment: [String: String]) throws(ConfigurationError) -> BackendClient {
        func value(_ s: GatewaySetting) -> String? {
            guard let v = environment[s.rawValue], !v.isEmpty else { return nil }
            return v
        }
        func required(_ s: GatewaySetting) throws(ConfigurationError) -> String {
            guard let v = value(s) else { throw ConfigurationError(s, "is required") }
            return v
        }
        let endpoint = try required(.backendEndpoint)
        let accessKey = try required(.backendAccessKey)
        let secretKey = try required(.backendSecretKey)
        var http = HTTPClientConfiguration()
        if let ca = value(.backendCAFile) {
            guard FileManager.default.isReadableFile(atPath: ca) else {
                throw ConfigurationError(.backendCAFile, "cannot read \(JSON.quote(ca))")
            }
            http.caFile = ca
        }
        if let skip = value(.backendTLSInsecureSkipVerify) {
            switch skip.lowercased() {
            case "true", "1", "yes": http.insecureSkipVerify = true
            case "false", "0", "no": http.insecureSkipVerify = false
            default: throw ConfigurationError(.backendTLSInsecureSkipVerify, "must be true or false, got \(JSON.quote(skip))")
            }
        }
        http.idleTimeout = .seconds(120)
        do {
            return try BackendClient(configuration: BackendConfiguration(endpoint: endpoint, region: value(.backendRegion) ?? "us-east-1",
                                                                         accessKey: accessKey, secretKey: secretKey),
                                     http: HTTPClient(configuration: http))
        } catch {
            throw ConfigurationError(.backendEndpoint, error.description)
        }
    }
}

/// A command-line usage error (exit code 2).
struct UsageError: Error, Equatable, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Strict flag parsing for the subcommands: `--name value`, `--name=value` and boolean `--name`;
/// unknown flags, repeated flags, positional arguments and missing values are errors.
struct CommandFlags {
    private(set) var values: [String: String] = [:]
    private(set) var switches: Set<String> = []

    init(_ arguments: [String], valued: Set<String>, boolean: Set<String>) throws(UsageError) {
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            guard argument.hasPrefix("--") else { throw UsageError(message: "unexpected argument \(JSON.quote(argument))") }
            var name = argument
            var inline: String?
            if let eq = argument.firstIndex(of: "=") {
                name = String(argument[..<eq])
                inline = String(argument[argument.index(after: eq)...])
            }
            if boolean.contains(name) {
                guard inline == nil else { throw UsageError(message: "\(name) takes no value") }
                guard !switches.contains(name) else { throw UsageError(message: "\(name) given twice") }
                switches.insert(name)
            } else if valued.contains(name) {
                guard values[name] == nil else { throw UsageError(message: "\(name) given twice") }
                if let inline {
                    values[name] = inline
                } else {
                    guard i + 1 < arguments.count else { throw UsageError(message: "\(name) needs a value") }
                    i += 1
                    values[name] = arguments[i]
                }
            } else {
                throw UsageError(message: "unknown option \(JSON.quote(name))")
            }
            i += 1
        }
    }

    subscript(_ name: String) -> String? { values[name] }
    func has(_ name: String) -> Bool { switches.contains(name) }

    func required(_ name: String) throws(UsageError) -> String {
        guard let v = values[name], !v.isEmpty else { throw UsageError(message: "\(name) is required") }
        return v
    }
}

/// stderr output for the commands (stdout carries results).
enum Console {
    static func error(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
