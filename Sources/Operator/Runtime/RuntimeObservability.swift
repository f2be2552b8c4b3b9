import Shared

/// Bridges the runtime's logging seam to Shared's JSON `Logger`.
struct LoggerRuntimeLog: RuntimeLog {
    let logger: Logger

    func log(_ level: RuntimeLogLevel, _ message: String, _ fields: [String: String]) {
        let mapped: LogLevel
        switch level {
        case .debug: mapped = .debug
        case .info: mapped = .info
        case .warn: mapped = .warn
        case .error: mapped = .error
        }
        guard logger.isEnabled(mapped) else { return }
        // `Logger` takes fields as a literal-built KeyValuePairs; chain one `with` per field (sorted for stable lines).
        var l = logger
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) { l = l.with([key: .string(value)]) }
        l.log(mapped, message)
    }
}

/// The operator's Prometheus metrics (controller-runtime / client-go names, and each EncryptionGateway's status),
/// registered in one `MetricsRegistry`.
final class OperatorMetrics: ManagerMetrics, ReconcileMetrics, KubeRequestObserver, GatewayStatusObserver, Sendable {
    let registry: MetricsRegistry
    private let reconcileTotal: Counter
    private let reconcileErrors: Counter
    private let reconcileTime: Histogram
    private let activeWorkers: Gauge
    private let queueDepth: Gauge
    private let queueAdds: Counter
    private let queueRetries: Counter
    private let queueLatency: Histogram
    private let queueWork: Histogram
    private let restRequests: Counter
    private let restLatency: Histogram
    private let leader: Gauge
    private let gatewayReplicas: Gauge
    private let gatewayReadyReplicas: Gauge
    private let gatewayAvailableReplicas: Gauge
    private let gatewayCondition: Gauge

    init(registry: MetricsRegistry = MetricsRegistry()) {
        self.registry = registry
        reconcileTotal = registry.counter("controller_runtime_reconcile_total",
                                          help: "Total number of reconciliations per controller and result.",
                                          labels: ["controller", "result"])
        reconcileErrors = registry.counter("controller_runtime_reconcile_errors_total",
                                           help: "Total number of reconciliation errors per controller.",
                                           labels: ["controller"])
        reconcileTime = registry.histogram("controller_runtime_reconcile_time_seconds",
                                           help: "Length of time per reconciliation per controller and result.",
                                           labels: ["controller", "result"])
        activeWorkers = registry.gauge("controller_runtime_active_workers",
                                       help: "Number of currently used workers per controller.", labels: ["controller"])
        queueDepth = registry.gauge("workqueue_depth", help: "Current depth of the work queue.", labels: ["name"])
        queueAdds = registry.counter("workqueue_adds_total", help: "Total number of adds handled by the work queue.",
                                     labels: ["name"])
        queueRetries = registry.counter("workqueue_retries_total",
                                        help: "Total number of rate-limited retries handled by the work queue.",
                                        labels: ["name"])
        queueLatency = registry.histogram("workqueue_queue_duration_seconds",
                                          help: "How long an item stays in the work queue before being processed.",
                                          labels: ["name"])
        queueWork = registry.histogram("workqueue_work_duration_seconds",
                                       help: "How long processing an item from the work queue takes.", labels: ["name"])
        restRequests = registry.counter("rest_client_requests_total",
                                        help: "Number of Kubernetes API requests, by verb and HTTP status code.",
                                        labels: ["verb", "code"])
        restLatency = registry.histogram("rest_client_request_duration_seconds",
                                         help: "Kubernetes API request latency (watches: stream lifetime), by verb.",
                                         labels: ["verb"])
        leader = registry.gauge("leader_election_master_status",
                                help: "1 while this process holds the leader Lease, else 0.", labels: ["name"])
        // The leader's view of every EncryptionGateway's status, so alerts need no kube-state-metrics. The labels
        // name the resource; the ServiceMonitor keeps them (honorLabels) instead of the operator pod's namespace.
        let resource = ["namespace", "name"]
        gatewayReplicas = registry.gauge("encryptiongateway_status_replicas",
                                         help: "Gateway pods that exist (EncryptionGateway status.replicas).", labels: resource)
        gatewayReadyReplicas = registry.gauge("encryptiongateway_status_ready_replicas",
                                              help: "Gateway pods that are ready (status.readyReplicas).", labels: resource)
        gatewayAvailableReplicas = registry.gauge("encryptiongateway_status_available_replicas",
                                                  help: "Gateway pods available to clients (status.availableReplicas).",
                                                  labels: resource)
        gatewayCondition = registry.gauge("encryptiongateway_status_condition",
                                          help: "1 when the EncryptionGateway's condition of this type is True, else 0.",
                                          labels: resource + ["type"])
    }

    /// Work-queue metrics labelled with the queue's name.
    func queue(named name: String) -> any WorkQueueMetrics { QueueMetrics(metrics: self, name: name) }

    private struct QueueMetrics: WorkQueueMetrics {
        let metrics: OperatorMetrics
        let name: String
        func depthChanged(_ depth: Int) { metrics.queueDepth.set(Double(depth), [name]) }
        func added() { metrics.queueAdds.inc([name]) }
        func retried() { metrics.queueRetries.inc([name]) }
        func queueLatency(_ duration: Duration) { metrics.queueLatency.observe(duration.runtimeSeconds, [name]) }
        func workDuration(_ duration: Duration) { metrics.queueWork.observe(duration.runtimeSeconds, [name]) }
    }

    // ReconcileMetrics
    func reconciled(controller: String, result: String, duration: Duration) {
        reconcileTotal.inc([controller, result])
        if result == "error" { reconcileErrors.inc([controller]) }
        reconcileTime.observe(duration.runtimeSeconds, [controller, result])
    }

    func activeWorkers(controller: String, delta: Int) { activeWorkers.add(Double(delta), [controller]) }

    // KubeRequestObserver
    func requestFinished(verb: String, resource: String, code: String, duration: Duration) {
        restRequests.inc([verb, code])
        restLatency.observe(duration.runtimeSeconds, [verb])
    }

    // GatewayStatusObserver
    func observe(_ key: ObjectKey, _ status: EncryptionGatewayStatus) {
        let labels = [key.namespace ?? "", key.name]
        gatewayReplicas.set(Double(status.replicas), labels)
        gatewayReadyReplicas.set(Double(status.readyReplicas), labels)
        gatewayAvailableReplicas.set(Double(status.availableReplicas), labels)
        for type in StatusComputation.conditionTypes {
            gatewayCondition.set(status.condition(type)?.status == "True" ? 1 : 0, labels + [type])
        }
    }

    func forget(_ key: ObjectKey) {
        let labels = [key.namespace ?? "", key.name]
        for gauge in [gatewayReplicas, gatewayReadyReplicas, gatewayAvailableReplicas] { gauge.remove(labels) }
        for type in StatusComputation.conditionTypes { gatewayCondition.remove(labels + [type]) }
    }

    // ManagerMetrics
    func leaderStatus(name: String, isLeader: Bool) { leader.set(isLeader ? 1 : 0, [name]) }
    func exposition() -> String { registry.exposition() }
}
