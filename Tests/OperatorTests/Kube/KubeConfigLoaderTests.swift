import Foundation
import Testing
@testable import Operator

@Suite struct KubeConfigLoaderTests {
    static let sample = """
        apiVersion: v1
        kind: Config
        current-context: dev
        clusters:
        - name: dev-cluster
          cluster:
            server: https://127.0.0.1:6443
            certificate-authority-data: Q0EtUEVN
        - name: file-cluster
          cluster:
            server: "https://10.0.0.1:443/"
            certificate-authority: ca.crt
            insecure-skip-tls-verify: false
        users:
        - name: dev-user
          user:
            token: abc.def
        - name: cert-user
          user:
            client-certificate-data: Q0VSVA==
            client-key-data: S0VZ
        - name: file-user
          user:
            client-certificate: certs/client.crt
            client-key: certs/client.key
            tokenFile: token
        contexts:
        - name: dev
          context: &ctx
            cluster: dev-cluster
            user: dev-user
            namespace: team-a
        - name: certs
          context:
            <<: *ctx
            user: cert-user
        - name: files
          context:
            cluster: file-cluster
            user: file-user
        - name: broken
          context:
            cluster: nowhere
            user: dev-user
        - name: nouser
          context:
            cluster: dev-cluster
            user: ghost
        """

    func withSample(_ body: (TempDir, String) throws -> Void) rethrows {
        let dir = TempDir()
        let path = dir.write("config", Self.sample)
        dir.write("ca.crt", "CA-FILE")
        dir.write("certs/client.crt", "CERT-FILE")
        dir.write("certs/client.key", "KEY-FILE")
        dir.write("token", "file-token\n")
        try body(dir, path)
    }

    @Test func currentContextWithInlineCAAndToken() throws {
        try withSample { _, path in
            let c = try KubeConfigLoader.fromKubeconfig(paths: [path])
            #expect(c.server == "https://127.0.0.1:6443")
            #expect(c.caPEM == Array("CA-PEM".utf8))
            #expect(c.caFile == nil)
            #expect(c.token == "abc.def")
            #expect(c.namespace == "team-a")
            #expect(!c.insecureSkipVerify)
        }
    }

    @Test func mergeKeyContextWithInlineClientCertificate() throws {
        try withSample { _, path in
            let c = try KubeConfigLoader.fromKubeconfig(paths: [path], context: "certs")
            #expect(c.clientCertificatePEM == Array("CERT".utf8))
            #expect(c.clientKeyPEM == Array("KEY".utf8))
            #expect(c.token == nil)
            #expect(c.namespace == "team-a")
        }
    }

    @Test func filesResolveRelativeToTheKubeconfig() throws {
        try withSample { dir, path in
            let c = try KubeConfigLoader.fromKubeconfig(paths: [path], context: "files")
            #expect(c.server == "https://10.0.0.1:443")
            #expect(c.caFile == dir.path + "/ca.crt")
            #expect(c.clientCertificatePEM == Array("CERT-FILE".utf8))
            #expect(c.clientKeyPEM == Array("KEY-FILE".utf8))
            #expect(c.tokenFile == dir.path + "/token")
            #expect(c.namespace == "default")
            #expect(BearerTokenSource(staticToken: c.token, file: c.tokenFile).current() == "file-token")
        }
    }

    @Test func missingReferencesGiveActionableErrors() throws {
        try withSample { _, path in
            #expect(throws: KubeConfigError.self) { try KubeConfigLoader.fromKubeconfig(paths: [path], context: "foo") }
            do throws(KubeConfigError) {
                _ = try KubeConfigLoader.fromKubeconfig(paths: [path], context: "foo")
            } catch {
                #expect(error.code == .contextNotFound)
                #expect(error.description.contains("kubeconfig \(path): context \"foo\" not found"))
            }
            do throws(KubeConfigError) {
                _ = try KubeConfigLoader.fromKubeconfig(paths: [path], context: "broken")
                Issue.record("expected clusterNotFound")
            } catch {
                #expect(error.code == .clusterNotFound)
                #expect(error.description.contains("\"nowhere\""))
            }
            do throws(KubeConfigError) {
                _ = try KubeConfigLoader.fromKubeconfig(paths: [path], context: "nouser")
                Issue.record("expected userNotFound")
            } catch {
                #expect(error.code == .userNotFound)
            }
        }
    }

