import Shared
import Testing

struct HealthCheckTests {
    @Test func parsesFlagsInBothForms() throws {
        #expect(try HealthCheck.parse([]) == HealthCheck.Options())
        #expect(try HealthCheck.parse(["--url", "http://127.0.0.1:9/x", "--timeout=500ms"])
                == HealthCheck.Options(url: "http://127.0.0.1:9/x", timeout: .milliseconds(500)))
        #expect(try HealthCheck.parse(["--timeout", "5s"]).timeout == .seconds(5))
    }

    @Test(arguments: [["--url"], ["--url", "ftp://x"], ["--timeout", "soon"], ["--bogus"], ["serve"]])
    func refusesBadUsage(_ arguments: [String]) {
        #expect(throws: HealthCheck.UsageError.self) { try HealthCheck.parse(arguments) }
    }

    @Test func wildcardListenAddressesAreProbedOnLoopback() throws {
        #expect(HealthCheck.localURL(listen: try ListenAddress(parsing: ":8080"), path: "/health")
                == "http://127.0.0.1:8080/health")
        #expect(HealthCheck.localURL(listen: try ListenAddress(parsing: "0.0.0.0:9000"), path: "/h")
                == "http://127.0.0.1:9000/h")
        #expect(HealthCheck.localURL(listen: try ListenAddress(parsing: "[::]:8081"), path: "/healthz")
                == "http://[::1]:8081/healthz")
        #expect(HealthCheck.localURL(listen: try ListenAddress(parsing: "[::1]:8081"), path: "/healthz")
                == "http://[::1]:8081/healthz")
        #expect(HealthCheck.localURL(listen: try ListenAddress(parsing: "10.1.2.3:80"), path: "/", scheme: "https")
                == "https://10.1.2.3:80/")
    }

    @Test func probeIsHealthyOnlyFor2xx() throws {
        let server = try startTestServer()
        defer { server.shutdown(grace: .seconds(1)) }
        let base = "http://127.0.0.1:\(server.boundPort)"
        #expect(HealthCheck.probe(url: base + "/hello", timeout: .seconds(5)) == .healthy(status: 200))
        guard case .unhealthy(let reason) = HealthCheck.probe(url: base + "/missing", timeout: .seconds(5)) else {
            Issue.record("a 404 counted as healthy")
            return
        }
        #expect(reason.contains("answered 404"))
    }

    @Test func probeOfAClosedPortIsUnhealthy() throws {
        let server = try startTestServer()
        let port = server.boundPort
        server.shutdown(grace: .seconds(1))
        guard case .unhealthy(let reason) = HealthCheck.probe(url: "http://127.0.0.1:\(port)/", timeout: .seconds(2)) else {
            Issue.record("a closed port counted as healthy")
            return
        }
        #expect(reason.contains("127.0.0.1:\(port)"))
    }
}
