import Foundation
import Synchronization

/// Everything needed to reach one API server as one identity.
struct KubeConfig: Sendable {
    /// Base URL, e.g. "https://10.0.0.1:443" (no trailing slash).
    var server: String
    var caFile: String?
    var caPEM: [UInt8]?
    var insecureSkipVerify = false
    var clientCertificatePEM: [UInt8]?
    var clientKeyPEM: [UInt8]?
    /// Static bearer token (kubeconfig `token`).
    var token: String?
    /// Bearer token re-read periodically and after a 401 (in-cluster projected token, kubeconfig `tokenFile`).
    var tokenFile: String?
    /// Default namespace (context namespace, or the service account's namespace in cluster; else "default").
    var namespace: String = "default"
    /// Where the configuration came from, for messages.
    var source: String = ""

    init(server: String, caFile: String? = nil, caPEM: [UInt8]? = nil, insecureSkipVerify: Bool = false,
         clientCertificatePEM: [UInt8]? = nil, clientKeyPEM: [UInt8]? = nil, token: String? = nil,
         tokenFile: String? = nil, namespace: String = "default", source: String = "") {
        var s = server
        while s.hasSuffix("/") { s.removeLast() }
        self.server = s
        self.caFile = caFile
        self.caPEM = caPEM
        self.insecureSkipVerify = insecureSkipVerify
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.token = token
        self.tokenFile = tokenFile
        self.namespace = namespace
        self.source = source
    }
}

/// A configuration problem; `description` names the file and what to fix.
struct KubeConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Code: String, Sendable {
        case noConfiguration, unreadableFile, invalidYAML, invalidStructure
        case contextNotFound, clusterNotFound, userNotFound, missingField, invalidValue
    }
    var code: Code
    var source: String
    var message: String

    var description: String { source.isEmpty ? message : "kubeconfig \(source): \(message)" }
}