    @Test(arguments: [
        ("clusters: [{name: c, cluster: {}}]\nusers: []\ncontexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", KubeConfigError.Code.missingField),
        ("clusters: [{name: c, cluster: {server: ftp://x}}]\ncontexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", .invalidValue),
        ("clusters: [{name: c, cluster: {server: 'https://x', certificate-authority-data: '!!!'}}]\ncontexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", .invalidValue),
        ("clusters: {}\n", .invalidStructure),
        ("clusters: [{cluster: {server: 'https://x'}}]\n", .missingField),
        ("contexts: [{name: x, context: {cluster: c}}]\n", .missingField),
        ("a: [\n", .invalidYAML),
        ("- 1\n", .invalidStructure),
        ("clusters: [{name: c, cluster: {server: 'https://x', certificate-authority: /nonexistent/ca}}]\ncontexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", .unreadableFile),
        ("clusters: [{name: c, cluster: {server: 'https://x'}}]\nusers: [{name: u, user: {client-certificate-data: Q0VSVA==}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n", .missingField),
    ])
    func malformedConfigsAreTypedErrors(_ text: String, _ code: KubeConfigError.Code) {
        let dir = TempDir()
        let path = dir.write("config", text)
        do throws(KubeConfigError) {
            _ = try KubeConfigLoader.fromKubeconfig(paths: [path])
            Issue.record("expected \(code)")
        } catch {
            #expect(error.code == code, "\(error)")
        }
    }

    @Test func insecureSkipVerifyAcceptsYAML11Booleans() throws {
        let dir = TempDir()
        for (text, want) in [("yes", true), ("true", true), ("\"false\"", false), ("off", false)] {
            let p = dir.write("c", "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://h:1', insecure-skip-tls-verify: \(text)}}]\n")
            #expect(try KubeConfigLoader.fromKubeconfig(paths: [p]).insecureSkipVerify == want, "\(text)")
        }
        let bad = dir.write("bad", "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://h:1', insecure-skip-tls-verify: maybe}}]\n")
        #expect(throws: KubeConfigError.self) { try KubeConfigLoader.fromKubeconfig(paths: [bad]) }
    }

    @Test func kubeconfigListMergesFirstWins() throws {
        let dir = TempDir()
        let a = dir.write("a", "current-context: one\ncontexts: [{name: one, context: {cluster: c1, user: u}}]\nusers: [{name: u, user: {token: A}}]\n")
        let b = dir.write("b", "current-context: two\nclusters: [{name: c1, cluster: {server: 'https://b:1'}}]\nusers: [{name: u, user: {token: B}}]\n")
        let env = ["KUBECONFIG": "\(a):\(dir.path)/missing:\(b)", "HOME": dir.path]
        let c = try KubeConfigLoader.load(kubeconfigFlag: nil, environment: env)
        #expect(c.server == "https://b:1")
        #expect(c.token == "A")
        // The flag wins over the environment.
        let flagged = dir.write("flag", "current-context: f\ncontexts: [{name: f, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://flag:2'}}]\n")
        #expect(try KubeConfigLoader.load(kubeconfigFlag: flagged, environment: env).server == "https://flag:2")
        // ~/.kube/config last.
        dir.write(".kube/config", "current-context: h\ncontexts: [{name: h, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://home:3'}}]\n")
        #expect(try KubeConfigLoader.load(kubeconfigFlag: nil, environment: ["HOME": dir.path]).server == "https://home:3")
        do throws(KubeConfigError) {
            _ = try KubeConfigLoader.load(kubeconfigFlag: nil, environment: ["HOME": dir.path + "/nothing"])
            Issue.record("expected noConfiguration")
        } catch {
            #expect(error.code == .noConfiguration)
        }
    }

    @Test func inClusterReadsTheServiceAccount() throws {
        let dir = TempDir()
        dir.write("sa/token", "tok-1\n")
        dir.write("sa/ca.crt", "CA")
        dir.write("sa/namespace", "operators")
        let env = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
        let c = try KubeConfigLoader.load(kubeconfigFlag: nil, environment: env, serviceAccountDirectory: dir.path + "/sa")
        #expect(c.server == "https://10.96.0.1:443")
        #expect(c.caFile == dir.path + "/sa/ca.crt")
        #expect(c.tokenFile == dir.path + "/sa/token")
        #expect(c.namespace == "operators")
        let v6 = try KubeConfigLoader.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"],
                                                serviceAccountDirectory: dir.path + "/sa")
        #expect(v6.server == "https://[fd00::1]:443")
        do throws(KubeConfigError) {
            _ = try KubeConfigLoader.inCluster(environment: env, serviceAccountDirectory: dir.path + "/none")
            Issue.record("expected unreadableFile")
        } catch {
            #expect(error.code == .unreadableFile)
        }
    }

    @Test func tokenFileIsReReadAfterInvalidate() {
        let dir = TempDir()
        let p = dir.write("token", "one")
        let source = BearerTokenSource(staticToken: nil, file: p, refreshInterval: .seconds(3600))
        #expect(source.current() == "one")
        dir.write("token", "two")
        #expect(source.current() == "one")   // cached within the interval
        #expect(source.invalidate())
        #expect(source.current() == "two")
        #expect(!BearerTokenSource(staticToken: "s", file: nil).invalidate())
    }
}
