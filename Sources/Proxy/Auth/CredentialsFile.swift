import Foundation
import Shared

/// The `GATEWAY_CREDENTIALS_FILE` format (docs/authentication.md): a JSON document, usually mounted from a
/// Kubernetes Secret, listing the client credentials the gateway accepts.
///
///     {
///       "credentials": [
///         { "accessKey": "TEAMA", "secretKey": "…", "buckets": ["team-a"], "readOnly": false,
///           "backend": { "accessKey": "…", "secretKey": "…" } }
///       ]
///     }
///
/// `buckets` (default: every bucket), `readOnly` (default false) and `backend` (default: the gateway's
/// `BACKEND_ACCESS_KEY`/`BACKEND_SECRET_KEY`) are optional. Unknown fields are errors, so that a typo such as
/// `"readonly"` cannot silently grant write access. Error messages name the entry and field, never a secret.
enum CredentialsFile {
    struct Invalid: Error, Equatable, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static let maxFileSize = 1 << 20
    static let maxCredentials = 10_000
    static let minSecretLength = 8
    static let maxKeyLength = 128

    private static let credentialFields: Set<String> = ["accessKey", "secretKey", "buckets", "readOnly", "backend"]
    private static let backendFields: Set<String> = ["accessKey", "secretKey"]

    /// Parses and validates a whole file.
    static func parse(_ data: [UInt8]) throws(Invalid) -> [Credential] {
        guard data.count <= maxFileSize else { throw Invalid(message: "is larger than \(maxFileSize) bytes") }
        let root: JSONNode
        do {
            root = try JSONDecoder().decode(JSONNode.self, from: Data(data))
        } catch {
            // The decoder's own message can quote the document (a secret); only a line number is passed on.
            throw Invalid(message: "is not valid JSON" + (lineNumber(in: error).map { " (near line \($0))" } ?? ""))
        }
        guard case .object(let object) = root else { throw Invalid(message: "must be a JSON object with a \"credentials\" list") }
        if let unknown = object.keys.sorted().first(where: { $0 != "credentials" }) {
            throw Invalid(message: "has an unknown top-level field \"\(clip(unknown))\" (expected only \"credentials\")")
        }
        guard case .array(let list)? = object["credentials"] else { throw Invalid(message: "must have a \"credentials\" list") }
        guard !list.isEmpty else { throw Invalid(message: "lists no credentials") }
        guard list.count <= maxCredentials else { throw Invalid(message: "lists more than \(maxCredentials) credentials") }
        var out: [Credential] = []
        var seen = Set<String>()
        for (index, item) in list.enumerated() {
            let credential = try parseCredential(item, entry: index + 1)
            guard seen.insert(credential.accessKey).inserted else {
                throw Invalid(message: "credential \(index + 1): access key \(credential.accessKey) is listed twice")
            }
            out.append(credential)
        }
        return out
    }

    private static func parseCredential(_ item: JSONNode, entry: Int) throws(Invalid) -> Credential {
        let at = "credential \(entry)"
        guard case .object(let fields) = item else { throw Invalid(message: "\(at): must be a JSON object") }
        if let unknown = fields.keys.sorted().first(where: { !credentialFields.contains($0) }) {
            throw Invalid(message: "\(at): unknown field \"\(clip(unknown))\" (known: accessKey, secretKey, buckets, readOnly, backend)")
        }
        let accessKey = try accessKeyField(fields, "accessKey", at: at)
        let secretKey = try secretField(fields, "secretKey", at: "\(at) (\(accessKey))")
        var credential = Credential(accessKey: accessKey, secretKey: secretKey)
        if let value = fields["buckets"] {
            guard case .array(let names) = value, !names.isEmpty else {
                throw Invalid(message: "\(at) (\(accessKey)): buckets must be a non-empty list of bucket names (omit it to allow every bucket)")
            }
            var buckets = Set<String>()
            for name in names {
                guard case .string(let bucket) = name, S3RequestAddress.isValidBucketName(bucket) else {
                    let shown = if case .string(let text) = name { "\"\(clip(text))\"" } else { "(not a string)" }
                    throw Invalid(message: "\(at) (\(accessKey)): buckets lists an invalid bucket name \(shown)")
                }
                buckets.insert(bucket)
            }
            credential.buckets = buckets
        }
        if let value = fields["readOnly"] {
            guard case .bool(let flag) = value else { throw Invalid(message: "\(at) (\(accessKey)): readOnly must be true or false") }
            credential.readOnly = flag
        }
        if let value = fields["backend"] {
            guard case .object(let backend) = value else {
                throw Invalid(message: "\(at) (\(accessKey)): backend must be an object with accessKey and secretKey")
            }
            if let unknown = backend.keys.sorted().first(where: { !backendFields.contains($0) }) {
                throw Invalid(message: "\(at) (\(accessKey)): backend has an unknown field \"\(clip(unknown))\"")
            }
            credential.backend = BackendCredential(
                accessKey: try accessKeyField(backend, "accessKey", at: "\(at) (\(accessKey)) backend"),
                secretKey: try secretField(backend, "secretKey", at: "\(at) (\(accessKey)) backend", minLength: 1))
        }
        return credential
    }

    private static func accessKeyField(_ fields: [String: JSONNode], _ name: String, at: String) throws(Invalid) -> String {
        guard case .string(let value)? = fields[name] else { throw Invalid(message: "\(at): \(name) is required (a string)") }
        guard (3...maxKeyLength).contains(value.utf8.count), value.utf8.allSatisfy(isAccessKeyChar) else {
            throw Invalid(message: "\(at): \(name) must be 3 to \(maxKeyLength) characters of A-Z a-z 0-9 _ - .")
        }
        return value
    }

    private static func secretField(_ fields: [String: JSONNode], _ name: String, at: String,
                                    minLength: Int = minSecretLength) throws(Invalid) -> String {
        guard case .string(let value)? = fields[name] else { throw Invalid(message: "\(at): \(name) is required (a string)") }
        guard value.utf8.count >= minLength, value.utf8.count <= 1024 else {
            throw Invalid(message: "\(at): \(name) must be \(minLength) to 1024 characters long")
        }
        guard value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw Invalid(message: "\(at): \(name) must be printable ASCII without spaces")
        }
        return value
    }

    private static func isAccessKeyChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }

    /// The first "line N" of the decoder's error text, if any (digits only, nothing of the document).
    private static func lineNumber(in error: any Error) -> Int? {
        let text = "\(error)"
        guard let range = text.range(of: "line ") else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
        return Int(digits)
    }

    /// Field names and bucket names are echoed short and printable only.
    private static func clip(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f }.prefix(64).map(Character.init))
    }
}

/// A parsed JSON document, decoded strictly: booleans are not numbers and numbers are not strings.
enum JSONNode: Decodable, Equatable {
    case object([String: JSONNode])
    case array([JSONNode])
    case string(String)
    case bool(Bool)
    case number(Double)
    case null

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode([JSONNode].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONNode].self)) }
    }
}
