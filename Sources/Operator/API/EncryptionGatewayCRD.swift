/// The EncryptionGateway CustomResourceDefinition, generated from the Swift types. `config/crd/` holds its YAML
/// (`encryption-gateway-operator crd > config/crd/s3gateway.dev_encryptiongateways.yaml`); a test fails when the
/// file and the types disagree.
enum EncryptionGatewayCRD {
    static let group = "s3gateway.dev"
    static let version = "v1alpha1"
    static let kind = "EncryptionGateway"
    static let plural = "encryptiongateways"
    static let path = "config/crd/s3gateway.dev_encryptiongateways.yaml"

    /// Longest resource name: child names add at most seven characters ("-config", "-probes") and a Service name is
    /// a 63-character DNS label.
    static let maxNameLength = 56
    static let namePattern = #"^[a-z]([-a-z0-9]*[a-z0-9])?$"#

    /// Rules on the whole resource (the schema cannot see metadata.name otherwise).
    static let nameRules: [Rule<String>] = [
        Rule(cel: "size(self.metadata.name) <= \(maxNameLength)",
             message: "metadata.name must be at most \(maxNameLength) characters (child names derive from it)") {
            $0.count <= maxNameLength },
        Rule(cel: "self.metadata.name.matches('\(namePattern)')",
             message: "metadata.name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter") {
            Schema.matches($0, namePattern) },
        // A gateway's probe Service is `<name>-probes`: another gateway of that name would have its client Service
        // there too. (`-config` needs no such rule: no other child of the same kind ends with it.)
        Rule(cel: "!self.metadata.name.endsWith('-probes')",
             message: "metadata.name must not end in '-probes' (the suffix of a gateway's probe Service)") {
            !$0.hasSuffix("-probes") },
    ]

    static var schema: Schema {
        var root = Schema(.object, description: "EncryptionGateway runs a fleet of S3 encryption gateways: a Deployment with its Service, autoscaler, disruption budget, network policy and optional Ingress and ServiceMonitor.")
        root.properties["apiVersion"] = Schema(.string, description: "APIVersion defines the versioned schema of this representation of an object.")
        root.properties["kind"] = Schema(.string, description: "Kind is a string value representing the REST resource this object represents.")
        root.properties["metadata"] = Schema(.object)
        root.properties["spec"] = EncryptionGatewaySpec.schema
        root.properties["status"] = EncryptionGatewayStatus.schema
        root.required = ["spec"]
        root.validations = nameRules.map { ($0.cel, $0.message) }
        return root
    }

    static var object: JSONValue {
        let readyStatus = #".status.conditions[?(@.type=="Ready")].status"#
        let readyReason = #".status.conditions[?(@.type=="Ready")].reason"#
        return [
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": ["name": .string("\(plural).\(group)")],
            "spec": [
                "group": .string(group),
                "names": [
                    "kind": .string(kind), "listKind": .string(kind + "List"), "plural": .string(plural),
                    "singular": "encryptiongateway", "shortNames": ["egw"], "categories": ["s3gateway"],
                ],
                "scope": "Namespaced",
                "versions": [[
                    "name": .string(version), "served": true, "storage": true,
                    "subresources": [
                        "status": [:],
                        "scale": [
                            "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        ],
                    ],
                    "additionalPrinterColumns": [
                        ["name": "Ready", "type": "string", "jsonPath": .string(readyStatus)],
                        ["name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"],
                        ["name": "Available", "type": "integer", "jsonPath": ".status.availableReplicas"],
                        ["name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"],
                        ["name": "Reason", "type": "string", "jsonPath": .string(readyReason), "priority": 1],
                        ["name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"],
                    ],
                    "schema": ["openAPIV3Schema": schema.json],
                ]],
            ],
        ]
    }

    static var yaml: String {
        "# Generated from Sources/Operator/API by `encryption-gateway-operator crd`; do not edit by hand.\n"
            + YAMLWriter.document(object)
    }
}
