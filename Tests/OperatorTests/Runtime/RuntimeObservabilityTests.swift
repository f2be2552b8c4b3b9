import Foundation
import Shared
import Testing
@testable import Operator

@Suite struct RuntimeObservabilityTests {
    @Test func reconcileQueueRestAndLeaderMetricsAreExposed() {
        let metrics = OperatorMetrics()
        let r = ScriptedReconciler()
        let key = ObjectKey(namespace: "ns", name: "a")
        r.script(key, [.error(Failure()), .done])
        let c = Controller(name: "gw", reconciler: r, queueMetrics: metrics.queue(named: "gw"), metrics: metrics,
                           rateLimit: Backoff(initial: .milliseconds(1), cap: .milliseconds(1)))
        c.start()
        c.queue.add(key)
        #expect(eventually { r.calls.count == 2 && c.queue.processingCount == 0 })
        #expect(c.drain(timeout: .seconds(10)))
        metrics.requestFinished(verb: "LIST", resource: "configmaps", code: "200", duration: .milliseconds(3))
        metrics.requestFinished(verb: "WATCH", resource: "configmaps", code: "<error>", duration: .seconds(1))
        metrics.leaderStatus(name: "lock", isLeader: true)
        let text = metrics.exposition()
        for line in [
            #"controller_runtime_reconcile_total{controller="gw",result="error"} 1"#,
            #"controller_runtime_reconcile_total{controller="gw",result="success"} 1"#,
            #"controller_runtime_reconcile_errors_total{controller="gw"} 1"#,
            #"workqueue_adds_total{name="gw"} 2"#,
            #"workqueue_retries_total{name="gw"} 1"#,
            #"workqueue_depth{name="gw"} 0"#,
            #"rest_client_requests_total{verb="LIST",code="200"} 1"#,
            #"rest_client_requests_total{verb="WATCH",code="<error>"} 1"#,
            #"leader_election_master_status{name="lock"} 1"#,
        ] {
            #expect(text.contains(line + "\n"), "missing \(line)")
        }
        #expect(text.contains(#"controller_runtime_reconcile_time_seconds_count{controller="gw",result="success"} 1"#))
        #expect(text.contains(#"workqueue_queue_duration_seconds_count{name="gw"} 2"#))
        #expect(text.contains(#"workqueue_work_duration_seconds_count{name="gw"} 2"#))
    }

    @Test func runtimeLogWritesJSONLinesThroughTheLogger() throws {
        let sink = LogSink(capturing: ())
        let log = LoggerRuntimeLog(logger: Logger(level: .info, sink: sink))
        log.debug("hidden")
        log.warn("watch failed", ["resource": "configmaps.v1", "error": "quote \" and\nnewline"])
        let lines = sink.capturedLines
        #expect(lines.count == 1)
        let v = try JSONValue.parse(try #require(lines.first))
        #expect(v["msg"] == "watch failed")
        #expect(v["level"] == "warn")
        #expect(v["resource"] == "configmaps.v1")
        #expect(v["error"] == "quote \" and\nnewline")
    }
}
