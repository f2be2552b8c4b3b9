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
        var keys: KeyService?
        var policyWatcher: PolicyWatcher?
        if !config.passthrough {
            // Key files are read, passwords derived (scrypt, ~100 ms each) and certificates loaded here, once.
            let settings: KeySettings
            let keyTelemetry = KeyTelemetry(registry: telemetry.registry, logger: logger)
            do {
                settings = try KeySettings.parse({ config.settingValues[$0] }, environment: environment)
                keys = try settings.makeKeyService(logger: logger, observer: keyTelemetry)
            } catch {
                printError("s3-encryption-gateway: \(error)\nRun with --help for the list of settings.")
                return 2
            }
            let layout: ChunkLayout
            do {
                layout = try ChunkLayout(chunkSize: config.encryptionChunkSize)
            } catch {
                printError("s3-encryption-gateway: invalid configuration: ENCRYPTION_CHUNK_SIZE: \(error)")
                return 2
            }
            // Verified metadata is kept no longer than unwrapped keys (KEY_CACHE_TTL; 0 keeps neither).
            encryptor = ObjectEncryptor(keys: keys!, cipher: config.encryptionCipher, layout: layout,
                                        verified: VerifiedMetadataCache(capacity: min(settings.tuning.cacheCapacity, 4096),
                                                                        ttl: settings.tuning.cacheTTL))
            if let path = settings.policyFile {
                policyWatcher = PolicyWatcher(path: path, keys: keys!, defaultKey: settings.defaultKey, logger: logger, telemetry: keyTelemetry)
                policyWatcher?.start()
            }
            let policy = keys!.policy
            let defaultRing = keys!.local[settings.defaultProvider]
            logger.info("encryption keys ready", [
                "default_key": .string(settings.defaultKey.description),
                "active_key_id": .string(defaultRing?.active.idHex ?? settings.defaultKey.name),
                "previous_key_ids": .string(defaultRing?.keys.dropFirst().map(\.idHex).joined(separator: ",") ?? ""),
                "providers": .string(keys!.configuredProviders.map(\.rawValue).sorted().joined(separator: ",")),
                "local_key_ids": .string(keys!.local.values.flatMap { ring in ring.keys.map { "\(ring.kind):\($0.idHex)" } }.sorted().joined(separator: ",")),
                "policy_rules": .int(policy.rules.count),
                "key_cache_ttl_seconds": .int(Int(settings.tuning.cacheTTL.components.seconds)),
                "intermediate_key_lifetime_seconds": .int(Int(settings.tuning.intermediateLifetime.components.seconds)),
                "cipher": .string(config.encryptionCipher.name),
                "chunk_size": .int(layout.chunkSize),
            ])
            if settings.defaultProvider == .password {
                logger.warn("the default key is derived from a password; a raw key file (ENCRYPTION_KEY_FILE) or a key manager is preferred (docs/keys.md)")
            }
            for (provider, problem) in keys!.providerHealth() {
                if let problem { logger.warn("key provider not usable at start-up; /ready reports it until it is", ["provider": .string(provider.rawValue), "error": .string(problem)]) }
            }
            if layout.chunkSize != ChunkLayout.default.chunkSize {
                logger.warn("non-default ENCRYPTION_CHUNK_SIZE: listings report sizes computed for 65536-byte chunks, so sizes of new objects are wrong in listings (HEAD/GET are exact)")
            }
        }
        _ = policyWatcher
        var bucketDecision: (@Sendable (String) -> BucketDecision)?
        if let keys { bucketDecision = { @Sendable bucket in keys.decision(bucket: bucket) } }

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

        let endpoints = GatewayEndpointsHandler(backend: backend, telemetry: telemetry, keys: keys)
        // With a probe listener, /metrics is served there only: the figures name buckets and traffic, which the
        // client-facing port (often public) must not tell strangers. /health and /ready stay on both.
        let servedEndpoints: Set<GatewayRoute.Endpoint> = config.probeAddress == nil ? GatewayRoute.Endpoint.all : [.health, .ready]
        let handler = S3RequestHandler(
            gateway: endpoints,
            authenticator: authenticator,
            backend: backend, observer: telemetry, baseDomains: config.gatewayDomains,
            encryptor: encryptor, encryptionObserver: telemetry, allowPlaintextReads: config.encryptionAllowPlaintextReads,
            bucketDecision: bucketDecision, tracer: tracer, servedEndpoints: servedEndpoints)

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
        // As many requests at once as the memory limit holds (WorkerBudget); more wait their turn.
        let requestBytes = WorkerBudget.requestBytes(workerScratch: serverConfig.workerScratchBytes)
        serverConfig.maxWorkerThreads = WorkerBudget.maxWorkerThreads(memory: MemoryBudget.current, requestBytes: requestBytes)
        // Slots cannot be held anonymously: a connection must authenticate within AUTH_TIMEOUT, and
        // unauthenticated ones share a smaller budget whose idlest member makes room for newcomers.
        serverConfig.unauthenticatedTimeout = config.authTimeout
        serverConfig.maxUnauthenticatedConnections = config.maxUnauthenticatedConnections
        // Liveness and readiness probes are answered even when every slot is taken.
        serverConfig.isProbe = { head in
            let route = GatewayRoute.decide(method: head.method, rawPath: head.rawPath, rawQuery: head.rawQuery,
                                            headers: head.headers, served: servedEndpoints)
            if case .gateway(let endpoint) = route { return endpoint != .metrics }
            return false
        }

        let server: HTTPServer
        var probeServer: HTTPServer?
        do {
            server = try HTTPServer(configuration: serverConfig, handler: handler, observer: telemetry)
            telemetry.observeWorkers(maxRequests: serverConfig.maxWorkerThreads) { [server] in server.workerThreads.busy }
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
        for warning in ProxyEnvironment.process.noProxyWarnings { logger.warn(warning) }
        if let least = WorkerBudget.shortfall(memory: MemoryBudget.current, requestBytes: requestBytes) {
            logger.warn("memory limit \(MemoryBudget.current >> 20) MiB is below the \(least >> 20) MiB that \(WorkerBudget.floor) requests at once need: a burst of uploads may exceed it")
        }
        if config.anonymousForward {
            logger.warn("ANONYMOUS_ACCESS=forward: unsigned requests are forwarded unsigned; objects the backend makes public are served decrypted")
        }
        credentialsWatcher?.start()
        logger.info("listening", [
            "addr": .string(server.boundAddress),
            "backend": .string(config.backendEndpoint.absoluteString),
            // Whether http_proxy/https_proxy/no_proxy send backend requests through a proxy, and which.
            "backend_proxy": .string(ProxyEnvironment.process.proxy(forURL: config.backendEndpoint.absoluteString)
                .map(ProxyEnvironment.redacted) ?? "none"),
            "region": .string(config.backendRegion),
            // BACKEND_UPLOAD_CHECKSUM as decided (auto: by the endpoint).
            "backend_upload_checksum": .string(config.sendsBackendUploadChecksums ? "crc32" : "off"),
            "max_connections": .int(config.maxConnections),
            // What thread counts are sized from; with a CPU limit, the limit (ProcessorBudget).
            "cpus": .int(ProcessorBudget.current),
            // And memory: the machine's, or the memory limit (MemoryBudget); requests served at once fit in it.
            "memory_mib": .int(MemoryBudget.current >> 20),
            "max_requests_at_once": .int(serverConfig.maxWorkerThreads),
            "passthrough": .bool(config.passthrough),
            "regions": .string(config.gatewayRegions.joined(separator: ",")),
            "tls": .bool(tls != nil),
            "probe_addr": .string(probeServer?.boundAddress ?? ""),
            "metrics_on": .string(probeServer == nil ? "listener" : "probe listener"),
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
