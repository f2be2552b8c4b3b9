import Foundation
import Shared

/// Which kinds the EncryptionGateway controller watches besides its own resource. The reconciler issue fills
/// these in; the runtime wires them (owner mapping for children, a Secret index for references).
struct ControllerWiring: Sendable {
    /// Children created with a controller ownerReference to an EncryptionGateway.
    var owned: [GroupVersionResource] = []
    /// Extracts the Secret names an EncryptionGateway references; nil = Secrets are not watched.
    var secretReferences: (@Sendable (JSONValue) -> [String])?

    static let secretIndexName = "secretRef"

    /// Registers the informers and handlers that feed `controller`'s queue.
    func register(on manager: Manager, controller: Controller, namespace: String?) {
        let primary = GroupVersionResource.encryptionGateways
        var indexers: [String: IndexFunc] = [:]
        if let secretReferences { indexers[Self.secretIndexName] = EventMapping.secretReferenceIndex(secretReferences) }
        let gateways = manager.informer(InformerConfiguration(resource: primary, namespace: namespace), indexers: indexers)
        gateways.addEventHandler(.enqueueObject(controller.queue))
        for child in owned {
            manager.informer(InformerConfiguration(resource: child, namespace: namespace))
                .addEventHandler(.enqueue(controller.queue) { object in
                    EventMapping.controllerOwner(of: object, ownerGroup: primary.group, ownerKind: primary.kind)
                        .map { [$0] } ?? []
                })
        }
        if secretReferences != nil {
            manager.informer(InformerConfiguration(resource: .secrets, namespace: namespace))
                .addEventHandler(.enqueue(controller.queue) { secret in
                    EventMapping.referrers(of: secret, in: gateways.store, indexName: Self.secretIndexName)
                })
        }
    }
}

/// `encryption-gateway-operator` with parsed options: connect, wire the controller, run the manager.
enum RunCommand {
    static func run(_ options: OperatorOptions, log: any RuntimeLog, shutdown: ShutdownRelay) -> Int32 {
        let config: KubeConfig
        do {
            config = try KubeConfigLoader.load(kubeconfigFlag: options.kubeconfig)
        } catch {
            log.error("cannot load Kubernetes configuration", ["error": error.description])
            return 2
        }
        let metrics = OperatorMetrics()
        let client = KubeRESTClient(config: config, observer: metrics)

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

        let controller = Controller(name: "encryptiongateway", reconciler: LoggingReconciler(log: log),
                                    workers: options.workers, queueMetrics: metrics.queue(named: "encryptiongateway"),
                                    metrics: metrics, log: log)
        ControllerWiring().register(on: manager, controller: controller, namespace: options.namespace)
        manager.add(controller)

        shutdown.connect { manager.requestShutdown() }
        log.info("starting operator", [
            "apiServer": config.server, "namespace": options.namespace ?? "(all)",
            "leaderElect": "\(options.leaderElect)",
            "leaseNamespace": managerConfig.leaderElection?.namespace ?? "",
            "leaseName": managerConfig.leaderElection?.name ?? "",
            "identity": managerConfig.leaderElection?.identity ?? "",
        ])
        return manager.run().exitCode
    }

    /// controller-runtime's convention: "0" disables a listener.
    static func bindAddress(_ flag: String) -> String? {
        flag == "0" || flag.isEmpty ? nil : flag
    }
}
