import Foundation
import Shared

/// `s3-encryption-gateway [serve]`: load the configuration, start the server,
/// run until SIGTERM/SIGINT, then drain in-flight requests and exit 0.
enum ServeCommand {
    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        let config: GatewayConfiguration
        do {
            config = try GatewayConfiguration.load(environment: environment, arguments: arguments)
        } catch {
            printError("s3-encryption-gateway: \(error)\nRun with --help for the list of settings.")
            return 2
        }
        let tracing: TracingConfiguration
        do {
            tracing = try TracingConfiguration.fromEnvironment(environment, serviceName: "s3-encryption-gateway")
        } catch {
            printError("s3-encryption-gateway: \(error)\nRun with --help for the list of settings.")
            return 2
        }
        let logger = Logger(level: config.logLevel)
        let telemetry = GatewayTelemetry(logger: logger)
        let tracer = Tracer(configuration: tracing, scopeName: "s3-encryption-gateway",
                            metrics: TracingMetrics(registry: telemetry.registry), logger: logger)

        let backend: BackendClient
        do {
            backend = try BackendClient(gateway: config)
        } catch {
            printError("s3-encryption-gateway: invalid configuration: BACKEND_ENDPOINT: \(error)")
            return 2
        }

        var encryptor: ObjectEncryptor?
        if !config.passthrough, let password = config.encryptionPassword {
            // scrypt runs here, once per password (about 100 ms each), never per request.
            do {
                let keyRing = try KeyRing.derive(activePassword: password, previousPasswords: config.encryptionPreviousPasswords)
                let layout = try ChunkLayout(chunkSize: config.encryptionChunkSize)
                encryptor = ObjectEncryptor(keyRing: keyRing, cipher: config.encryptionCipher, layout: layout)
                logger.info("encryption keys ready", [
                    "active_key_id": .string(keyRing.active.idHex),
                    "previous_key_ids": .string(keyRing.keys.dropFirst().map(\.idHex).joined(separator: ",")),
                    "cipher": .string(config.encryptionCipher.name),
                    "chunk_size": .int(layout.chunkSize),
                ])
                if layout.chunkSize != ChunkLayout.default.chunkSize {
                    logger.warn("non-default ENCRYPTION_CHUNK_SIZE: listings report sizes computed for 65536-byte chunks, so sizes of new objects are wrong in listings (HEAD/GET are exact)")
                }
            } catch {
                printError("s3-encryption-gateway: invalid configuration: ENCRYPTION_PASSWORD: \(error)")
                return 2
            }
        }

        // Client credentials: the single pair from the environment and/or the credentials file (watched).
        var fixed: [Credential] = []
        if let accessKey = config.gatewayAccessKey, let secretKey = config.gatewaySecretKey {
            fixed.append(Credential(accessKey: accessKey, secretKey: secretKey))
        }
        let credentials: any CredentialProvider
        var credentialsWatcher: CredentialsFileWatcher?
        if let path = config.gatewayCredentialsFile {
            do {
                credentialsWatcher = try CredentialsFileWatcher(path: path, fixed: fixed, observer: telemetry)
            } catch {
                printError("s3-encryption-gateway: invalid configuration: GATEWAY_CREDENTIALS_FILE: \(path) \(error.message)")
                return 2
            }
            credentials = credentialsWatcher!.store
        } else {
            credentials = CredentialStore(fixed)
            telemetry.credentialCount.set(Double(fixed.count))
        }
        let authenticator = RequestAuthenticator(credentials: credentials, regions: Set(config.gatewayRegions),
                                                 anonymous: config.anonymousForward ? .forward : .deny)

        let endpoints = GatewayEndpointsHandler(backend: backend, telemetry: telemetry)
        let handler = S3RequestHandler(
            gateway: endpoints,
            authenticator: authenticator,
            backend: backend, observer: telemetry, baseDomains: config.gatewayDomains,
            encryptor: encryptor, encryptionObserver: telemetry, allowPlaintextReads: config.encryptionAllowPlaintextReads,
            tracer: tracer)

