import Testing
@testable import Operator

@Suite struct StatusComputationTests {
    static let resource = BuildersTests.snapshot().resource

    static func deployment(replicas: Int, updated: Int, available: Int, generation: Int = 2, observed: Int = 2,
                           availableCondition: Bool = true, progressDeadline: Bool = false) -> JSONValue {
        var conditions: [JSONValue] = [["type": "Available", "status": availableCondition ? "True" : "False"]]
        if progressDeadline {
            conditions.append(["type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                               "message": "ReplicaSet gw-1 has timed out progressing."])
        }
        return [
            "metadata": ["generation": .integer(Int64(generation))],
            "spec": ["replicas": .integer(Int64(replicas))],
            "status": ["observedGeneration": .integer(Int64(observed)), "replicas": .integer(Int64(replicas)),
                       "updatedReplicas": .integer(Int64(updated)), "readyReplicas": .integer(Int64(available)),
                       "availableReplicas": .integer(Int64(available)), "conditions": .array(conditions)],
        ]
    }

    static func compute(_ outcome: ReconcileOutcome, _ deployment: JSONValue?, previous: EncryptionGatewayStatus = .init(),
                        now: String = "2026-01-01T00:00:00Z") -> EncryptionGatewayStatus {
        StatusComputation.compute(resource: resource, outcome: outcome, deployment: deployment, previous: previous, now: now)
    }

    static func summary(_ s: EncryptionGatewayStatus) -> String {
        ["Ready", "Progressing", "Degraded"].map { t in
            let c = s.condition(t)!
            return "\(t)=\(c.status)/\(c.reason)"
        }.joined(separator: " ")
    }

    static let table: [(String, ReconcileOutcome, JSONValue?, String)] = [
        ("healthy", .applied(problems: []), deployment(replicas: 3, updated: 3, available: 3),
         "Ready=True/Available Progressing=False/RolloutComplete Degraded=False/AsExpected"),
        ("just created", .applied(problems: []), nil,
         "Ready=False/NoAvailableReplicas Progressing=True/RollingOut Degraded=False/AsExpected"),
        ("rolling, minimum available", .applied(problems: []), deployment(replicas: 4, updated: 1, available: 3),
         "Ready=True/Available Progressing=True/RollingOut Degraded=False/AsExpected"),
        ("generation not observed", .applied(problems: []), deployment(replicas: 3, updated: 3, available: 3, generation: 3, observed: 2),
         "Ready=True/Available Progressing=True/RollingOut Degraded=False/AsExpected"),
        ("below minimum", .applied(problems: []), deployment(replicas: 3, updated: 3, available: 1, availableCondition: false),
         "Ready=False/Progressing Progressing=True/RollingOut Degraded=False/AsExpected"),
        ("scaled to zero", .applied(problems: []), deployment(replicas: 0, updated: 0, available: 0),
         "Ready=False/ScaledToZero Progressing=False/RolloutComplete Degraded=False/AsExpected"),
        ("missing secret", .blocked(DegradedProblem(reason: "SecretNotFound", message: "Secret ns/x …")), deployment(replicas: 3, updated: 3, available: 3),
         "Ready=False/SecretNotFound Progressing=False/Blocked Degraded=True/SecretNotFound"),
        ("kind not served", .applied(problems: [DegradedProblem(reason: "KindNotServed", message: "m")]), deployment(replicas: 3, updated: 3, available: 3),
         "Ready=False/KindNotServed Progressing=False/RolloutComplete Degraded=True/KindNotServed"),
        ("rollout stuck", .applied(problems: []), deployment(replicas: 3, updated: 1, available: 2, progressDeadline: true),
         "Ready=False/RolloutFailed Progressing=True/RollingOut Degraded=True/RolloutFailed"),
    ]

    @Test(arguments: table.indices)
    func conditions(_ i: Int) {
        let (name, outcome, deployment, expected) = Self.table[i]
        let s = Self.compute(outcome, deployment)
        #expect(Self.summary(s) == expected, "\(name)")
        #expect(s.observedGeneration == 4 && s.conditions.allSatisfy { $0.observedGeneration == 4 && !$0.message.isEmpty })
        #expect(s.endpoint == "http://gw.ns.svc:80")
        #expect(s.selector == "app.kubernetes.io/name=s3-encryption-gateway,s3gateway.dev/gateway=gw")
        // Every status the operator writes passes the CRD's own status schema.
        #expect(EncryptionGatewayStatus.schema.validate(s.json!, path: "status") == [])
    }

    @Test func transitionTimesMoveOnlyWhenTheStatusChanges() {
        let healthy = Self.deployment(replicas: 3, updated: 3, available: 3)
        let first = Self.compute(.applied(problems: []), healthy, now: "2026-01-01T00:00:00Z")
        let again = Self.compute(.applied(problems: []), healthy, previous: first, now: "2026-01-01T01:00:00Z")
        #expect(again.json == first.json, "an unchanged world gives the same status (no write)")
        let broken = Self.compute(.blocked(DegradedProblem(reason: "SecretNotFound", message: "x")), healthy, previous: again,
                                  now: "2026-01-01T02:00:00Z")
        #expect(broken.condition("Degraded")?.lastTransitionTime == "2026-01-01T02:00:00Z")
        #expect(broken.condition("Ready")?.lastTransitionTime == "2026-01-01T02:00:00Z")
        let stillBroken = Self.compute(.blocked(DegradedProblem(reason: "SecretKeyNotFound", message: "y")), healthy, previous: broken,
                                       now: "2026-01-01T03:00:00Z")
        #expect(stillBroken.condition("Degraded")?.lastTransitionTime == "2026-01-01T02:00:00Z", "same status, new reason")
    }
}
