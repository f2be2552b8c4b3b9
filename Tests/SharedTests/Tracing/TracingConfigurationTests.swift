@testable import Shared
import Testing

struct TracingConfigurationTests {
    @Test func offWithoutAnEndpoint() throws {
        let c = try TracingConfiguration.fromEnvironment([:], serviceName: "svc")
        #expect(!c.isEnabled)
        #expect(c.resource.first?.0 == "service.name" && c.resource.first?.1 == .string("svc"))
    }

    @Test func readsTheSpecificationVariables() throws {
        let c = try TracingConfiguration.fromEnvironment([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-tenant=t1",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
            "OTEL_SERVICE_NAME": "edge-gw", "OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored,k8s.pod.name=gw-1",
            "OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "500", "OTEL_BSP_SCHEDULE_DELAY": "250",
        ], serviceName: "svc")
        #expect(c.endpoint == "http://collector:4318/v1/traces")
        #expect(c.headers.map(\.name) == ["authorization", "x-tenant"] && c.headers[0].value == "Bearer abc")
        #expect(c.timeout == .milliseconds(2500))
        #expect(c.sampler == .parentBased(root: .traceIDRatio(0.1)))
        #expect(c.resource.first { $0.0 == "service.name" }?.1 == .string("edge-gw"))
        #expect(c.resource.contains { $0.0 == "k8s.pod.name" && $0.1 == .string("gw-1") })
        #expect(c.resource.filter { $0.0 == "service.name" }.count == 1)
        #expect(c.maxQueueSize == 100 && c.maxExportBatchSize == 100, "a batch never exceeds the queue")
        #expect(c.scheduleDelay == .milliseconds(250))
    }

    @Test func tracesEndpointIsUsedAsIsAndDisablingWins() throws {
        let traces = try TracingConfiguration.fromEnvironment(
            ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/custom"],
            serviceName: "s")
        #expect(traces.endpoint == "https://b/custom")
        for off in [["OTEL_SDK_DISABLED": "true"], ["OTEL_TRACES_EXPORTER": "none"]] {
            let c = try TracingConfiguration.fromEnvironment(off.merging(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://a"]) { a, _ in a },
                                                            serviceName: "s")
            #expect(!c.isEnabled)
        }
    }

    @Test(arguments: [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_TRACES_EXPORTER", "jaeger"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
    ])
    func badValuesNameTheirVariable(_ name: String, _ value: String) {
        #expect {
            var env = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"]
            env[name] = value
            return try TracingConfiguration.fromEnvironment(env, serviceName: "s")
        } throws: { ($0 as? ConfigurationError)?.setting == name }
    }

    @Test func malformedHeadersAreNotEchoed() {
        #expect {
            try TracingConfiguration.fromEnvironment(["OTEL_EXPORTER_OTLP_HEADERS": "secret-token-without-key"],
                                                     serviceName: "s")
        } throws: { error in
            let e = error as? ConfigurationError
            return e?.setting == "OTEL_EXPORTER_OTLP_HEADERS" && !(e?.description.contains("secret-token") ?? true)
        }
    }
}
