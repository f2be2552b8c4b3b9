import Foundation
import Testing
@testable import Operator

/// `render` on the samples matches the golden files (regenerate with UPDATE_GOLDEN=1 after a deliberate change;
/// Tests/Integration/test_operator_manifests.py validates them against the Kubernetes 1.25 and 1.30 schemas).
@Suite struct RenderTests {
    static let root = APITypesTests.repoRoot

    static func read(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { throw RenderCommand.Failure(message: "no file \(path)") }
        return Array(d)
    }

    @Test(arguments: ["minimal", "full"])
    func samplesRenderToTheGoldenFiles(_ name: String) throws {
        let sample = Self.root.appendingPathComponent("config/samples/\(name).yaml").path
        let golden = Self.root.appendingPathComponent("Tests/OperatorTests/Golden/\(name).yaml").path
        let rendered = try RenderCommand.render(["-f", sample], environment: [:], readFile: Self.read)
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            try rendered.write(toFile: golden, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOfFile: golden, encoding: .utf8)
        #expect(rendered == expected, "\(name): render output differs from \(golden) (UPDATE_GOLDEN=1 regenerates it)")
        // Rendering twice gives the same bytes.
        #expect(try RenderCommand.render(["-f", sample], environment: [:], readFile: Self.read) == rendered)
        let docs = try YAMLToJSON.parseDocuments(Array(rendered.utf8))
        #expect(docs.allSatisfy { $0["kind"]?.string != "Secret" && $0["kind"]?.string != "EncryptionGateway" })
    }

    @Test func flagsAndErrors() throws {
        let dir = TempDir()
        let file = dir.write("gw.yaml", """
            apiVersion: s3gateway.dev/v1alpha1
            kind: EncryptionGateway
            metadata: {name: gw, namespace: prod}
            spec:
              backend: {endpoint: "https://s3.example.com", credentialsSecretRef: {name: b}}
              encryption: {passwordSecretRef: {name: e, key: p}}
              clientCredentials: {secretRef: {name: c}}
            """)
        let out = try RenderCommand.render(["-f", file, "--secret-hash", "abc", "--gateway-image=me/gw:2"],
                                           environment: [:], readFile: Self.read)
        #expect(out.contains("s3gateway.dev/secret-hash: abc") && out.contains("image: me/gw:2") && out.contains("namespace: prod"))
        #expect(!out.contains("ownerReferences"))  // never applied: no uid to own children with
        let fromEnv = try RenderCommand.render(["-f", file], environment: ["GATEWAY_IMAGE": "env/img:3"], readFile: Self.read)
        #expect(fromEnv.contains("image: env/img:3"))

        let bad = dir.write("bad.yaml", """
            apiVersion: s3gateway.dev/v1alpha1
            kind: EncryptionGateway
            metadata: {name: gw}
            spec:
              replicas: -2
              backend: {endpoint: "ftp://x", credentialsSecretRef: {name: b}}
              encryption: {passwordSecretRef: {name: e, key: p}}
              clientCredentials: {secretRef: {name: c}}
            """)
        #expect {
            try RenderCommand.render(["-f", bad], environment: [:], readFile: Self.read)
        } throws: { error in
            let m = (error as? RenderCommand.Failure)?.message ?? ""
            return m.contains("spec.replicas: must be at least 0") && m.contains("spec.backend.endpoint")
                && (error as? RenderCommand.Failure)?.code == 2
        }
        let none = dir.write("none.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
        #expect(throws: RenderCommand.Failure.self) { try RenderCommand.render(["-f", none], environment: [:], readFile: Self.read) }
        #expect(throws: RenderCommand.Failure.self) { try RenderCommand.render([], environment: [:], readFile: Self.read) }
        #expect(throws: RenderCommand.Failure.self) { try RenderCommand.render(["-f", file, "--bogus"], environment: [:], readFile: Self.read) }
    }
}
