import Testing
@testable import Shared

/// ENCRYPTION_PREVIOUS_PASSWORDS, ENCRYPTION_CHUNK_SIZE and ENCRYPTION_CIPHER.
@Suite struct EncryptionSettingsTests {
    let base: [String: String] = [
        "BACKEND_ENDPOINT": "http://127.0.0.1:9000",
        "BACKEND_ACCESS_KEY": "bak", "BACKEND_SECRET_KEY": "bsk",
        "GATEWAY_ACCESS_KEY": "gak", "GATEWAY_SECRET_KEY": "gsk",
        "ENCRYPTION_PASSWORD": "correct horse battery staple",
    ]

    func load(_ extra: [String: String], arguments: [String] = []) throws(ConfigurationError) -> GatewayConfiguration {
        try GatewayConfiguration.load(environment: base.merging(extra) { $1 }, arguments: arguments)
    }

    func failingSetting(_ extra: [String: String]) -> ConfigurationError? {
        do {
            _ = try load(extra)
            return nil
        } catch {
            return error
        }
    }

    @Test func defaults() throws {
        let c = try load([:])
        #expect(c.encryptionPreviousPasswords.isEmpty)
        #expect(c.encryptionChunkSize == 65536)
        #expect(c.encryptionCipher == .aes256GCM)
    }

    @Test func previousPasswordsSplitAtCommas() throws {
        let c = try load(["ENCRYPTION_PREVIOUS_PASSWORDS": "older password number one,older password number two"])
        #expect(c.encryptionPreviousPasswords == ["older password number one", "older password number two"])
    }

    @Test(arguments: [",older password number one", "older password number one,,older password number two",
                      "older password number one,", "has,a comma inside the password"])
    func badPreviousPasswordListsAreRefusedWithoutEchoingThem(text: String) {
        let error = failingSetting(["ENCRYPTION_PREVIOUS_PASSWORDS": text])
        #expect(error?.setting == "ENCRYPTION_PREVIOUS_PASSWORDS")
        #expect(error?.message.contains("comma") == true)
        for piece in text.split(separator: ",") { #expect(error?.description.contains(piece) == false) }
    }

    @Test(arguments: [("4096", 4096), ("65536", 65536), ("1048576", 1048576), ("16777216", 16777216), ("100000", 100000)])
    func chunkSizesInBoundsAreAccepted(text: String, value: Int) throws {
        #expect(try load(["ENCRYPTION_CHUNK_SIZE": text]).encryptionChunkSize == value)
    }

    @Test(arguments: ["4095", "16777217", "0", "-4096", "64k", "", " 65536", "99999999999999999999"])
    func chunkSizesOutOfBoundsAreRefused(text: String) {
        if text.isEmpty {
            // Empty means unset, like every other setting.
            #expect(failingSetting(["ENCRYPTION_CHUNK_SIZE": text]) == nil)
        } else {
            #expect(failingSetting(["ENCRYPTION_CHUNK_SIZE": text])?.setting == "ENCRYPTION_CHUNK_SIZE")
        }
    }

    @Test func ciphers() throws {
        #expect(try load(["ENCRYPTION_CIPHER": "chacha20-poly1305"]).encryptionCipher == .chacha20Poly1305)
        #expect(try load(["ENCRYPTION_CIPHER": "AES-256-GCM"]).encryptionCipher == .aes256GCM)
        #expect(try load([:], arguments: ["--encryption-cipher", "chacha20-poly1305"]).encryptionCipher == .chacha20Poly1305)
        #expect(failingSetting(["ENCRYPTION_CIPHER": "aes-128-cbc"])?.setting == "ENCRYPTION_CIPHER")
    }
}
