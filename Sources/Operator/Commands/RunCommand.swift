import Foundation
import Shared
import Synchronization

/// The informers that feed the EncryptionGateway controller and the caches its reconciler reads.
struct ControllerWiring: Sendable {
    /// Children are watched through this label only, so the operator caches its own objects, not every
    /// Deployment or ConfigMap of the cluster.
    static let childSelector = "\(Builders.managedByLabel)=\(Builders.fieldManager)"
    static let secretIndexName = "secretRef"

    var namespace: String?
    var capabilities: ClusterCapabilities
    var syncPeriod: Duration?

    /// Registers the informers and handlers that feed `controller`'s queue; returns the caches.
    func register(on manager: Manager, controller: Controller) -> ReconcilerCaches {
        let primary = GroupVersionResource.encryptionGateways
        var gatewayConfig = InformerConfiguration(resource: primary, namespace: namespace)
        gatewayConfig.resyncPeriod = syncPeriod
        let gateways = manager.informer(gatewayConfig, indexers: [
            Self.secretIndexName: EventMapping.secretReferenceIndex(EncryptionGatewayReconciler.referencedSecretNames),
        ])
        let queue = controller.queue
        gateways.addEventHandler(ResourceEventHandler(
            onAdd: { o in if let k = ObjectKey(of: o) { queue.add(k) } },
            onUpdate: { old, new in if Self.worthReconciling(old: old, new: new), let k = ObjectKey(of: new) { queue.add(k) } },
            onDelete: { _ in }))
        var children: [ChildKind: Store] = [:]
        for kind in ChildKind.allCases {
            guard let resource = kind.resource(capabilities) else { continue }
            let informer = manager.informer(InformerConfiguration(resource: resource, namespace: namespace,
                                                                  labelSelector: Self.childSelector))
            informer.addEventHandler(.enqueue(queue) { object in
                EventMapping.controllerOwner(of: object, ownerGroup: primary.group, ownerKind: primary.kind)
                    .map { [$0] } ?? []
            })
            children[kind] = informer.store
        }
        var secretConfig = InformerConfiguration(resource: .secrets, namespace: namespace)
        secretConfig.transform = SecretDigest.transform
        let secrets = manager.informer(secretConfig)
        secrets.addEventHandler(.enqueue(queue) { secret in
            EventMapping.referrers(of: secret, in: gateways.store, indexName: Self.secretIndexName)
        })
        return ReconcilerCaches(gateways: gateways.store, secrets: secrets.store, children: children)
    }

    /// controller-runtime's GenerationChanged/LabelChanged predicates: the operator's own status writes (and other
    /// status-only changes) do not trigger a reconcile; spec, label and deletion changes and resyncs do.
    static func worthReconciling(old: JSONValue, new: JSONValue) -> Bool {
        if old.resourceVersion == new.resourceVersion { return true }  // resync
        for path in [["metadata", "generation"], ["metadata", "labels"], ["metadata", "deletionTimestamp"]] {
            if old[path: path[0], path[1]] != new[path: path[0], path[1]] { return true }
        }
        return false
    }
}

