extension Builders {
    /// autoscaling/v2 and v2beta2 share this shape; the version comes from discovery.
    static func horizontalPodAutoscaler(_ s: Snapshot) -> JSONValue? {
        let a = s.spec.autoscaling
        guard a.enabled else { return nil }
        var metrics: [JSONValue] = []
        for (name, target) in [("cpu", a.targetCPUUtilizationPercentage), ("memory", a.targetMemoryUtilizationPercentage)] where target > 0 {
            metrics.append(["type": "Resource", "resource": [
                "name": .string(name), "target": ["type": "Utilization", "averageUtilization": .integer(Int64(target))],
            ]])
        }
        return object(s.capabilities.hpa ?? .hpas, metadata: metadata(s, name: s.resource.name), [
            "spec": [
                "scaleTargetRef": ["apiVersion": "apps/v1", "kind": "Deployment", "name": .string(s.resource.name)],
                "minReplicas": .integer(Int64(a.minReplicas)),
                "maxReplicas": .integer(Int64(a.maxReplicas)),
                "metrics": .array(metrics),
            ],
        ])
    }

    /// policy/v1 and v1beta1 share this shape; the version comes from discovery.
    static func podDisruptionBudget(_ s: Snapshot) -> JSONValue? {
        let p = s.spec.podDisruptionBudget
        guard p.enabled else { return nil }
        var spec: [String: JSONValue] = ["selector": ["matchLabels": stringMap(selectorLabels(s.resource))]]
        if let min = p.minAvailable {
            spec["minAvailable"] = min.json
        } else {
            spec["maxUnavailable"] = (p.maxUnavailable ?? .int(1)).json
        }
        return object(s.capabilities.pdb ?? .pdbs, metadata: metadata(s, name: s.resource.name), ["spec": .object(spec)])
    }
}
