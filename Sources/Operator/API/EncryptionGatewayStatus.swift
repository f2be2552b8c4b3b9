/// The observed state of an EncryptionGateway, written by the operator through the `/status` subresource.
/// docs/operator.md ("Status") documents what each condition and reason means; ArgoCD's health check reads them.
struct EncryptionGatewayStatus: APIObject {
    var observedGeneration: Int64 = 0
    var replicas = 0
    var readyReplicas = 0
    var updatedReplicas = 0
    var availableReplicas = 0
    var endpoint = ""
    var selector = ""
    var conditions: [Condition] = []

    static var description: String { "The observed state, written by the operator." }
    static var fields: [Field<Self>] {
        [
            Field("observedGeneration", \.observedGeneration, "The metadata.generation this status describes.", defaulted: false),
            Field("replicas", \.replicas, "Gateway pods that exist.", defaulted: false),
            Field("readyReplicas", \.readyReplicas, "Gateway pods that are ready.", defaulted: false),
            Field("updatedReplicas", \.updatedReplicas, "Gateway pods running the current pod template.", defaulted: false),
            Field("availableReplicas", \.availableReplicas, "Gateway pods available to clients.", defaulted: false),
            Field("endpoint", \.endpoint, "In-cluster URL of the gateway Service, e.g. http://name.namespace.svc:80."),
            Field("selector", \.selector, "Label selector of the gateway pods (for the scale subresource and kubectl)."),
            Field("conditions", \.conditions, "Ready, Progressing and Degraded.") {
                $0.listType = "map"; $0.listMapKeys = ["type"]; $0.maxItems = 8 },
        ]
    }

    func condition(_ type: String) -> Condition? { conditions.first { $0.type == type } }
}

/// A `metav1.Condition`.
struct Condition: APIObject {
    var type = ""
    var status = "Unknown"
    var observedGeneration: Int64 = 0
    var lastTransitionTime = ""
    var reason = ""
    var message = ""

    static var description: String { "One aspect of the state (metav1.Condition)." }
    static var fields: [Field<Self>] {
        [
            Field("type", \.type, "Ready, Progressing or Degraded.", required: true) { $0.maxLength = 316 },
            Field("status", \.status, "True, False or Unknown.", required: true) { $0.enumValues = ["True", "False", "Unknown"] },
            Field("observedGeneration", \.observedGeneration, "The metadata.generation the condition was computed for.", defaulted: false),
            Field("lastTransitionTime", \.lastTransitionTime, "When the status last changed.", required: true) { $0.format = "date-time" },
            Field("reason", \.reason, "A CamelCase reason a program can match on.", required: true) {
                $0.maxLength = 1024; $0.pattern = #"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"# },
            Field("message", \.message, "What happened, for a person; says what to do when something is wrong.", required: true) {
                $0.maxLength = 32768 },
        ]
    }
}

extension Int64: SchemaValue {
    static var schema: Schema {
        var s = Schema(.integer)
        s.format = "int64"
        return s
    }
    init(json: JSONValue, path: String, problems: inout [String]) { self = Int64(json.int ?? 0) }
    var json: JSONValue? { .integer(self) }
}
