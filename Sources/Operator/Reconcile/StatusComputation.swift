/// A problem that makes the resource `Degraded`, with a reason a program can match and a message a person can act on.
struct DegradedProblem: Error, Sendable, Equatable {
    var reason: String
    var message: String

    static let invalidSpec = "InvalidSpec"
    static let secretNotFound = "SecretNotFound"
    static let secretKeyNotFound = "SecretKeyNotFound"
    static let kindNotServed = "KindNotServed"
    static let applyFailed = "ApplyFailed"
    static let rolloutFailed = "RolloutFailed"
}

/// What a reconcile did, as the status needs it.
enum ReconcileOutcome: Sendable, Equatable {
    /// Nothing was applied: the spec, or a Secret it references, is not usable. Existing children are left as they were.
    case blocked(DegradedProblem)
    /// Children were applied; `problems` lists the ones that could not be (the rest was applied anyway).
    case applied(problems: [DegradedProblem])
}

/// Pure status computation: outcome + live Deployment + previous status → new status. Condition timestamps move only
/// when a condition's status changes (`now` is the MicroTime/RFC 3339 string to use then).
enum StatusComputation {
    static let ready = "Ready"
    static let progressing = "Progressing"
    static let degraded = "Degraded"
    static let conditionTypes = [ready, progressing, degraded]

    static func compute(resource r: GatewayResource, outcome: ReconcileOutcome, deployment: JSONValue?,
                        previous: EncryptionGatewayStatus, now: String) -> EncryptionGatewayStatus {
        var status = EncryptionGatewayStatus()
        status.observedGeneration = r.generation
        let scheme = r.spec.tls.secretName.isEmpty ? "http" : "https"
        status.endpoint = "\(scheme)://\(r.name).\(r.namespace).svc:\(r.spec.service.port)"
        status.selector = Builders.selectorString(r)

        let dStatus = deployment?["status"]
        status.replicas = dStatus?["replicas"]?.int ?? 0
        status.readyReplicas = dStatus?["readyReplicas"]?.int ?? 0
        status.updatedReplicas = dStatus?["updatedReplicas"]?.int ?? 0
        status.availableReplicas = dStatus?["availableReplicas"]?.int ?? 0
        let desired = deployment?[path: "spec", "replicas"]?.int
            ?? (r.spec.autoscaling.enabled ? r.spec.autoscaling.minReplicas : r.spec.replicas)

        func deploymentCondition(_ type: String) -> JSONValue? {
            dStatus?["conditions"]?.array?.first { $0["type"]?.string == type }
        }
        let deploymentName = "Deployment \(r.namespace)/\(r.name)"

        // Degraded
        var problem: DegradedProblem?
        var blocked = false
        switch outcome {
        case .blocked(let p):
            problem = p
            blocked = true
        case .applied(let problems):
            problem = problems.first.map { first in
                problems.count == 1 ? first
                    : DegradedProblem(reason: first.reason, message: problems.map(\.message).joined(separator: "; "))
            }
        }
        if problem == nil, let progress = deploymentCondition("Progressing"),
           progress["reason"]?.string == "ProgressDeadlineExceeded" {
            problem = DegradedProblem(reason: DegradedProblem.rolloutFailed,
                message: "\(deploymentName) is not making progress: \(progress["message"]?.string ?? "deadline exceeded"); check its pods' events and logs")
        }
        var conditions: [Condition] = []
        if let problem {
            conditions.append(Condition(type: degraded, status: "True", reason: problem.reason, message: problem.message))
        } else {
            conditions.append(Condition(type: degraded, status: "False", reason: "AsExpected",
                                        message: "Every child is applied as the spec asks."))
        }

        // Progressing
        let observedByDeployment = deployment.map {
            ($0[path: "status", "observedGeneration"]?.int ?? 0) >= ($0[path: "metadata", "generation"]?.int ?? 0)
        } ?? false
        let rolledOut = observedByDeployment && status.updatedReplicas >= desired && status.replicas <= status.updatedReplicas
            && status.availableReplicas >= status.updatedReplicas
        if blocked {
            conditions.append(Condition(type: progressing, status: "False", reason: "Blocked",
                                        message: "Nothing is applied until the Degraded problem is fixed."))
        } else if deployment == nil || !rolledOut {
            conditions.append(Condition(type: progressing, status: "True", reason: "RollingOut",
                message: "Rolling out \(deploymentName): \(status.updatedReplicas) of \(desired) pods updated, \(status.availableReplicas) available."))
        } else {
            conditions.append(Condition(type: progressing, status: "False", reason: "RolloutComplete",
                                        message: "\(deploymentName) runs \(status.updatedReplicas) up-to-date pods."))
        }

        // Ready
        let available = deploymentCondition("Available")?["status"]?.string == "True"
        if let problem {
            conditions.append(Condition(type: ready, status: "False", reason: problem.reason, message: problem.message))
        } else if desired == 0 {
            conditions.append(Condition(type: ready, status: "False", reason: "ScaledToZero",
                                        message: "The gateway is scaled to zero replicas."))
        } else if status.availableReplicas == 0 {
            conditions.append(Condition(type: ready, status: "False", reason: "NoAvailableReplicas",
                message: "No gateway pod is available yet (0 of \(desired)); see the pods of \(deploymentName)."))
        } else if available {
            conditions.append(Condition(type: ready, status: "True", reason: "Available",
                message: "\(status.availableReplicas) of \(desired) gateway pods available at \(status.endpoint)."))
        } else {
            conditions.append(Condition(type: ready, status: "False", reason: "Progressing",
                message: "\(status.availableReplicas) of \(desired) gateway pods available; waiting for the minimum availability."))
        }

        status.conditions = conditions.map { c in
            var c = c
            c.observedGeneration = r.generation
            let old = previous.condition(c.type)
            c.lastTransitionTime = old?.status == c.status ? (old?.lastTransitionTime ?? now) : now
            return c
        }
        return status
    }
}

/// Receives each EncryptionGateway's computed status (the operator's per-resource gauges) and forgets deleted ones.
protocol GatewayStatusObserver: Sendable {
    func observe(_ key: ObjectKey, _ status: EncryptionGatewayStatus)
    func forget(_ key: ObjectKey)
}

struct NoGatewayStatusObserver: GatewayStatusObserver {
    func observe(_ key: ObjectKey, _ status: EncryptionGatewayStatus) {}
    func forget(_ key: ObjectKey) {}
}
