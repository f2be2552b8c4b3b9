import Testing
@testable import Operator

@Suite struct SpecAdvisoriesTests {
    /// A spec with `backend` as its endpoint, the proxy's exclusion list (nil: no proxy) and optional key service and
    /// collector URLs.
    static func spec(backend: String, noProxy: [String]?, vault: String? = nil, kms: String? = nil,
                     collector: String? = nil) -> EncryptionGatewaySpec {
        var spec = EncryptionGatewaySpec()
        spec.backend.endpoint = backend
        if let noProxy { spec.proxy = ProxySpec(url: "http://proxy.corp:3128", noProxy: noProxy) }
        if let vault { spec.encryption.vault = VaultSpec(address: vault) }
        if let kms { spec.encryption.awsKMS = AWSKMSSpec(endpoint: kms) }
        if let collector { spec.tracing = TracingSpec(endpoint: collector) }
        return spec
    }

    @Test(arguments: [
        // Each: backend URL, noProxy (nil: no proxy), the fields warned about with the entry suggested.
        ("http://rook-ceph-rgw.rook-ceph.svc", nil, []),
        ("http://rook-ceph-rgw.rook-ceph.svc", [], ["spec.backend.endpoint|.svc"]),
        ("http://rook-ceph-rgw.rook-ceph.svc:8080", [".svc"], []),
        ("http://rook-ceph-rgw.rook-ceph.svc", ["svc"], []),
        ("http://rook-ceph-rgw.rook-ceph.svc", ["rook-ceph-rgw.rook-ceph.svc"], []),
        ("http://rook-ceph-rgw.rook-ceph.svc", ["*"], []),
        ("http://rook-ceph-rgw.rook-ceph.svc", ["ceph.svc"], ["spec.backend.endpoint|.svc"]),
        ("https://RGW.Ceph.SVC.cluster.local./", [".svc"], ["spec.backend.endpoint|.svc.cluster.local"]),
        ("https://rgw.ceph.svc.cluster.local", [".cluster.local"], []),
        ("https://rgw.ceph.svc.corp.example", [], ["spec.backend.endpoint|.svc.corp.example"]),
        ("http://minio:9000", [".svc"], ["spec.backend.endpoint|minio"]),
        ("http://minio:9000", ["minio"], []),
        ("http://localhost:9000", [], ["spec.backend.endpoint|localhost"]),
        ("http://127.0.0.1:9000", ["127.0.0.0/8"], []),
        ("http://127.0.0.1:9000", [".svc"], ["spec.backend.endpoint|127.0.0.1"]),
        // Outside the cluster, or an address the operator cannot place: nothing to say.
        ("https://s3.eu-west-1.amazonaws.com", [], []),
        ("http://10.96.0.15:9000", [], []),
        ("http://[fd00::15]:9000", [], []),
    ] as [(String, [String]?, [String])])
    func backendInsideTheCluster(backend: String, noProxy: [String]?, warned: [String]) {
        let notes = SpecAdvisories.proxiedClusterHosts(Self.spec(backend: backend, noProxy: noProxy))
        #expect(notes.count == warned.count, "\(notes)")
        for (note, expected) in zip(notes, warned) {
            let parts = expected.split(separator: "|").map(String.init)
            #expect(note.hasPrefix(parts[0] + " names "), "\(note)")
            #expect(note.hasSuffix("Add \(parts[1]) to spec.proxy.noProxy."), "\(note)")
        }
    }

    @Test func everyProxiedDestinationIsChecked() {
        let spec = Self.spec(backend: "https://s3.example.com", noProxy: ["vault.security.svc"],
                             vault: "https://vault.security.svc:8200", kms: "http://localstack:4566",
                             collector: "http://otel-collector.monitoring.svc.cluster.local:4318")
        let notes = SpecAdvisories.proxiedClusterHosts(spec)
        #expect(notes.map { $0.prefix { $0 != " " } } == ["spec.encryption.awsKMS.endpoint", "spec.tracing.endpoint"])
        #expect(notes[0].contains("localstack, a Service in the gateway's namespace"))
        #expect(notes[1].contains("otel-collector.monitoring.svc.cluster.local, a Service of the cluster"))
        #expect(SpecAdvisories.all(spec).allSatisfy { $0.reason == "ProxiedClusterHost" })
    }
}