/// Finds and reads the API server configuration the way controller-runtime does:
/// `--kubeconfig`, then `$KUBECONFIG`, then in-cluster service account, then `~/.kube/config`.
enum KubeConfigLoader {
    static let defaultServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    static func load(kubeconfigFlag: String?, context: String? = nil,
                     environment: [String: String] = ProcessInfo.processInfo.environment,
                     serviceAccountDirectory: String = defaultServiceAccountDirectory) throws(KubeConfigError) -> KubeConfig {
        if let flag = kubeconfigFlag, !flag.isEmpty {
            return try fromKubeconfig(paths: [flag], context: context)
        }
        if let env = environment["KUBECONFIG"], !env.isEmpty {
            let paths = env.split(separator: ":").map(String.init).filter { !$0.isEmpty }
            return try fromKubeconfig(paths: paths, context: context)
        }
        if environment["KUBERNETES_SERVICE_HOST"] != nil {
            return try inCluster(environment: environment, serviceAccountDirectory: serviceAccountDirectory)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let path = home + "/.kube/config"
        guard FileManager.default.fileExists(atPath: path) else {
            throw KubeConfigError(code: .noConfiguration, source: "",
                message: "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a cluster, or create \(path)")
        }
        return try fromKubeconfig(paths: [path], context: context)
    }

    /// Service-account configuration of a pod.
    static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                          serviceAccountDirectory: String = defaultServiceAccountDirectory) throws(KubeConfigError) -> KubeConfig {
        let src = "in-cluster"
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
              let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw KubeConfigError(code: .missingField, source: src,
                message: "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set when running in a cluster")
        }
        let tokenPath = serviceAccountDirectory + "/token"
        let caPath = serviceAccountDirectory + "/ca.crt"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubeConfigError(code: .unreadableFile, source: src,
                message: "service account token \(tokenPath) is not readable (is automountServiceAccountToken off?)")
        }
        guard FileManager.default.isReadableFile(atPath: caPath) else {
            throw KubeConfigError(code: .unreadableFile, source: src, message: "cluster CA \(caPath) is not readable")
        }
        var namespace = "default"
        if let ns = try? String(contentsOfFile: serviceAccountDirectory + "/namespace", encoding: .utf8) {
            let t = ns.trimmingCharacters(in: .whitespacesAndNewlines)
            if !t.isEmpty { namespace = t }
        }
        // IPv6 service hosts need brackets in a URL.
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return KubeConfig(server: "https://\(hostPart):\(port)", caFile: caPath, tokenFile: tokenPath,
                          namespace: namespace, source: src)
    }

    /// Reads kubeconfig files (merged: for clusters/users/contexts and current-context the first file defining
    /// a name wins, as kubectl does) and resolves `context` (nil = current-context).
    static func fromKubeconfig(paths: [String], context: String? = nil) throws(KubeConfigError) -> KubeConfig {
        var clusters: [String: (JSONValue, dir: String, file: String)] = [:]
        var users: [String: (JSONValue, dir: String, file: String)] = [:]
        var contexts: [String: (JSONValue, file: String)] = [:]
        var currentContext: String?
        var readAny = false
        let sourceName = paths.joined(separator: ":")
        for (index, path) in paths.enumerated() {
            // Like kubectl: later files of $KUBECONFIG may be missing; an explicit single file must exist.
            guard FileManager.default.fileExists(atPath: path) else {
                if paths.count > 1 && index > 0 { continue }
                throw KubeConfigError(code: .unreadableFile, source: path, message: "file does not exist")
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubeConfigError(code: .unreadableFile, source: path, message: "file is not readable")
            }
            readAny = true
            let doc: JSONValue
            do { doc = try YAMLToJSON.parse(bytes: Array(data)) } catch {
                throw KubeConfigError(code: .invalidYAML, source: path, message: "invalid YAML: \(error)")
            }
            if doc.isNull { continue }
            guard doc.object != nil else {
                throw KubeConfigError(code: .invalidStructure, source: path, message: "top level must be a mapping")
            }
            let dir = (path as NSString).deletingLastPathComponent
            func named(_ key: String, inner: String) throws(KubeConfigError) -> [(String, JSONValue)] {
                guard let v = doc[key], !v.isNull else { return [] }
                guard let list = v.array else {
                    throw KubeConfigError(code: .invalidStructure, source: path, message: "\"\(key)\" must be a list")
                }
                var out: [(String, JSONValue)] = []
                for (i, entry) in list.enumerated() {
                    guard let name = entry["name"]?.string, !name.isEmpty else {
                        throw KubeConfigError(code: .missingField, source: path, message: "\(key)[\(i)] has no \"name\"")
                    }
                    out.append((name, entry[inner] ?? .object([:])))
                }
                return out
            }
            for (n, v) in try named("clusters", inner: "cluster") where clusters[n] == nil { clusters[n] = (v, dir, path) }
            for (n, v) in try named("users", inner: "user") where users[n] == nil { users[n] = (v, dir, path) }
            for (n, v) in try named("contexts", inner: "context") where contexts[n] == nil { contexts[n] = (v, path) }
            if currentContext == nil, let c = doc["current-context"]?.string, !c.isEmpty { currentContext = c }
        }
        guard readAny else {
            throw KubeConfigError(code: .unreadableFile, source: sourceName, message: "none of the files exists")
        }
        guard let contextName = context ?? currentContext else {
            throw KubeConfigError(code: .missingField, source: sourceName,
                message: "no current-context set; pass a context or run `kubectl config use-context NAME`")
        }
        guard let ctx = contexts[contextName] else {
            throw KubeConfigError(code: .contextNotFound, source: sourceName,
                message: "context \"\(contextName)\" not found (have: \(contexts.keys.sorted().joined(separator: ", ")))")
        }
        guard let clusterName = ctx.0["cluster"]?.string, !clusterName.isEmpty else {
            throw KubeConfigError(code: .missingField, source: ctx.file, message: "context \"\(contextName)\" has no cluster")
        }
        guard let cluster = clusters[clusterName] else {
            throw KubeConfigError(code: .clusterNotFound, source: ctx.file,
                message: "cluster \"\(clusterName)\" of context \"\(contextName)\" not found")
        }
        let c = cluster.0
        let cfile = cluster.file
        guard let server = c["server"]?.string, !server.isEmpty else {
            throw KubeConfigError(code: .missingField, source: cfile, message: "cluster \"\(clusterName)\" has no server")
        }
        guard server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw KubeConfigError(code: .invalidValue, source: cfile,
                message: "cluster \"\(clusterName)\": server \"\(server)\" must start with https:// or http://")
        }
        var config = KubeConfig(server: server, source: sourceName)
        config.insecureSkipVerify = try bool(c["insecure-skip-tls-verify"], "insecure-skip-tls-verify", cfile)
        config.caPEM = try base64(c["certificate-authority-data"], "certificate-authority-data", cfile)
        if config.caPEM == nil, let caPath = c["certificate-authority"]?.string, !caPath.isEmpty {
            config.caFile = resolve(caPath, cluster.dir)
            guard FileManager.default.isReadableFile(atPath: config.caFile!) else {
                throw KubeConfigError(code: .unreadableFile, source: cfile,
                    message: "certificate-authority \(config.caFile!) of cluster \"\(clusterName)\" is not readable")
            }
        }
        if let ns = ctx.0["namespace"]?.string, !ns.isEmpty { config.namespace = ns }

        if let userName = ctx.0["user"]?.string, !userName.isEmpty {
            guard let user = users[userName] else {
                throw KubeConfigError(code: .userNotFound, source: ctx.file,
                    message: "user \"\(userName)\" of context \"\(contextName)\" not found")
            }
            let u = user.0
            let ufile = user.file
            config.clientCertificatePEM = try base64(u["client-certificate-data"], "client-certificate-data", ufile)
            if config.clientCertificatePEM == nil, let p = u["client-certificate"]?.string, !p.isEmpty {
                config.clientCertificatePEM = try readFile(resolve(p, user.dir), "client-certificate", ufile)
            }
            config.clientKeyPEM = try base64(u["client-key-data"], "client-key-data", ufile)
            if config.clientKeyPEM == nil, let p = u["client-key"]?.string, !p.isEmpty {
                config.clientKeyPEM = try readFile(resolve(p, user.dir), "client-key", ufile)
            }
            if (config.clientCertificatePEM == nil) != (config.clientKeyPEM == nil) {
                throw KubeConfigError(code: .missingField, source: ufile,
                    message: "user \"\(userName)\" needs both a client certificate and a client key")
            }
            if let t = u["token"]?.string, !t.isEmpty { config.token = t }
            if let tf = u["tokenFile"]?.string, !tf.isEmpty {
                config.tokenFile = resolve(tf, user.dir)
                guard FileManager.default.isReadableFile(atPath: config.tokenFile!) else {
                    throw KubeConfigError(code: .unreadableFile, source: ufile,
                        message: "tokenFile \(config.tokenFile!) of user \"\(userName)\" is not readable")
                }
            }
            if u["exec"] != nil || u["auth-provider"] != nil,
               config.token == nil, config.tokenFile == nil, config.clientCertificatePEM == nil {
                throw KubeConfigError(code: .invalidValue, source: ufile,
                    message: "user \"\(userName)\" uses exec/auth-provider credentials, which are not supported; use a token, tokenFile or client certificate")
            }
        }
        return config
    }

    private static func resolve(_ path: String, _ dir: String) -> String {
        if path.hasPrefix("/") { return path }
        if path.hasPrefix("~/") { return NSHomeDirectory() + path.dropFirst() }
        return dir.isEmpty ? path : dir + "/" + path
    }

    private static func readFile(_ path: String, _ field: String, _ source: String) throws(KubeConfigError) -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw KubeConfigError(code: .unreadableFile, source: source, message: "\(field) \(path) is not readable")
        }
        return Array(d)
    }

    private static func base64(_ v: JSONValue?, _ field: String, _ source: String) throws(KubeConfigError) -> [UInt8]? {
        guard let v, !v.isNull else { return nil }
        guard let s = v.string else {
            throw KubeConfigError(code: .invalidValue, source: source, message: "\(field) must be a base64 string")
        }
        if s.isEmpty { return nil }
        let cleaned = s.filter { !$0.isWhitespace }
        guard let d = Data(base64Encoded: cleaned) else {
            throw KubeConfigError(code: .invalidValue, source: source, message: "\(field) is not valid base64")
        }
        return Array(d)
    }

    private static func bool(_ v: JSONValue?, _ field: String, _ source: String) throws(KubeConfigError) -> Bool {
        guard let v, !v.isNull else { return false }
        if let b = v.bool { return b }
        // kubectl's YAML 1.1 parser also reads yes/no/on/off as booleans.
        switch v.string?.lowercased() {
        case "true", "yes", "on", "y": return true
        case "false", "no", "off", "n": return false
        default: break
        }
        throw KubeConfigError(code: .invalidValue, source: source, message: "\(field) must be true or false")
    }
}

/// The bearer token to send: static, or read from a file that rotates (re-read every `refreshInterval` and on
/// demand after a 401).
final class BearerTokenSource: Sendable {
    private struct State {
        var token: String?
        var readAt: ContinuousClock.Instant?
    }
    let file: String?
    private let staticToken: String?
    private let refreshInterval: Duration
    private let state = Mutex(State())

    init(staticToken: String?, file: String?, refreshInterval: Duration = .seconds(60)) {
        self.staticToken = staticToken
        self.file = file
        self.refreshInterval = refreshInterval
    }

    /// Token for the next request, nil for none. A file that cannot be read keeps the last good token.
    func current() -> String? {
        guard let file else { return staticToken }
        return state.withLock { s in
            let now = ContinuousClock.now
            if s.readAt == nil || now - s.readAt! >= refreshInterval {
                if let t = Self.read(file) { s.token = t }
                s.readAt = now
            }
            return s.token ?? staticToken
        }
    }

    /// Forces a re-read before the next request; true when a file exists to re-read (a retry can help).
    @discardableResult
    func invalidate() -> Bool {
        guard file != nil else { return false }
        state.withLock { $0.readAt = nil }
        return true
    }

    private static func read(_ path: String) -> String? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        let t = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }
}
