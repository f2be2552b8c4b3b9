import Foundation
import Testing
@testable import Proxy
@testable import Shared

/// The vault-transit provider against the Transit double (a real HTTP server that really encrypts;
/// no Vault server can be installed here, see Tests/Support/vault_transit_double.py).
@Suite(.serialized) struct VaultTransitKeyProviderTests {
    let secret = (0..<32).map { UInt8($0) }
    let context = KeyManagerContext.bucket("photos")

    func provider(_ vault: VaultTransitDouble, auth: VaultAuth, key: String = "s3eg") throws -> VaultTransitKeyProvider {
        try VaultTransitKeyProvider(settings: VaultSettings(address: vault.address, keyName: key, auth: auth), timeout: .seconds(5))
    }

    @Test func wrapsUnwrapsRotatesAndRewraps() throws {
        let vault = try VaultTransitDouble()
        try vault.admin("POST", "/v1/transit/keys/s3eg", ["derived": true])
        let p = try provider(vault, auth: .token(try vault.transitToken()))
        try p.checkHealth(keyName: "s3eg")
        let wrapped = try p.wrap(secret, keyName: "s3eg", context: context)
        #expect(wrapped.keyID == "s3eg:v1")
        #expect(try p.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context) == secret)
        // A derived key binds the context: another bucket's context does not open it.
        #expect(throws: KeyProviderError.self) {
            try p.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: .bucket("other"))
        }
        var tampered = wrapped.ciphertext
        tampered[tampered.count - 1] ^= 1
        do {
            _ = try p.unwrap(tampered, keyID: wrapped.keyID, context: context)
            Issue.record("tampered ciphertext opened")
        } catch {
            #expect(error.code == .invalidCiphertext)
        }
        #expect(try p.isCurrent(keyID: "s3eg:v1", keyName: "s3eg"))

        try vault.admin("POST", "/v1/transit/keys/s3eg/rotate")
        let p2 = try provider(vault, auth: .token(try vault.transitToken()))  // fresh: no cached latest version
        #expect(try !p2.isCurrent(keyID: "s3eg:v1", keyName: "s3eg"))
        let rewrapped = try p2.rewrap(wrapped.ciphertext, keyID: wrapped.keyID, keyName: "s3eg", context: context)
        #expect(rewrapped.keyID == "s3eg:v2")
        #expect(try p2.isCurrent(keyID: rewrapped.keyID, keyName: "s3eg"))
        #expect(try p2.unwrap(rewrapped.ciphertext, keyID: rewrapped.keyID, context: context) == secret)
        #expect(try vault.stats()["rewrap"] == 1)

        // Retiring version 1 in Vault (min_decryption_version) is a revocation: denied, not unavailable.
        try vault.admin("POST", "/v1/transit/keys/s3eg/config", ["min_decryption_version": 2])
        do {
            _ = try p2.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context)
            Issue.record("retired version opened")
        } catch {
            #expect(error.code == .denied)
            #expect(error.message.contains("disallowed by policy"))
        }
        do {
            try p2.checkHealth(keyName: "missing")
            Issue.record("missing key reported healthy")
        } catch {
            #expect(error.code == .denied)
        }
    }

    @Test func kubernetesAuthLogsInAgainAfterA403() throws {
        let dir = TempDir(prefix: "jwt")
        let jwtFile = dir.url.appendingPathComponent("jwt")
        try "service-account-jwt\n".write(to: jwtFile, atomically: true, encoding: .utf8)
        let vault = try VaultTransitDouble(arguments: ["--jwt", "service-account-jwt=gateway"])
        try vault.admin("POST", "/v1/transit/keys/s3eg")
        let p = try provider(vault, auth: .kubernetes(role: "gateway", jwtFile: jwtFile.path, mount: "kubernetes"))
        let wrapped = try p.wrap(secret, keyName: "s3eg", context: context)
        #expect(try vault.stats()["logins"] == 1)
        // The token is revoked early (Vault restarted with a lost token store, an operator revoked it...).
        try vault.admin("POST", "/_double/revoke-all")
        #expect(try p.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context) == secret)
        let stats = try vault.stats()
        #expect(stats["logins"] == 2)
        #expect(stats["denied"] == 1)

        // A JWT Vault does not accept: the error says so (denied), it is not retried forever.
        try "someone-else\n".write(to: jwtFile, atomically: true, encoding: .utf8)
        try vault.admin("POST", "/_double/revoke-all")
        do {
            _ = try p.unwrap(wrapped.ciphertext, keyID: wrapped.keyID, context: context)
            Issue.record("unwrapped without a valid login")
        } catch {
            #expect(error.code == .denied)
            #expect(error.message.contains("Kubernetes login"))
        }
    }

    @Test func tokensAreRenewedAndReplacedBeforeTheirMaximumTTL() throws {
        let dir = TempDir(prefix: "jwt")
        let jwtFile = dir.url.appendingPathComponent("jwt")
        try "jwt-renew".write(to: jwtFile, atomically: true, encoding: .utf8)
        // Tokens live 3 s and can be renewed up to 5 s after login.
        let vault = try VaultTransitDouble(arguments: ["--jwt", "jwt-renew=gateway", "--token-ttl", "3", "--token-max-ttl", "5"])
        try vault.admin("POST", "/v1/transit/keys/s3eg")
        let p = try provider(vault, auth: .kubernetes(role: "gateway", jwtFile: jwtFile.path, mount: "kubernetes"))
        _ = try p.wrap(secret, keyName: "s3eg", context: context)
        // Without any request the background renewal keeps a valid token: wait for a renewal and a second login.
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let stats = try vault.stats()
            if (stats["renewals"] ?? 0) >= 1 && (stats["logins"] ?? 0) >= 2 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let stats = try vault.stats()
        #expect((stats["renewals"] ?? 0) >= 1)
        #expect((stats["logins"] ?? 0) >= 2)
        let denied = stats["denied"] ?? 0
        _ = try p.wrap(secret, keyName: "s3eg", context: context)
        #expect(try vault.stats()["denied"] == denied, "the token in use was still valid")
    }

    @Test func aRefusedStaticTokenIsDeniedAndAnUnreachableVaultIsUnavailable() throws {
        let vault = try VaultTransitDouble()
        try vault.admin("POST", "/v1/transit/keys/s3eg")
        let p = try provider(vault, auth: .token("not-a-token"))
        do {
            _ = try p.wrap(secret, keyName: "s3eg", context: context)
            Issue.record("wrapped with a bad token")
        } catch {
            #expect(error.code == .denied)
            #expect(error.message.contains("VAULT_TOKEN"))
        }
        let down = try VaultTransitKeyProvider(settings: VaultSettings(address: "http://127.0.0.1:\(try freePort())", keyName: "s3eg",
                                                                       auth: .token("t")), timeout: .seconds(2))
        do {
            _ = try down.wrap(secret, keyName: "s3eg", context: context)
            Issue.record("wrapped without a server")
        } catch {
            #expect(error.code == .unavailable)
        }
    }

    @Test func keyIDsAndCiphertextsParseStrictly() throws {
        #expect(try VaultTransitKeyProvider.parseKeyID("a:b:v12") == ("a:b", 12))
        for bad in ["s3eg", "s3eg:v0", "s3eg:vx", ":v1", "s3eg:1"] {
            #expect(throws: KeyProviderError.self) { try VaultTransitKeyProvider.parseKeyID(bad) }
        }
        #expect(VaultTransitKeyProvider.parseCiphertext("vault:v3:AAEC")! == (3, [0, 1, 2]))
        for bad in ["vault:3:AAEC", "vault:v3:", "vault:v3:***", "other:v3:AAEC", "vault:v0:AAEC"] {
            #expect(VaultTransitKeyProvider.parseCiphertext(bad) == nil)
        }
    }
}
