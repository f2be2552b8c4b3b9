import Foundation
import Glibc
@testable import Proxy
import Shared

/// The Vault Transit double (Tests/Support/vault_transit_double.py) on a free loopback port, stopped in `deinit`.
final class VaultTransitDouble {
    let port: Int
    let rootToken = "root-" + UUID().uuidString
    private let process: Process

    var address: String { "http://127.0.0.1:\(port)" }

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/vault_transit_double.py").path
    }

    init(arguments: [String] = []) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script, "--root-token", rootToken] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let line = String(decoding: out.fileHandleForReading.availableLine(), as: UTF8.self)
        guard line.hasPrefix("READY "), let port = Int(line.dropFirst(6).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw StartFailed(output: line)
        }
        self.port = port
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    struct StartFailed: Error { var output: String }

    /// A request with the root token; returns (status, JSON object).
    @discardableResult
    func admin(_ method: String, _ path: String, _ body: [String: Any]? = nil) throws -> (Int, [String: Any]) {
        let request = HTTPClientRequest(method: method, url: address + path, headers: [(name: "X-Vault-Token", value: rootToken)],
                                        body: body.map { .bytes(KeyManagerHTTP.jsonBody($0)) } ?? .none)
        let response = try HTTPClient().execute(request)
        let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return (response.status, json)
    }

    func stats() throws -> [String: Int] {
        (try admin("GET", "/_double/stats").1 as? [String: Int]) ?? [:]
    }

    /// A renewable token with the `transit` policy.
    func transitToken(ttl: Int = 3600) throws -> String {
        let (_, json) = try admin("POST", "/v1/auth/token/create", ["ttl": ttl, "policies": ["transit"]])
        return ((json["auth"] as? [String: Any])?["client_token"] as? String) ?? ""
    }
}

extension FileHandle {
    /// Reads up to the first newline (blocking).
    func availableLine() -> [UInt8] {
        var line: [UInt8] = []
        while let byte = try? read(upToCount: 1), let b = byte.first, b != UInt8(ascii: "\n") { line.append(b) }
        return line
    }
}

/// moto's server as AWS KMS, with IAM authentication switched on after set-up, so signatures are
/// really checked and access can be revoked: a user `gateway` (policy `kms:*`) whose credentials the
/// tests use, and an `admin` user that can change IAM.
final class MotoKMS {
    let moto: MotoServer
    let keyID: String
    let keyARN: String
    let gateway: (accessKey: String, secretKey: String)
    let admin: (accessKey: String, secretKey: String)
    private let http = HTTPClient()

    var endpoint: String { moto.endpoint }

    init() throws {
        let moto = try MotoServer()
        self.moto = moto
        let http = HTTPClient()
        func iam(_ params: [String: String]) throws -> String {
            var form = params
            form["Version"] = "2010-05-08"
            let body = form.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.formEncode($0.value))" }.joined(separator: "&")
            let response = try http.execute(HTTPClientRequest(method: "POST", url: moto.endpoint + "/", headers: [
                (name: "Content-Type", value: "application/x-www-form-urlencoded"),
                (name: "Authorization", value: "AWS4-HMAC-SHA256 Credential=setup/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"),
            ], body: .bytes(Array(body.utf8))))
            guard response.status == 200 else { throw SetupFailed(step: params["Action"] ?? "?", body: String(decoding: response.body, as: UTF8.self)) }
            return String(decoding: response.body, as: UTF8.self)
        }
        func element(_ name: String, in xml: String) -> String {
            guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) else { return "" }
            return String(xml[open.upperBound..<close.lowerBound])
        }
        var users: [String: (String, String)] = [:]
        for (user, action) in [("gateway", "kms:*"), ("admin", "*")] {
            _ = try iam(["Action": "CreateUser", "UserName": user])
            let key = try iam(["Action": "CreateAccessKey", "UserName": user])
            users[user] = (element("AccessKeyId", in: key), element("SecretAccessKey", in: key))
            let policy = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"\(action)\",\"Resource\":\"*\"}]}"
            _ = try iam(["Action": "PutUserPolicy", "UserName": user, "PolicyName": "access", "PolicyDocument": policy])
        }
        gateway = users["gateway"]!
        admin = users["admin"]!
        let created = try http.execute(HTTPClientRequest(method: "POST", url: moto.endpoint + "/", headers: [
            (name: "Content-Type", value: "application/x-amz-json-1.1"), (name: "X-Amz-Target", value: "TrentService.CreateKey"),
            (name: "Authorization", value: "AWS4-HMAC-SHA256 Credential=setup/20240101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0"),
        ], body: .bytes(Array("{}".utf8))))
        let metadata = ((try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["KeyMetadata"] as? [String: Any]) ?? [:]
        keyID = metadata["KeyId"] as? String ?? ""
        keyARN = metadata["Arn"] as? String ?? ""
        let auth = try http.execute(HTTPClientRequest(method: "POST", url: moto.endpoint + "/moto-api/reset-auth", body: .bytes(Array("0".utf8))))
        guard auth.status == 200, !keyID.isEmpty else { throw SetupFailed(step: "CreateKey/reset-auth", body: String(decoding: auth.body, as: UTF8.self)) }
    }

    struct SetupFailed: Error { var step: String; var body: String }

    func settings(secretKey: String? = nil, keyID: String? = nil) -> AWSKMSSettings {
        AWSKMSSettings(keyID: keyID ?? self.keyID, region: "us-east-1", endpoint: endpoint, accessKeyID: gateway.accessKey,
                       secretAccessKey: secretKey ?? gateway.secretKey)
    }

    /// A KMS call signed as the admin user (aliases, key state).
    @discardableResult
    func adminKMS(_ action: String, _ body: [String: Any]) throws -> [String: Any] {
        let client = try AWSKMSKeyProvider(settings: AWSKMSSettings(keyID: keyID, region: "us-east-1", endpoint: endpoint,
                                                                    accessKeyID: admin.accessKey, secretAccessKey: admin.secretKey))
        return try client.call(action, body)
    }

    /// Removes the gateway user's permissions (a revocation in IAM), signed as the admin.
    func revokeGatewayAccess() throws {
        let body = "Action=DeleteUserPolicy&PolicyName=access&UserName=gateway&Version=2010-05-08"
        let payload = Array(body.utf8)
        let host = String(endpoint.dropFirst("http://".count))
        let signer = SigV4Signer(accessKey: admin.accessKey, secretKey: admin.secretKey, region: "us-east-1", service: "iam")
        let headers = signer.sign(method: "POST", canonicalURI: "/", canonicalQuery: "", host: host,
                                  headers: [(name: "content-type", value: "application/x-www-form-urlencoded")],
                                  payloadHash: Encoding.hex(Digest.hash(.sha256, payload)), now: Int64(Date().timeIntervalSince1970))
        let response = try http.execute(HTTPClientRequest(method: "POST", url: endpoint + "/", headers: headers, body: .bytes(payload)))
        guard response.status == 200 else { throw SetupFailed(step: "DeleteUserPolicy", body: String(decoding: response.body, as: UTF8.self)) }
    }

    static func formEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}