/// `encryption-gateway-operator` with parsed options: connect, wire the controller, run the manager.
enum RunCommand {
    /// `tracing` (the OTEL_* variables): a span per reconcile, exported through `logger`'s process.
    static func run(_ options: OperatorOptions, tracing: TracingConfiguration = TracingConfiguration(), logger: Logger,
                    log: any RuntimeLog, shutdown: ShutdownRelay) -> Int32 {
        let config: KubeConfig
        do {
            config = try KubeConfigLoader.load(kubeconfigFlag: options.kubeconfig)
        } catch {
            log.error("cannot load Kubernetes configuration", ["error": error.description])
            return 2
        }
        let metrics = OperatorMetrics()
        let client = KubeRESTClient(config: config, observer: metrics)
        let tracer = Tracer(configuration: tracing, scopeName: "encryption-gateway-operator",
                            metrics: TracingMetrics(registry: metrics.registry), logger: logger)
        defer { tracer.shutdown(timeout: .seconds(5)) }  // the last reconciles' spans

        var managerConfig = ManagerConfiguration()
        managerConfig.healthProbeBindAddress = bindAddress(options.healthProbeBindAddress)
        managerConfig.metricsBindAddress = bindAddress(options.metricsBindAddress)
        managerConfig.gracefulShutdownTimeout = options.gracefulShutdownTimeout
        var electionClient: (any KubeClient)?
        if options.leaderElect {
            var election = options.leaderElectionTimings
            election.namespace = options.leaderElectionNamespace ?? config.namespace
            election.identity = LeaderElectionConfiguration.defaultIdentity()
            managerConfig.leaderElection = election
            // Lease requests must fail within the renew deadline rather than after the default request timeout.
            electionClient = KubeRESTClient(config: config, observer: metrics, requestTimeout: options.renewDeadline)
        }
        let manager = Manager(client: client, configuration: managerConfig, log: log, metrics: metrics,
                              electionClient: electionClient)

        let identity = managerConfig.leaderElection?.identity ?? LeaderElectionConfiguration.defaultIdentity()
        let reconcilerBox = ReconcilerBox()
        let controller = Controller(name: "encryptiongateway", reconciler: reconcilerBox,
                                    workers: options.workers, queueMetrics: metrics.queue(named: "encryptiongateway"),
                                    metrics: metrics, log: log, tracer: tracer)
        manager.add(controller)
        // The cluster's API versions decide which informers exist: discovery runs once the probe and metrics
        // listeners are up, retried until it works (or shutdown), so the pod stays live and reports not ready meanwhile.
        let prepare = { () -> Bool in
            var backoff = BackoffSequence(.listWatch)
            var capabilities: ClusterCapabilities?
            while capabilities == nil {
                do {
                    capabilities = ClusterCapabilities.from(apiGroups: try client.apiGroups())
                } catch {
                    let delay = backoff.next()
                    log.warn("discovery failed", ["error": "\(error)", "retryIn": "\(delay)"])
                    if !manager.sleepUnlessShuttingDown(delay) { return false }
                }
            }
            guard let capabilities else { return false }
            log.info("discovered API versions", [
                "hpa": capabilities.hpa?.apiVersion ?? "(not served)", "pdb": capabilities.pdb?.apiVersion ?? "(not served)",
                "ingress": capabilities.ingress?.apiVersion ?? "(not served)",
                "serviceMonitor": capabilities.serviceMonitor?.apiVersion ?? "(not served)",
            ])
            let caches = ControllerWiring(namespace: options.namespace, capabilities: capabilities,
                                          syncPeriod: options.syncPeriod).register(on: manager, controller: controller)
            reconcilerBox.set(EncryptionGatewayReconciler(
                client: client, caches: caches, capabilities: CapabilitiesCache(initial: capabilities),
                events: KubeEventRecorder(client: client, instance: identity, log: log),
                defaultImage: options.gatewayImage, log: log, statusObserver: metrics))
            return true
        }
        shutdown.connect { manager.requestShutdown() }
        log.info("starting operator", [
            "apiServer": config.server, "namespace": options.namespace ?? "(all)",
            "leaderElect": "\(options.leaderElect)",
            "leaseNamespace": managerConfig.leaderElection?.namespace ?? "",
            "leaseName": managerConfig.leaderElection?.name ?? "",
            "identity": managerConfig.leaderElection?.identity ?? "",
            "traces": tracing.endpoint ?? "off",
        ])
        return manager.run(prepare: prepare).exitCode
    }

    /// controller-runtime's convention: "0" disables a listener.
    static func bindAddress(_ flag: String) -> String? {
        flag == "0" || flag.isEmpty ? nil : flag
    }
}

/// The controller needs its reconciler before the informers (and so the caches the reconciler reads) exist;
/// this box is filled in right after wiring, before the manager runs.
final class ReconcilerBox: Reconciler, Sendable {
    private let inner = Mutex<(any Reconciler)?>(nil)

    func set(_ reconciler: any Reconciler) { inner.withLock { $0 = reconciler } }

    func reconcile(_ key: ObjectKey, context: ReconcileContext) -> ReconcileResult {
        guard let r = inner.withLock({ $0 }) else { return .requeue(after: .seconds(1)) }
        return r.reconcile(key, context: context)
    }
}
