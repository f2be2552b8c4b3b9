import Foundation
import Glibc
import Synchronization
import Testing
@testable import Shared

/// TLS wrappers and the HTTPS listener, against a CA made by `openssl` at test time.
@Suite(.serialized) struct TLSListenerTests {
    let ca: TestCertificateAuthority

    init() throws { ca = try TestCertificateAuthority() }

    func clientContext(certificate: TestCertificateAuthority.Issued? = nil) throws -> TLSContext {
        var config = TLSClientConfiguration()
        config.caFile = ca.caCertificate
        config.certificateFile = certificate?.certificate
        config.keyFile = certificate?.key
        return try TLSContext.client(config)
    }

    func startHTTPS(_ tls: ReloadingTLSContext, observer: ServerTestObserver? = nil) throws -> HTTPServer {
        try startTestServer(observer: observer) { $0.tls = tls }
    }

    /// One request over a fresh TLS connection made with the gateway's own client wrapper.
    func fetch(_ server: HTTPServer, path: String = "/hello", context: TLSContext? = nil)
        throws -> (response: String, peer: TLSCertificateInfo?, version: String)
    {
        let connection = try TLSClientConnection(host: "127.0.0.1", port: server.boundPort,
                                                 context: context ?? clientContext(), timeout: .seconds(10))
        defer { connection.close() }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        try request.withUnsafeBytes { try connection.writeAll($0, timeout: .seconds(10)) }
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try connection.read(into: $0, timeout: .seconds(10)) }
            if n == 0 { break }
            out += buffer[0..<n]
        }
        return (String(decoding: out, as: UTF8.self), connection.stream.peerCertificate, connection.stream.protocolVersion)
    }

    @Test func contextRefusesAKeyOfAnotherCertificate() throws {
        let a = try ca.issue(), b = try ca.issue()
        #expect(throws: TLSError.self) { try TLSContext.server(certificateFile: a.certificate, keyFile: b.key) }
        do {
            _ = try TLSContext.server(certificateFile: a.certificate, keyFile: b.key)
        } catch {
            #expect(error.code == .keyMismatch)
        }
        do {
            _ = try TLSContext.server(certificateFile: a.key, keyFile: a.key)
        } catch {
            #expect(error.code == .invalidCertificate)
            #expect(error.message.contains(a.key))
        }
        let good = try TLSContext.server(certificateFile: a.certificate, keyFile: a.key)
        #expect(good.certificate?.serial == a.serial)
        #expect(good.certificate?.subject == "/CN=localhost")
        #expect((good.certificate?.notAfter ?? 0) > Int64(time(nil)))
    }

    @Test func servesHTTPSWithTheConfiguredCertificate() throws {
        let leaf = try ca.issue()
        let tls = try ReloadingTLSContext(certificateFile: leaf.certificate, keyFile: leaf.key)
        let server = try startHTTPS(tls)
        defer { server.shutdown(grace: .seconds(2)) }
        let (response, peer, version) = try fetch(server)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.hasSuffix("\r\n\r\nhello"))
        #expect(peer?.serial == leaf.serial)
        #expect(version == "TLSv1.3")
    }

    @Test func httpsKeepAliveAndBodiesThroughLibcurl() throws {
        let leaf = try ca.issue()
        let tls = try ReloadingTLSContext(certificateFile: leaf.certificate, keyFile: leaf.key)
        let server = try startHTTPS(tls)
        defer { server.shutdown(grace: .seconds(2)) }
        var config = HTTPClientConfiguration()
        config.caFile = ca.caCertificate
        let client = HTTPClient(configuration: config)
        // 3 MiB up and its digest back, twice on one kept-alive connection, plus a chunked response.
        let body = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var digest = Digest(.sha256)
        body.withUnsafeBytes { digest.update($0) }
        let expected = "\(body.count) \(Encoding.hex(digest.finalize()))"
        for _ in 0..<2 {
            let r = try client.execute(HTTPClientRequest(method: "PUT", url: "https://127.0.0.1:\(server.boundPort)/sum",
                                                         body: .bytes(body)))
            #expect(r.status == 200)
            #expect(String(decoding: r.body, as: UTF8.self) == expected)
        }
        let streamed = try client.execute(HTTPClientRequest(method: "GET", url: "https://localhost:\(server.boundPort)/stream"))
        #expect(String(decoding: streamed.body, as: UTF8.self) == "one,two,three")
    }

    @Test func refusesOldProtocolsAndWeakSuitesButTakesTLS12() throws {
        let leaf = try ca.issue()
        let tls = try ReloadingTLSContext(certificateFile: leaf.certificate, keyFile: leaf.key)
        let server = try startHTTPS(tls)
        defer { server.shutdown(grace: .seconds(2)) }
        func handshake(_ extra: [String]) throws -> (Int32, String) {
            try TestCertificateAuthority.openssl(["s_client", "-connect", "127.0.0.1:\(server.boundPort)",
                                                  "-CAfile", ca.caCertificate, "-verify_return_error"] + extra,
                                                 stdin: "")
        }
        // TLS 1.1 (the client lowers its own security level so that it offers it at all).
        let old = try handshake(["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        #expect(old.0 != 0)
        // TLS 1.2 with RSA key exchange (no forward secrecy) and with CBC: not on the list.
        #expect(try handshake(["-tls1_2", "-cipher", "AES128-GCM-SHA256"]).0 != 0)
        #expect(try handshake(["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256"]).0 != 0)
        let modern = try handshake(["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"])
        #expect(modern.0 == 0, "\(modern.1)")
        #expect(modern.1.contains("ECDHE-RSA-AES128-GCM-SHA256"))
    }

    @Test func plainHTTPOnTheTLSPortIsRejectedAndTheServerGoesOn() throws {
        let leaf = try ca.issue()
        let tls = try ReloadingTLSContext(certificateFile: leaf.certificate, keyFile: leaf.key)
        let observer = ServerTestObserver()
        let server = try startHTTPS(tls, observer: observer)
        defer { server.shutdown(grace: .seconds(2)) }
        let raw = try connectRaw(server)
        raw.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = raw.readToEnd()
        #expect(!String(decoding: answer, as: UTF8.self).contains("hello"))
        let deadline = ContinuousClock.now + .seconds(10)
        while observer.rejections.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline { usleep(10_000) }
        let rejections = observer.rejections.withLock { $0 }
        #expect(rejections.count == 1)
        if case .tlsHandshake(let message)? = rejections.first {
            #expect(!message.isEmpty)
        } else {
            Issue.record("expected a TLS handshake rejection, got \(rejections)")
        }
        #expect(try fetch(server).response.hasSuffix("hello"))
    }

    @Test func certificateAndKeyAreReloadedWhenTheFilesChange() throws {
        let first = try ca.issue(), second = try ca.issue(commonName: "rotated")
        let live = ca.path("live")
        try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
        let certPath = live + "/tls.crt", keyPath = live + "/tls.key"
        // Like a Secret volume: the files are replaced by rename, never rewritten in place.
        func install(_ issued: TestCertificateAuthority.Issued) throws {
            for (from, to) in [(issued.certificate, certPath), (issued.key, keyPath)] {
                try? FileManager.default.removeItem(atPath: to + ".tmp")
                try FileManager.default.copyItem(atPath: from, toPath: to + ".tmp")
                #expect(rename(to + ".tmp", to) == 0)
            }
        }
        try install(first)
        let events = Mutex<[TLSReloadEvent]>([])
        let tls = try ReloadingTLSContext(certificateFile: certPath, keyFile: keyPath, checkInterval: .milliseconds(50)) { e in
            events.withLock { $0.append(e) }
        }
        let server = try startHTTPS(tls)
        defer { server.shutdown(grace: .seconds(2)) }
        #expect(try fetch(server).peer?.serial == first.serial)

        // A long-lived connection opened before the rotation keeps working.
        let before = try TLSClientConnection(host: "127.0.0.1", port: server.boundPort, context: clientContext())
        defer { before.close() }

        try install(second)
        var served: String?
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            served = try fetch(server).peer?.serial
            if served == second.serial { break }
            usleep(20_000)
        }
        #expect(served == second.serial)
        #expect(events.withLock { $0.count } == 1)
        if case .reloaded(let info)? = events.withLock({ $0.last }) { #expect(info.subject == "/CN=rotated") }

        let request = Array("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        try request.withUnsafeBytes { try before.writeAll($0, timeout: .seconds(5)) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = try buffer.withUnsafeMutableBytes { try before.read(into: $0, timeout: .seconds(5)) }
        #expect(String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        #expect(before.stream.peerCertificate?.serial == first.serial)

        // A broken replacement keeps the last good certificate and is reported as a failure.
        try "not a certificate\n".write(toFile: certPath + ".tmp", atomically: false, encoding: .utf8)
        #expect(rename(certPath + ".tmp", certPath) == 0)
        let failDeadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < failDeadline {
            _ = try fetch(server)
            if events.withLock({ $0.count }) >= 2 { break }
            usleep(20_000)
        }
        if case .failed(let error)? = events.withLock({ $0.last }) {
            #expect(error.code == .invalidCertificate)
        } else {
            Issue.record("expected a failed reload event, got \(events.withLock { $0 })")
        }
        #expect(try fetch(server).peer?.serial == second.serial)
        #expect(events.withLock { $0.count } == 2)  // reported once per change, not once per handshake
    }

    @Test func clientPresentsItsCertificateToAServerThatDemandsOne() throws {
        let serverLeaf = try ca.issue(), clientLeaf = try ca.issue(commonName: "kmip-client", clientAuth: true)
        var port = 0
        var process: TestCertificateAuthority.Background?
        // openssl s_server requiring a client certificate signed by the CA; it answers -www with a status page.
        for _ in 0..<5 {
            port = Int.random(in: 20000...60000)
            let p = try TestCertificateAuthority.Background(
                ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", serverLeaf.certificate, "-key", serverLeaf.key,
                 "-CAfile", ca.caCertificate, "-Verify", "1", "-verify_return_error", "-www", "-quiet"])
            var listening = false
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline && p.isRunning {
                if RawHTTPClient(port: port) != nil { listening = true; break }
                usleep(20_000)
            }
            if listening { process = p; break }
            p.stop()
        }
        let server = try #require(process)
        defer { server.stop() }

        let withCert = try TLSClientConnection(host: "127.0.0.1", port: port, context: clientContext(certificate: clientLeaf))
        let get = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        try get.withUnsafeBytes { try withCert.writeAll($0, timeout: .seconds(5)) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = try buffer.withUnsafeMutableBytes { try withCert.read(into: $0, timeout: .seconds(5)) }
        #expect(String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("HTTP/1.0 200"))
        withCert.close()

        // Without a client certificate the server refuses (TLS 1.3 reports it on the first read).
        var refused = false
        do {
            let without = try TLSClientConnection(host: "127.0.0.1", port: port, context: clientContext())
            try get.withUnsafeBytes { try without.writeAll($0, timeout: .seconds(5)) }
            let m = try buffer.withUnsafeMutableBytes { try without.read(into: $0, timeout: .seconds(5)) }
            refused = m == 0
        } catch {
            refused = true
        }
        #expect(refused)

        // A server name that is not in the certificate fails verification.
        #expect(throws: TLSError.self) {
            _ = try TLSClientConnection(host: "127.0.0.1", port: port, context: clientContext(certificate: clientLeaf),
                                        serverName: "other.example")
        }
    }
}
