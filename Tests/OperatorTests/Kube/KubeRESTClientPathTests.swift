import Testing
@testable import Operator

@Suite struct KubeRESTClientPathTests {
    let kube = KubeRESTClient(config: KubeConfig(server: "https://h:6443/", namespace: "ops"))

    @Test func pathsForCoreGroupedAndClusterScopedResources() {
        #expect(kube.config.server == "https://h:6443")
        #expect(kube.path(.configMaps, namespace: "a", name: "b") == "/api/v1/namespaces/a/configmaps/b")
        #expect(kube.path(.deployments, namespace: "a", name: nil, listing: true) == "/apis/apps/v1/namespaces/a/deployments")
        // nil namespace: all namespaces for lists, the configured namespace for objects.
        #expect(kube.path(.deployments, namespace: nil, name: nil, listing: true) == "/apis/apps/v1/deployments")
        #expect(kube.path(.leases, namespace: nil, name: "lock") == "/apis/coordination.k8s.io/v1/namespaces/ops/leases/lock")
        #expect(kube.path(.encryptionGateways, namespace: "x", name: "g", subresource: "status")
                == "/apis/s3gateway.dev/v1alpha1/namespaces/x/encryptiongateways/g/status")
        #expect(kube.path(.namespaces, namespace: "ignored", name: "kube-system") == "/api/v1/namespaces/kube-system")
    }

    @Test func queryValuesArePercentEncoded() {
        #expect(KubeRESTClient.query([]) == "")
        #expect(KubeRESTClient.query([("labelSelector", "app=gw,tier!=db"), ("continue", "a+b/c==")])
                == "?labelSelector=app%3Dgw%2Ctier%21%3Ddb&continue=a%2Bb%2Fc%3D%3D")
        #expect(KubeRESTClient.escape("ü ~._-") == "%C3%BC%20~._-")
    }
}
