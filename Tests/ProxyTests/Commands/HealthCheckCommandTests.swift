@testable import Proxy
import Testing

struct HealthCheckCommandTests {
    @Test func probesTheListenAddressOnLoopback() throws {
        #expect(try HealthCheckCommand.defaultURL(environment: [:]) == "http://127.0.0.1:8080/health")
        #expect(try HealthCheckCommand.defaultURL(environment: ["LISTEN_ADDR": "[::]:9000"]) == "http://[::1]:9000/health")
        #expect(try HealthCheckCommand.defaultURL(environment: ["LISTEN_ADDR": ":8443", "TLS_CERT_FILE": "/tls/tls.crt"])
                == "https://127.0.0.1:8443/health")
    }

    @Test func invalidListenAddressIsAUsageError() {
        #expect(throws: (any Error).self) { try HealthCheckCommand.defaultURL(environment: ["LISTEN_ADDR": "8080"]) }
    }
}
