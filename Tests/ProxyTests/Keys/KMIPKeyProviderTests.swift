import Foundation
import Glibc
import Testing
@testable import Proxy
@testable import Shared

/// PyKMIP's server (Tests/Support/key_managers.py) with TLS client authentication and one active AES-256 key.
final class PyKMIPFixture {
    let port: Int
    let uid: String
    let ca: String, cert: String, key: String, strangerCert: String, strangerKey: String, log: String
    let workdir: URL
    private let process: Process
    private let stdin = Pipe()

    init() throws {
        workdir = FileManager.default.temporaryDirectory.appendingPathComponent("pykmip-\(UUID().uuidString)")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/key_managers.py").path
        process.arguments = ["python3", script, "kmip", workdir.path]
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = stdin
        try FileManager.default.createDirectory(at: workdir, withIntermediateDirectories: true)
        let errorLog = workdir.appendingPathComponent("fixture.stderr")
        FileManager.default.createFile(atPath: errorLog.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errorLog)
        try process.run()
        let line = out.fileHandleForReading.availableLine()
        guard let json = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any],
              let port = json["port"] as? Int, let uid = json["uid"] as? String else {
            process.terminate()
            let stderr = (try? String(contentsOf: errorLog, encoding: .utf8)) ?? ""
            throw StartFailed(output: String(decoding: line, as: UTF8.self) + "\n" + String(stderr.suffix(2000)))
        }
        self.port = port
        self.uid = uid
        ca = json["ca"] as? String ?? ""
        cert = json["cert"] as? String ?? ""
        key = json["key"] as? String ?? ""
        strangerCert = json["stranger_cert"] as? String ?? ""
        strangerKey = json["stranger_key"] as? String ?? ""
        log = json["log"] as? String ?? ""
    }

    deinit {
        try? stdin.fileHandleForWriting.close()  // the fixture stops the server when stdin closes
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: workdir)
    }

    struct StartFailed: Error { var output: String }

    func settings(keyID: String? = nil, cert: String? = nil, key: String? = nil) -> KMIPSettings {
        KMIPSettings(host: "127.0.0.1", port: port, keyID: keyID ?? uid, caFile: ca, certificateFile: cert ?? self.cert,
                     keyFile: key ?? self.key)
    }

    func operations(_ name: String) -> Int {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "Processing operation: \(name)").count - 1
    }
}

/// The kmip provider against a real PyKMIP server over mutual TLS.
@Suite(.serialized) struct KMIPKeyProviderTests {
    let secret = (0..<32).map { UInt8(255 - $0) }
    let context = KeyManagerContext.bucket("photos")

    @Test func encryptsAndDecryptsOverMutualTLSReusingConnections() throws {
        let kmip = try PyKMIPFixture()
        let provider = try KMIPKeyProvider(settings: kmip.settings(), timeout: .seconds(10))
        try provider.checkHealth(keyName: kmip.uid)
        let wrapped = try provider.wrap(secret, keyName: kmip.uid, context: context)
        #expect(wrapped.keyID == kmip.uid)
        #expect(wrapped.ciphertext.count == 12 + 32 + 16)
        for _ in 0..<5 {
            #expect(try provider.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context) == secret)
        }
        // The context is authenticated data: another bucket's context fails, as does a flipped bit.
        do {
            _ = try provider.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: .bucket("other"))
            Issue.record("opened under another context")
        } catch {
            #expect(error.code == .invalidCiphertext)
        }
        var tampered = wrapped.ciphertext
        tampered[20] ^= 0x40
        #expect(throws: KeyProviderError.self) { try provider.unwrap(tampered, keyID: wrapped.keyID, context: context) }
        #expect(kmip.operations("Decrypt") == 7)
    }

    @Test func aRevokedKeyIsDeniedAndReportedUnhealthy() throws {
        let kmip = try PyKMIPFixture()
        let provider = try KMIPKeyProvider(settings: kmip.settings(), timeout: .seconds(10))
        let wrapped = try provider.wrap(secret, keyName: kmip.uid, context: context)
        let revoke = Process()
        revoke.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        revoke.arguments = ["python3", "-c", """
            from kmip.pie.client import ProxyKmipClient
            from kmip.core import enums
            import time
            c = ProxyKmipClient(hostname="127.0.0.1", port=\(kmip.port), cert="\(kmip.cert)", key="\(kmip.key)", ca="\(kmip.ca)", config_file="/dev/null")
            with c:
                c.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, "\(kmip.uid)", revocation_message="test", compromise_occurrence_date=int(time.time()))
            """]
        try revoke.run()
        revoke.waitUntilExit()
        #expect(revoke.terminationStatus == 0)
        do {
            _ = try provider.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context)
            Issue.record("a revoked key decrypted")
        } catch {
            #expect(error.code == .denied)
        }
        do {
            try provider.checkHealth(keyName: kmip.uid)
            Issue.record("a revoked key is healthy")
        } catch {
            #expect(error.code == .denied)
            #expect(error.message.contains("Compromised"))
        }
    }

    @Test func anotherClientIdentityIsDeniedAndAStoppedServerIsUnavailable() throws {
        let kmip = try PyKMIPFixture()
        // PyKMIP owns objects per client certificate identity: a stranger may not use the gateway's key.
        let stranger = try KMIPKeyProvider(settings: kmip.settings(cert: kmip.strangerCert, key: kmip.strangerKey), timeout: .seconds(10))
        do {
            _ = try stranger.wrap(secret, keyName: kmip.uid, context: context)
            Issue.record("a stranger used the key")
        } catch {
            #expect(error.code == .denied)
        }
        let closed = try KMIPKeyProvider(settings: KMIPSettings(host: "127.0.0.1", port: try freePort(), keyID: "1", caFile: kmip.ca,
                                                                certificateFile: kmip.cert, keyFile: kmip.key), timeout: .seconds(2))
        do {
            _ = try closed.wrap(secret, keyName: "1", context: context)
            Issue.record("wrapped without a server")
        } catch {
            #expect(error.code == .unavailable)
        }
        #expect(throws: KeyProviderError.self) {
            try KMIPKeyProvider(settings: KMIPSettings(host: "127.0.0.1", port: 1, keyID: "1", caFile: kmip.ca,
                                                       certificateFile: kmip.cert, keyFile: kmip.strangerKey), timeout: .seconds(2))
        }
    }
}
