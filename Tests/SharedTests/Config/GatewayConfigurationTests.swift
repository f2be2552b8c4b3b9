import Testing
@testable import Shared

@Suite struct GatewayConfigurationTests {
    let base: [String: String] = [
        "BACKEND_ENDPOINT": "http://127.0.0.1:9000",
        "BACKEND_ACCESS_KEY": "bak", "BACKEND_SECRET_KEY": "bsk",
        "GATEWAY_ACCESS_KEY": "gak", "GATEWAY_SECRET_KEY": "gsk",
        "ENCRYPTION_PASSWORD": "correct horse battery staple",
    ]

    @Test func defaultsApply() throws {
        let c = try GatewayConfiguration.load(environment: base, arguments: [])
        #expect(c.listenAddress == ListenAddress(host: "", port: 8080))
        #expect(c.backendRegion == "us-east-1")
        #expect(c.maxConnections == 1024)
        #expect(c.requestTimeout == .seconds(60))
        #expect(c.logLevel == .info)
        #expect(!c.passthrough)
        #expect(c.encryptionAllowPlaintextReads)
    }

    @Test func plaintextReadsCanBeSwitchedOff() throws {
        var env = base
        env["ENCRYPTION_ALLOW_PLAINTEXT_READS"] = "false"
        #expect(try !GatewayConfiguration.load(environment: env, arguments: []).encryptionAllowPlaintextReads)
        #expect(try GatewayConfiguration.load(environment: env, arguments: ["--encryption-allow-plaintext-reads=true"])
            .encryptionAllowPlaintextReads)
        env["ENCRYPTION_ALLOW_PLAINTEXT_READS"] = "sometimes"
        #expect(throws: ConfigurationError(.encryptionAllowPlaintextReads, "must be true or false, got \"sometimes\"")) {
            try GatewayConfiguration.load(environment: env, arguments: [])
        }
    }

    /// BACKEND_UPLOAD_CHECKSUM: auto turns the trailer on for AWS's endpoints only (Ceph RGW Pacific refuses it).
    @Test(arguments: [
        (nil, "http://127.0.0.1:9000", false), (nil, "https://s3.eu-west-1.amazonaws.com", true),
        (nil, "https://bucket.s3.amazonaws.com", true), (nil, "https://s3.cn-north-1.amazonaws.com.cn", true),
        (nil, "https://notamazonaws.com", false), (nil, "https://rgw.example.net", false),
        ("auto", "https://s3.amazonaws.com", true), ("crc32", "http://127.0.0.1:9000", true), ("CRC32", "http://ceph:7480", true),
        ("off", "https://s3.us-east-1.amazonaws.com", false),
    ] as [(String?, String, Bool)])
    func backendUploadChecksums(setting: String?, endpoint: String, on: Bool) throws {
        var env = base
        env["BACKEND_ENDPOINT"] = endpoint
        env["BACKEND_UPLOAD_CHECKSUM"] = setting
        #expect(try GatewayConfiguration.load(environment: env, arguments: []).sendsBackendUploadChecksums == on)
    }

    @Test func aBackendUploadChecksumOutsideTheChoicesIsRefused() {
        var env = base
        env["BACKEND_UPLOAD_CHECKSUM"] = "sha256"
        #expect(throws: ConfigurationError(.backendUploadChecksum, "must be auto, crc32 or off, got \"sha256\"")) {
            try GatewayConfiguration.load(environment: env, arguments: [])
        }
        #expect(throws: Never.self) { try GatewayConfiguration.load(environment: base, arguments: ["--backend-upload-checksum", "off"]) }
    }

    @Test func flagsOverrideEnvironment() throws {
        let c = try GatewayConfiguration.load(environment: base, arguments: [
            "--listen-addr", "127.0.0.1:0", "--log-level=debug", "--max-connections", "7", "--request-timeout", "500ms",
        ])
        #expect(c.listenAddress == ListenAddress(host: "127.0.0.1", port: 0))
        #expect(c.logLevel == .debug)
        #expect(c.maxConnections == 7)
        #expect(c.requestTimeout == .milliseconds(500))
    }

    @Test(arguments: [
        ("BACKEND_ENDPOINT", "ftp://x", "BACKEND_ENDPOINT"),
        ("BACKEND_ENDPOINT", "not a url", "BACKEND_ENDPOINT"),
        ("GATEWAY_ACCESS_KEY", "", "GATEWAY_ACCESS_KEY"),
        ("LISTEN_ADDR", "8080", "LISTEN_ADDR"),
        ("LISTEN_ADDR", "::1:80", "LISTEN_ADDR"),
        ("MAX_CONNECTIONS", "0", "MAX_CONNECTIONS"),
        ("REQUEST_TIMEOUT", "soon", "REQUEST_TIMEOUT"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
        ("GATEWAY_PASSTHROUGH", "maybe", "GATEWAY_PASSTHROUGH"),
        ("ENCRYPTION_PASSWORD", "short", "ENCRYPTION_PASSWORD"),
        ("BACKEND_CA_FILE", "/nonexistent/ca.pem", "BACKEND_CA_FILE"),
    ])
    func badValuesNameTheirVariable(variable: String, value: String, named: String) {
        var env = base
        env[variable] = value
        #expect {
            _ = try GatewayConfiguration.load(environment: env, arguments: [])
        } throws: { error in
            (error as? ConfigurationError)?.setting == named
        }
    }

    @Test func secretsNeverAppearInErrors() {
        var env = base
        env["ENCRYPTION_PASSWORD"] = "tiny"
        do {
            _ = try GatewayConfiguration.load(environment: env, arguments: [])
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("tiny"))
        }
    }

    @Test func misspeltFlagsAndURLCredentialsAreNotEchoed() {
        func message(_ env: [String: String], _ arguments: [String]) -> String {
            do {
                _ = try GatewayConfiguration.load(environment: env, arguments: arguments)
                return "accepted"
            } catch {
                return error.description
            }
        }
        let typo = message(base, ["--encryption-pasword=Sup3rS3cretValue"])
        #expect(typo.contains("--encryption-pasword") && !typo.contains("Sup3rS3cretValue"), "\(typo)")
        let spaced = message(base, ["--encryption-pasword", "Sup3rS3cretValue"])
        #expect(!spaced.contains("Sup3rS3cretValue"), "\(spaced)")
        for url in ["http://user:Sup3rS3cretValue@host:9000", "https://AKID:Sup3rS3cretValue@s3.example.com/", "http://Sup3rS3cretValue@h"] {
            var env = base
            env["BACKEND_ENDPOINT"] = url
            let text = message(env, [])
            #expect(text.contains("BACKEND_ENDPOINT") && !text.contains("Sup3rS3cretValue"), "\(text)")
        }
    }

    @Test func clientAuthenticationSettings() throws {
        var env = base
        env["BACKEND_REGION"] = "eu-west-1"
        var c = try GatewayConfiguration.load(environment: env, arguments: [])
        #expect(c.gatewayRegions == ["eu-west-1"])
        #expect(!c.anonymousForward)
        env["GATEWAY_REGIONS"] = "eu-west-1, us-east-1"
        env["ANONYMOUS_ACCESS"] = "forward"
        c = try GatewayConfiguration.load(environment: env, arguments: [])
        #expect(c.gatewayRegions == ["eu-west-1", "us-east-1"])
        #expect(c.anonymousForward)
        env["ANONYMOUS_ACCESS"] = "allow"
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(environment: env, arguments: []) }
        // A credentials file makes the single pair optional, but half a pair is still an error.
        var fileOnly = base
        fileOnly["GATEWAY_ACCESS_KEY"] = nil
        fileOnly["GATEWAY_SECRET_KEY"] = nil
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(environment: fileOnly, arguments: []) }
        fileOnly["GATEWAY_CREDENTIALS_FILE"] = "/dev/null"
        c = try GatewayConfiguration.load(environment: fileOnly, arguments: [])
        #expect(c.gatewayAccessKey == nil && c.gatewayCredentialsFile == "/dev/null")
        fileOnly["GATEWAY_ACCESS_KEY"] = "half"
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(environment: fileOnly, arguments: []) }
        fileOnly["GATEWAY_CREDENTIALS_FILE"] = "/nonexistent/creds.json"
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration.load(environment: fileOnly, arguments: []) }
    }

    /// Key-provider settings are validated by the proxy (`KeySettings`, which knows the providers); `load`
    /// keeps every given value for it, flags over environment.
    @Test func keyProviderSettingsAreKeptForTheProxy() throws {
        var env = base
        env["ENCRYPTION_PASSWORD"] = nil
        env["ENCRYPTION_KEY_PROVIDER"] = "vault-transit"
        env["VAULT_ADDR"] = "https://vault.example.com"
        let config = try GatewayConfiguration.load(environment: env, arguments: ["--vault-transit-key", "s3eg"])
        #expect(config.settingValues[.encryptionKeyProvider] == "vault-transit")
        #expect(config.settingValues[.vaultTransitKey] == "s3eg")
        #expect(config.settingValues[.encryptionPassword] == nil)
        #expect(GatewaySetting.vaultToken.isSecret && GatewaySetting.awsKMSSecretAccessKey.isSecret)
    }

    @Test func unknownFlagIsRejected() {
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration.load(environment: base, arguments: ["--frobnicate"])
        }
    }

    @Test(arguments: [
        (":8080", "", 8080), ("0.0.0.0:1", "0.0.0.0", 1), ("[::1]:9000", "::1", 9000), ("localhost:0", "127.0.0.1", 0),
    ])
    func listenAddressesParse(text: String, host: String, port: Int) {
        #expect((try? ListenAddress(parsing: text)) == ListenAddress(host: host, port: port))
    }

    @Test func everyFlagMatchesItsVariable() {
        for setting in GatewaySetting.allCases {
            #expect(setting.flag.dropFirst(2).uppercased().replacingOccurrences(of: "-", with: "_") == setting.rawValue)
        }
    }
}