        var tls: ReloadingTLSContext?
        if let certFile = config.tlsCertFile, let keyFile = config.tlsKeyFile {
            do {
                tls = try ReloadingTLSContext(certificateFile: certFile, keyFile: keyFile) { event in
                    telemetry.tlsReloaded(event)
                }
            } catch {
                printError("s3-encryption-gateway: invalid configuration: TLS_CERT_FILE/TLS_KEY_FILE: \(error)")
                return 2
            }
            if let cert = tls?.certificate { telemetry.tlsCertificateLoaded(cert) }
        }

        var serverConfig = HTTPServerConfiguration(
            listenAddress: config.listenAddress.description, maxConnections: config.maxConnections,
            idleTimeout: config.requestTimeout, bodyIdleTimeout: config.requestTimeout, tls: tls)
        // Slots cannot be held anonymously: a connection must authenticate within AUTH_TIMEOUT, and
        // unauthenticated ones share a smaller budget whose idlest member makes room for newcomers.
        serverConfig.unauthenticatedTimeout = config.authTimeout
        serverConfig.maxUnauthenticatedConnections = config.maxUnauthenticatedConnections
        // Liveness and readiness probes are answered even when every slot is taken.
        serverConfig.isProbe = { head in
            let route = GatewayRoute.decide(method: head.method, rawPath: head.rawPath, rawQuery: head.rawQuery,
                                            headers: head.headers)
            if case .gateway(let endpoint) = route { return endpoint != .metrics }
            return false
        }

        let server: HTTPServer
        var probeServer: HTTPServer?
        do {
            server = try HTTPServer(configuration: serverConfig, handler: handler, observer: telemetry)
            if let probeAddress = config.probeAddress {
                let probeConfig = HTTPServerConfiguration(listenAddress: probeAddress.description, maxConnections: 64,
                                                          idleTimeout: .seconds(30))
                probeServer = try HTTPServer(configuration: probeConfig, handler: ProbeListenerHandler(gateway: endpoints))
            }
            try server.start()
            try probeServer?.start()
        } catch {
            logger.error("cannot start", ["error": .string("\(error)")])
            printError("s3-encryption-gateway: \(error)")
            return 1
        }

        if config.passthrough {
            logger.warn("pass-through mode: objects are stored UNENCRYPTED (GATEWAY_PASSTHROUGH=true)")
        }
        if config.anonymousForward {
            logger.warn("ANONYMOUS_ACCESS=forward: unsigned requests are forwarded unsigned; objects the backend makes public are served decrypted")
        }
        credentialsWatcher?.start()
        logger.info("listening", [
            "addr": .string(server.boundAddress),
            "backend": .string(config.backendEndpoint.absoluteString),
            "region": .string(config.backendRegion),
            "max_connections": .int(config.maxConnections),
            "passthrough": .bool(config.passthrough),
            "regions": .string(config.gatewayRegions.joined(separator: ",")),
            "tls": .bool(tls != nil),
            "probe_addr": .string(probeServer?.boundAddress ?? ""),
            "traces": .string(tracing.endpoint ?? "off"),
        ])

        let stopped = DispatchSemaphore(value: 0)
        let probes = probeServer
        let watcher = SignalWatcher.start(signals: [SIGTERM, SIGINT]) { signal in
            logger.info("shutting down", ["signal": .string(signal == SIGTERM ? "SIGTERM" : "SIGINT"),
                                          "grace_seconds": .int(Int(config.shutdownGracePeriod.components.seconds))])
            server.shutdown(grace: config.shutdownGracePeriod)
            probes?.shutdown(grace: .seconds(1))
            stopped.signal()
        }
        stopped.wait()
        _ = watcher
        credentialsWatcher?.stop()
        tracer.shutdown(timeout: .seconds(5))  // spans of the last requests
        logger.info("stopped")
        return 0
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
