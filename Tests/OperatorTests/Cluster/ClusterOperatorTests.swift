import Foundation
import Shared
import Testing
@testable import Operator

/// Issue 9's scenarios against a real kube-apiserver 1.20.2 with etcd and the kube-controller-manager (garbage
/// collection, Deployments → ReplicaSets → Pods; no kubelet, so pods stay Pending), with the real operator binary
/// running under the least-privilege ClusterRole of config/rbac. Each test uses its own namespace.
@Suite(.timeLimit(.minutes(3))) struct ClusterOperatorTests {
    let cluster: KubeCluster
    let op: OperatorProcess
    let kube: KubeRESTClient

    init() throws {
        cluster = try KubeCluster.get()
        op = try ClusterOperator.get()
        kube = cluster.client()
    }

    static let root = APITypesTests.repoRoot.path
    static let limit: Duration = .seconds(90)

    // MARK: Helpers

    func secrets(_ ns: String, password: String = "a-long-enough-password-1") throws {
        for (name, data) in [("b", ["accessKeyID": "AK", "secretAccessKey": "SK"]), ("e", ["password": password]),
                             ("c", ["accessKeyID": "CK", "secretAccessKey": "CS"])] {
            _ = try kube.create(.secrets, namespace: ns, [
                "apiVersion": "v1", "kind": "Secret", "metadata": ["name": .string(name)],
                "stringData": .object(data.mapValues(JSONValue.string)),
            ])
        }
    }

    @discardableResult
    func gateway(_ ns: String, _ name: String = "gw", spec mutate: (inout JSONValue) -> Void = { _ in }) throws -> JSONValue {
        var spec = APITypesTests.minimalSpec
        mutate(&spec)
        return try kube.create(.encryptionGateways, namespace: ns, [
            "apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway",
            "metadata": ["name": .string(name), "namespace": .string(ns)], "spec": spec,
        ])
    }

    func get(_ r: GroupVersionResource, _ ns: String, _ name: String) -> JSONValue? {
        try? kube.getIfExists(r, ObjectKey(namespace: ns, name: name))
    }

    func condition(_ ns: String, _ name: String, _ type: String) -> JSONValue? {
        get(.encryptionGateways, ns, name)?[path: "status", "conditions"]?.array?.first { $0["type"]?.string == type }
    }

    /// Waits until the gateway's status describes its current generation.
    func observed(_ ns: String, _ name: String = "gw") -> Bool {
        eventually(Self.limit) {
            guard let gw = get(.encryptionGateways, ns, name) else { return false }
            return gw[path: "status", "observedGeneration"] != nil
                && gw[path: "status", "observedGeneration"] == gw[path: "metadata", "generation"]
        }
    }

    func events(_ ns: String) -> [JSONValue] {
        (try? kube.listAll(.events, namespace: ns).items) ?? []
    }

    func podTemplateAnnotation(_ ns: String, _ key: String) -> String? {
        get(.deployments, ns, "gw")?[path: "spec", "template", "metadata", "annotations", key]?.string
    }

    /// Ends every test: the operator never hit a permission it lacks.
    func expectNoForbidden() {
        let lines = ClusterOperator.forbidden(op)
        #expect(lines.isEmpty, "the operator was refused: \(lines.prefix(3).map(\.jsonString))")
    }

    // MARK: Scenarios

    @Test func crdAcceptedWithDefaultsAndSchemaValidation() throws {
        let ns = try cluster.namespace("crd")
        let created = try gateway(ns)
        // The API server applied the CRD's defaults (generated from the Swift types).
        #expect(created[path: "spec", "replicas"] == 3)
        #expect(created[path: "spec", "autoscaling"] == ["enabled": false, "minReplicas": 3, "maxReplicas": 10,
                                                         "targetCPUUtilizationPercentage": 70, "targetMemoryUtilizationPercentage": 80])
        #expect(created[path: "spec", "backend", "region"] == "us-east-1")
        #expect(created[path: "spec", "networkPolicy", "backendCIDRs"] == ["0.0.0.0/0", "::/0"])
        // The structural schema refuses what it can say: types, enums, patterns, bounds.
        for bad: (inout JSONValue) -> Void in [
            { $0["replicas"] = -1 }, { $0["encryption"]?["cipher"] = "rot13" }, { $0["backend"]?["endpoint"] = "ftp://x" },
            { $0["maxConnections"] = "lots" },
        ] {
            #expect(throws: KubeError.self) { try gateway(ns, "bad-\(UUID().uuidString.prefix(4).lowercased())", spec: bad) }
        }
        // Printer columns and the short name work through kubectl.
        let table = try cluster.kubectl(["get", "egw"], namespace: ns)
        #expect(table.contains("READY") && table.contains("ENDPOINT") && table.contains("gw"))
        expectNoForbidden()
    }

    @Test func samplesApplyWithKubectlAndProduceEveryChild() throws {
        let ns = try cluster.namespace("samples")
        try cluster.kubectl(["apply", "-f", Self.root + "/config/samples/minimal.yaml", "-f", Self.root + "/config/samples/full.yaml"],
                            namespace: ns)
        #expect(observed(ns, "minimal") && observed(ns, "full"))
        let minimal = try #require(get(.encryptionGateways, ns, "minimal"))
        let uid = try #require(minimal.uid)
        let expectedRef: JSONValue = ["apiVersion": "s3gateway.dev/v1alpha1", "kind": "EncryptionGateway", "name": "minimal",
                                      "uid": .string(uid), "controller": true, "blockOwnerDeletion": true]
        var pdb = GroupVersionResource.pdbs
        pdb.version = "v1beta1"  // Kubernetes 1.20 serves policy/v1beta1 only: chosen by discovery
        for (r, name) in [(GroupVersionResource.configMaps, "minimal-config"), (.deployments, "minimal"), (.services, "minimal"),
                          (pdb, "minimal"), (.networkPolicies, "minimal")] {
            let child = try #require(get(r, ns, name), "\(r.kind) \(name) missing")
            #expect(child[path: "metadata", "ownerReferences"] == [expectedRef], "\(r.kind)")
        }
        // The Deployment as the issue wants it, as stored by the real API server.
        let d = try #require(get(.deployments, ns, "minimal"))
        let pod = try #require(d[path: "spec", "template", "spec"])
        let c = try #require(pod["containers"]?[0])
        #expect(c["image"] == "test/gateway:1")
        let envNames = Set((c["env"]?.array ?? []).compactMap { $0["name"]?.string })
        #expect(envNames.isSubset(of: Set(GatewaySetting.allCases.map(\.rawValue))) && envNames.contains("ENCRYPTION_PASSWORD"))
        #expect(c[path: "securityContext", "readOnlyRootFilesystem"] == true && pod[path: "securityContext", "runAsUser"] == 65534)
        #expect(c[path: "livenessProbe", "httpGet", "path"] == "/health" && c[path: "readinessProbe", "httpGet", "path"] == "/ready")
        #expect(d[path: "spec", "replicas"] == 3)
        // The full sample: everything but the ServiceMonitor (no Prometheus operator here) is applied, and the
        // resource says so.
        var hpa = GroupVersionResource.hpas
        hpa.version = "v2beta2"
        #expect(get(hpa, ns, "full") != nil && get(.ingresses, ns, "full") != nil && get(.networkPolicies, ns, "full") != nil)
        // The full sample's connection budgets and probe port, as the real API server stored them.
        let full = try #require(get(.deployments, ns, "full"))
        let fc = try #require(full[path: "spec", "template", "spec", "containers"]?[0])
        let fullEnv = Set((fc["env"]?.array ?? []).compactMap { $0["name"]?.string })
        #expect(fullEnv.isSuperset(of: ["AUTH_TIMEOUT", "MAX_UNAUTHENTICATED_CONNECTIONS", "PROBE_ADDR"]))
        // The pull secret, the tracing variables (the pod's name first, for the attributes that expand it), as stored.
        #expect(full[path: "spec", "template", "spec", "imagePullSecrets"] == [["name": "registry-example-com"]])
        let names = (fc["env"]?.array ?? []).compactMap { $0["name"]?.string }
        #expect(fc["env"]?.array?.contains(["name": "POD_NAME", "valueFrom": ["fieldRef": ["apiVersion": "v1", "fieldPath": "metadata.name"]]]) == true)
        #expect((names.firstIndex(of: "POD_NAME") ?? .max) < (names.firstIndex(of: "OTEL_RESOURCE_ATTRIBUTES") ?? -1))
        #expect(fc["env"]?.array?.contains(["name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.1"]) == true)
        // The proxy's variables, and its port open in the NetworkPolicy, as stored.
        #expect(fc["env"]?.array?.contains(["name": "https_proxy", "value": "http://egress-proxy.network.svc:3128"]) == true)
        #expect(fc["env"]?.array?.contains(["name": "no_proxy", "value": ".svc,.cluster.local"]) == true)
        #expect(get(.networkPolicies, ns, "full")?[path: "spec", "egress"]?.array?.contains {
            $0["ports"] == [["protocol": "TCP", "port": 3128]] && $0["to"] == [["ipBlock": ["cidr": "10.96.0.0/12"]]]
        } == true)
        #expect(get(.configMaps, ns, "full-config")?[path: "data", "PROBE_ADDR"] == ":8081")
        #expect(fc["ports"]?.array?.contains { $0["name"] == "probes" && $0["containerPort"] == 8081 } == true)
        #expect(fc[path: "readinessProbe", "httpGet"] == ["path": "/ready", "port": "probes", "scheme": "HTTP"])
        #expect(fc[path: "livenessProbe", "httpGet"] == ["path": "/health", "port": "probes", "scheme": "HTTP"])
        // The full sample asks for a ServiceMonitor, which scrapes the probe listener through a Service of its own.
        #expect(get(.services, ns, "full")?[path: "spec", "ports"]?.array?.count == 1)
        #expect(get(.services, ns, "full-probes")?[path: "spec", "ports"]?.array?.map { [$0["name"], $0["port"], $0["targetPort"]] }
                == [["probes", 8081, "probes"]])
        #expect(condition(ns, "full", "Degraded")?["reason"] == "KindNotServed")
        #expect(condition(ns, "full", "Degraded")?["message"]?.string?.contains("ServiceMonitor") == true)
        #expect(condition(ns, "minimal", "Degraded")?["status"] == "False")
        // Status fields and events.
        #expect(minimal[path: "status", "endpoint"] == .string("http://minimal.\(ns).svc:80"))
        #expect(minimal[path: "status", "selector"] == "app.kubernetes.io/name=s3-encryption-gateway,s3gateway.dev/gateway=minimal")
        #expect(eventually(Self.limit) { events(ns).contains { $0["reason"] == "Applied" && $0[path: "regarding", "name"] == "minimal" } })
        #expect(eventually(Self.limit) { events(ns).contains { $0["reason"] == "KindNotServed" && $0["type"] == "Warning" } })
        // The Deployment controller made a ReplicaSet (pods stay Pending without a kubelet); the status follows it.
        #expect(eventually(Self.limit) { get(.encryptionGateways, ns, "minimal")?[path: "status", "replicas"] == 3 })
        #expect(condition(ns, "minimal", "Ready")?["reason"] == "NoAvailableReplicas")
        expectNoForbidden()
    }

    @Test func readyOnceThePodsAreReady() throws {
        let ns = try cluster.namespace("ready")
        try secrets(ns)
        try gateway(ns) { $0["replicas"] = 1 }
        #expect(observed(ns))
        // No kubelet runs pods here: report the pod ready as a kubelet would; the ReplicaSet and Deployment
        // controllers then count it available, and the operator sees the Deployment's status change.
        let pods = GroupVersionResource(group: "", version: "v1", resource: "pods", kind: "Pod")
        #expect(eventually(Self.limit) { ((try? kube.list(pods, namespace: ns, options: ListOptions()))?.items.count ?? 0) == 1 })
        var pod = try #require(try kube.list(pods, namespace: ns, options: ListOptions()).items.first)
        let now = RFC3339.format(Date())
        pod["status"] = ["phase": "Running", "conditions": [
            ["type": "Ready", "status": "True", "lastTransitionTime": .string(now)],
            ["type": "ContainersReady", "status": "True", "lastTransitionTime": .string(now)],
        ]]
        _ = try kube.updateStatus(pods, pod)
        #expect(eventually(Self.limit) { condition(ns, "gw", "Ready")?["status"] == "True" })
        #expect(condition(ns, "gw", "Ready")?["reason"] == "Available")
        #expect(eventually(Self.limit) { condition(ns, "gw", "Progressing")?["reason"] == "RolloutComplete" })
        #expect(get(.encryptionGateways, ns, "gw")?[path: "status", "availableReplicas"] == 1)
        #expect(eventually(Self.limit) { events(ns).contains { $0["reason"] == "Available" } })
        expectNoForbidden()
    }

    @Test func specUpdateUpdatesChildrenAndIsObserved() throws {
        let ns = try cluster.namespace("update")
        try secrets(ns)
        try gateway(ns)
        #expect(observed(ns))
        let configHash = podTemplateAnnotation(ns, Builders.configHashAnnotation)
        _ = try kube.mergePatch(.encryptionGateways, ObjectKey(namespace: ns, name: "gw"),
                                ["spec": ["logLevel": "debug", "replicas": 5, "podDisruptionBudget": ["enabled": false],
                                          "service": ["type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"],
                                                      "externalTrafficPolicy": "Local"]]])
        #expect(eventually(Self.limit) { get(.encryptionGateways, ns, "gw")?[path: "status", "observedGeneration"] == 2 })
        #expect(eventually(Self.limit) { get(.configMaps, ns, "gw-config")?[path: "data", "LOG_LEVEL"] == "debug" })
        #expect(eventually(Self.limit) { get(.deployments, ns, "gw")?[path: "spec", "replicas"] == 5 })
        #expect(eventually(Self.limit) { podTemplateAnnotation(ns, Builders.configHashAnnotation) != configHash })
        // The Service became a load balancer limited to the listed clients, keeping their addresses, as the API server
        // stored it.
        #expect(eventually(Self.limit) {
            let spec = get(.services, ns, "gw")?["spec"]
            return spec?["type"] == "LoadBalancer" && spec?["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
                && spec?["externalTrafficPolicy"] == "Local"
        })
        // A feature switched off loses its child.
        var pdb = GroupVersionResource.pdbs
        pdb.version = "v1beta1"
        #expect(eventually(Self.limit) { get(pdb, ns, "gw") == nil })
        // Scraping the probe listener brings its own Service (even where no Prometheus operator serves the
        // ServiceMonitor itself), and switching the ServiceMonitor off takes that Service away again.
        _ = try kube.mergePatch(.encryptionGateways, ObjectKey(namespace: ns, name: "gw"),
                                ["spec": ["probes": ["port": 8081], "serviceMonitor": ["enabled": true]]])
        #expect(eventually(Self.limit) { get(.services, ns, "gw-probes")?[path: "spec", "ports"]?[0]?["port"] == 8081 })
        _ = try kube.mergePatch(.encryptionGateways, ObjectKey(namespace: ns, name: "gw"), ["spec": ["serviceMonitor": ["enabled": false]]])
        #expect(eventually(Self.limit) { get(.services, ns, "gw-probes") == nil })
        #expect(get(.services, ns, "gw") != nil)
        // The operator never writes the spec: the only manager of spec fields is the test's own client.
        let managers = (get(.encryptionGateways, ns, "gw")?[path: "metadata", "managedFields"]?.array ?? [])
            .filter { $0["manager"]?.string == Builders.fieldManager }
        #expect(!managers.isEmpty && managers.allSatisfy { $0[path: "fieldsV1", "f:spec"] == nil && $0[path: "fieldsV1", "f:status"] != nil },
                "\(managers.map(\.jsonString))")
        expectNoForbidden()
    }

    @Test func driftIsCorrectedByTheChildWatch() throws {
        let ns = try cluster.namespace("drift")
        try secrets(ns)
        try gateway(ns)
        #expect(observed(ns))
        let service = try #require(get(.services, ns, "gw"))
        try kube.delete(.services, ObjectKey(namespace: ns, name: "gw"), propagation: nil)
        #expect(eventually(Self.limit) { get(.services, ns, "gw").map { $0.uid != service.uid } ?? false }, "Service recreated")
        _ = try kube.mergePatch(.deployments, ObjectKey(namespace: ns, name: "gw"), ["spec": ["replicas": 9]])
        #expect(eventually(Self.limit) { get(.deployments, ns, "gw")?[path: "spec", "replicas"] == 3 }, "edit reverted")
        _ = try kube.mergePatch(.configMaps, ObjectKey(namespace: ns, name: "gw-config"), ["data": ["LOG_LEVEL": "error"]])
        #expect(eventually(Self.limit) { get(.configMaps, ns, "gw-config")?[path: "data", "LOG_LEVEL"] == "info" })
        expectNoForbidden()
    }

    @Test func secretChangeRollsThePodsAndUnrelatedKeysDoNot() throws {
        let ns = try cluster.namespace("secret")
        try secrets(ns)
        try gateway(ns)
        #expect(observed(ns))
        #expect(eventually(Self.limit) { podTemplateAnnotation(ns, Builders.secretHashAnnotation) != nil })
        // Let the Deployment controller settle (its status changes are reflected in the gateway's status).
        #expect(eventually(Self.limit) {
            let s = get(.encryptionGateways, ns, "gw")?["status"]
            return s?["replicas"] == 3 && s?["updatedReplicas"] == 3
        })
        let before = try #require(podTemplateAnnotation(ns, Builders.secretHashAnnotation))
        // A key the gateway does not use: a reconcile runs (the Secret is referenced) and writes nothing.
        let logsBefore = op.logs("reconciled").count
        _ = try kube.mergePatch(.secrets, ObjectKey(namespace: ns, name: "e"), ["stringData": ["unrelated": "x"]])
        let key = "\(ns)/gw"
        #expect(eventually(Self.limit) { op.logs("reconciled").dropFirst(logsBefore).contains { $0["key"]?.string == key } })
        let idle = op.logs("reconciled").dropFirst(logsBefore).filter { $0["key"]?.string == key }
        #expect(idle.allSatisfy { $0["writes"] == "0" }, "\(idle.map(\.jsonString))")
        #expect(podTemplateAnnotation(ns, Builders.secretHashAnnotation) == before)
        // The password changes: new hash on the pod template, so the Deployment rolls.
        _ = try kube.mergePatch(.secrets, ObjectKey(namespace: ns, name: "e"), ["stringData": ["password": "another-long-password-2"]])
        #expect(eventually(Self.limit) { podTemplateAnnotation(ns, Builders.secretHashAnnotation) != before })
        expectNoForbidden()
    }

    @Test func missingSecretDegradesThenRecovers() throws {
        let ns = try cluster.namespace("missing")
        try gateway(ns)
        #expect(observed(ns))
        #expect(condition(ns, "gw", "Degraded")?["reason"] == "SecretNotFound")
        #expect(condition(ns, "gw", "Degraded")?["message"]?.string?.contains("Secret \(ns)/") == true)
        #expect(condition(ns, "gw", "Ready")?["status"] == "False")
        #expect(eventually(Self.limit) { events(ns).contains { $0["reason"] == "SecretNotFound" && $0["type"] == "Warning" } })
        // Nothing half-applied.
        #expect(get(.deployments, ns, "gw") == nil && get(.configMaps, ns, "gw-config") == nil)
        // No crash loop: the operator keeps running and does not retry on a timer (the Secret watch brings it back).
        try secrets(ns)
        #expect(eventually(Self.limit) { condition(ns, "gw", "Degraded")?["status"] == "False" })
        #expect(get(.deployments, ns, "gw") != nil)
        #expect(eventually(Self.limit) { events(ns).contains { $0["reason"] == "Recovered" } })
        #expect(op.isRunning)
        expectNoForbidden()
    }

    @Test func invalidSpecThatOnly1_25WouldRefuseIsReported() throws {
        let ns = try cluster.namespace("cel")
        try secrets(ns)
        // Kubernetes 1.20 drops the CEL rule, so the API server accepts this; the operator applies the rule itself.
        try gateway(ns) { $0["autoscaling"] = ["enabled": true, "minReplicas": 8, "maxReplicas": 2] }
        #expect(observed(ns))
        #expect(condition(ns, "gw", "Degraded")?["reason"] == "InvalidSpec")
        #expect(condition(ns, "gw", "Degraded")?["message"]?.string?.contains("minReplicas must not exceed maxReplicas") == true)
        #expect(get(.deployments, ns, "gw") == nil)
        expectNoForbidden()
    }

    @Test func autoscalingLeavesReplicasToTheHPA() throws {
        let ns = try cluster.namespace("hpa")
        try secrets(ns)
        try gateway(ns) { $0["autoscaling"] = ["enabled": true, "minReplicas": 2, "maxReplicas": 6] }
        #expect(observed(ns))
        var hpa = GroupVersionResource.hpas
        hpa.version = "v2beta2"  // what discovery finds on 1.20
        let h = try #require(get(hpa, ns, "gw"))
        #expect(h[path: "spec", "minReplicas"] == 2 && h[path: "spec", "scaleTargetRef", "name"] == "gw")
        // The operator's applied configuration of the Deployment has no replicas field.
        let d = try #require(get(.deployments, ns, "gw"))
        let mine = (d[path: "metadata", "managedFields"]?.array ?? []).first {
            $0["manager"]?.string == Builders.fieldManager && $0["operation"] == "Apply"
        }
        #expect(mine?[path: "fieldsV1", "f:spec"] != nil && mine?[path: "fieldsV1", "f:spec", "f:replicas"] == nil)
        // Whoever scales the Deployment (the HPA, here a person), the operator does not fight it.
        _ = try kube.mergePatch(.deployments, ObjectKey(namespace: ns, name: "gw"), ["spec": ["replicas": 4]])
        let logsBefore = op.logs("reconciled").count
        _ = try kube.mergePatch(.encryptionGateways, ObjectKey(namespace: ns, name: "gw"), ["metadata": ["labels": ["touch": "1"]]])
        #expect(eventually(Self.limit) { op.logs("reconciled").dropFirst(logsBefore).contains { $0["key"]?.string == "\(ns)/gw" } })
        #expect(eventually(Self.limit) { get(.deployments, ns, "gw")?[path: "metadata", "labels", "touch"] == "1" })
        #expect(get(.deployments, ns, "gw")?[path: "spec", "replicas"] == 4)
        // Turning autoscaling off removes the HPA and gives the replica count back to the spec.
        _ = try kube.mergePatch(.encryptionGateways, ObjectKey(namespace: ns, name: "gw"), ["spec": ["autoscaling": ["enabled": false]]])
        #expect(eventually(Self.limit) { get(hpa, ns, "gw") == nil })
        #expect(eventually(Self.limit) { get(.deployments, ns, "gw")?[path: "spec", "replicas"] == 3 })
        expectNoForbidden()
    }

    @Test func deletingTheResourceGarbageCollectsItsChildren() throws {
        let ns = try cluster.namespace("gc")
        try secrets(ns)
        try gateway(ns)
        #expect(observed(ns))
        #expect(get(.deployments, ns, "gw") != nil)
        try kube.delete(.encryptionGateways, ObjectKey(namespace: ns, name: "gw"), propagation: .background)
        // The kube-controller-manager's garbage collector removes them through the owner references.
        #expect(eventually(Self.limit) {
            get(.deployments, ns, "gw") == nil && get(.services, ns, "gw") == nil && get(.configMaps, ns, "gw-config") == nil
                && get(.networkPolicies, ns, "gw") == nil
        })
        expectNoForbidden()
    }

    @Test func operatorRunsUnderTheLeastPrivilegeRole() throws {
        // The binary runs with the ServiceAccount identity bound by config/rbac; it took its Lease and its log has no
        // refusal (every other test checks the same after exercising a scenario).
        #expect(!op.logs("successfully acquired lease").isEmpty)
        let lease = try kube.get(.leases, ObjectKey(namespace: "s3gateway-system", name: "encryption-gateway-operator.s3gateway.dev"))
        #expect(lease[path: "spec", "holderIdentity"]?.string == op.identity)
        // The role is no broader than needed: the identity cannot read pods or write Secrets.
        let asOperator = cluster.client(token: cluster.operatorToken)
        #expect(throws: KubeError.self) { _ = try asOperator.list(.init(group: "", version: "v1", resource: "pods", kind: "Pod"), namespace: nil, options: ListOptions()) }
        #expect(throws: KubeError.self) {
            _ = try asOperator.create(.secrets, namespace: "default", ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": "x"]])
        }
        expectNoForbidden()
    }
}
