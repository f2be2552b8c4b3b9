import Foundation
import Synchronization
import Testing
@testable import Operator

/// A reconciler driven by a script per key; records calls and checks that no key runs twice at once.
final class ScriptedReconciler: Reconciler, Sendable {
    struct Book {
        var calls: [String] = []
        var inFlight: Set<ObjectKey> = []
        var overlaps = 0
        var scripts: [ObjectKey: [ReconcileResult]] = [:]
    }
    let book = Mutex(Book())

    func script(_ key: ObjectKey, _ results: [ReconcileResult]) { book.withLock { $0.scripts[key] = results } }

    func reconcile(_ key: ObjectKey, context: ReconcileContext) -> ReconcileResult {
        let result = book.withLock { b -> ReconcileResult in
            if !b.inFlight.insert(key).inserted { b.overlaps += 1 }
            b.calls.append(key.description)
            guard var s = b.scripts[key], !s.isEmpty else { return .done }
            let r = s.removeFirst()
            b.scripts[key] = s
            return r
        }
        Thread.sleep(forTimeInterval: 0.001)
        book.withLock { _ = $0.inFlight.remove(key) }
        return result
    }

    var calls: [String] { book.withLock { $0.calls } }
}

struct Failure: Error {}

final class RecordingReconcileMetrics: ReconcileMetrics, Sendable {
    let results = Mutex<[String]>([])
    func reconciled(controller: String, result: String, duration: Duration) { results.withLock { $0.append(result) } }
    func activeWorkers(controller: String, delta: Int) {}
}

@Suite struct ControllerTests {
    let a = ObjectKey(namespace: "ns", name: "a")
    let b = ObjectKey(namespace: "ns", name: "b")

    @Test func errorsRetryWithBackoffUntilSuccessThenForget() {
        let r = ScriptedReconciler()
        r.script(a, [.error(Failure()), .error(Failure()), .done])
        let metrics = RecordingReconcileMetrics()
        let c = Controller(name: "t", reconciler: r, workers: 2, metrics: metrics,
                           rateLimit: Backoff(initial: .milliseconds(1), cap: .milliseconds(10)))
        c.start()
        c.queue.add(a)
        #expect(eventually { r.calls.count == 3 && c.queue.processingCount == 0 })
        #expect(c.queue.numRequeues(a) == 0)
        #expect(metrics.results.withLock { $0 } == ["error", "error", "success"])
        #expect(c.drain(timeout: .seconds(10)))
    }

    @Test func requeueAfterComesBackWithoutCountingAsFailure() {
        let r = ScriptedReconciler()
        r.script(a, [.error(Failure()), .requeue(after: .milliseconds(20)), .done])
        let c = Controller(name: "t", reconciler: r, rateLimit: Backoff(initial: .milliseconds(1), cap: .milliseconds(1)))
        c.start()
        c.queue.add(a)
        #expect(eventually { r.calls.count == 3 })
        #expect(c.queue.numRequeues(a) == 0)
        #expect(c.drain(timeout: .seconds(10)))
    }

    @Test func manyWorkersNeverReconcileOneKeyConcurrently() {
        let r = ScriptedReconciler()
        let c = Controller(name: "t", reconciler: r, workers: 4)
        c.start()
        let keys = (0..<5).map { ObjectKey(namespace: "ns", name: "k\($0)") }
        for _ in 0..<400 { c.queue.add(keys.randomElement()!) }
        #expect(eventually { c.queue.depth == 0 && c.queue.processingCount == 0 })
        #expect(r.book.withLock { $0.overlaps } == 0)
        #expect(c.drain(timeout: .seconds(10)))
    }

    @Test func stopNowStartsNoFurtherWork() {
        let r = ScriptedReconciler()
        let c = Controller(name: "t", reconciler: r)
        c.stopNow()
        c.start()
        c.queue.add(a)
        c.queue.add(b)
        Thread.sleep(forTimeInterval: 0.05)
        #expect(r.calls.isEmpty)
    }
}
