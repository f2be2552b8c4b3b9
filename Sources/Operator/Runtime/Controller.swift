import Foundation
import Shared
import Synchronization

/// What one reconcile asks for next.
enum ReconcileResult: Sendable {
    /// Converged: forget the key's failure history.
    case done
    /// Look again after `after` (e.g. waiting for a rollout); not a failure.
    case requeue(after: Duration)
    /// Failed: retry with the key's exponential backoff.
    case error(any Error)

    /// The `result` label of the reconcile metrics (controller-runtime's values).
    var metricLabel: String {
        switch self {
        case .done: return "success"
        case .requeue: return "requeue_after"
        case .error: return "error"
        }
    }
}

/// Brings the world in line with one object's desired state. Called from several worker threads, but never
/// concurrently for the same key. Reads should come from informer caches; writes go to the API server.
protocol Reconciler: Sendable {
    func reconcile(_ key: ObjectKey, context: ReconcileContext) -> ReconcileResult
}

/// What a reconcile in flight needs to know about its controller: whether it may still write. Leadership loss
/// cancels it at once (a successor may already be writing); a reconciler checks before every write.
struct ReconcileContext: Sendable {
    let cancellation: CancellationToken

    var isCancelled: Bool { cancellation.isCancelled }

    /// Throws `.cancelled` when the controller stopped acting (leadership lost), so no further write is made.
    func checkNotCancelled() throws(ReconcileCancelled) {
        if cancellation.isCancelled { throw ReconcileCancelled() }
    }
}

/// A reconcile stopped because its controller may no longer write.
struct ReconcileCancelled: Error, CustomStringConvertible {
    var description: String { "reconcile cancelled: this process no longer leads" }
}

/// Observes reconciles (for `controller_runtime_reconcile_*` metrics).
protocol ReconcileMetrics: Sendable {
    func reconciled(controller: String, result: String, duration: Duration)
    func activeWorkers(controller: String, delta: Int)
}

struct NoReconcileMetrics: ReconcileMetrics {
    func reconciled(controller: String, result: String, duration: Duration) {}
    func activeWorkers(controller: String, delta: Int) {}
}

/// A work queue plus the workers that drain it into a `Reconciler` (controller-runtime's `Controller`).
/// Event handlers from informers feed `queue`; `start` launches the workers once this process may act.
final class Controller: Sendable {
    let name: String
    let queue: WorkQueue<ObjectKey>
    let workers: Int
    private let reconciler: any Reconciler
    private let metrics: any ReconcileMetrics
    private let log: any RuntimeLog
    private let tracer: Tracer
    private let running = Mutex(0)
    private let allStopped = StopSignal()
    /// Cancelled by `stopNow()`: reconciles in flight stop writing.
    private let leadership = CancellationToken()

    init(name: String, reconciler: any Reconciler, workers: Int = 1,
         queueMetrics: any WorkQueueMetrics = NoWorkQueueMetrics(),
         metrics: any ReconcileMetrics = NoReconcileMetrics(), log: any RuntimeLog = SilentLog(),
         tracer: Tracer = .disabled, rateLimit: Backoff = .perItem) {
        precondition(workers > 0, "a controller needs at least one worker")
        self.name = name
        self.reconciler = reconciler
        self.workers = workers
        self.queue = WorkQueue(rateLimit: rateLimit, metrics: queueMetrics)
        self.metrics = metrics
        self.log = log
        self.tracer = tracer
    }

    /// Starts `workers` threads taking keys until the queue shuts down.
    func start() {
        running.withLock { $0 = workers }
        for i in 0..<workers {
            let t = Thread { [self] in
                while let key = queue.get() { process(key) }
                let left = running.withLock { n -> Int in
                    n -= 1
                    return n
                }
                if left == 0 { allStopped.stop() }
            }
            t.name = "\(name)-worker-\(i)"
            t.start()
        }
        log.info("starting workers", ["controller": name, "workers": "\(workers)"])
    }

    /// Stops handing out keys and waits up to `timeout` for reconciles in flight. Returns whether they all finished.
    func drain(timeout: Duration) -> Bool {
        queue.shutDownWithDrain(timeout: timeout)
    }

    /// Stops handing out keys without waiting and cancels reconciles in flight (leadership lost: act no more).
    func stopNow() {
        leadership.cancel()
        queue.shutDown()
    }

    /// Processes one key exactly as controller-runtime's `reconcileHandler` does, inside a `reconcile` span (the
    /// root of its own trace: a reconcile has no caller; spans the reconciler starts become its children).
    func process(_ key: ObjectKey) {
        metrics.activeWorkers(controller: name, delta: 1)
        let span = tracer.startSpan("reconcile", parent: nil, attributes: [
            ("controller", .string(name)), ("k8s.namespace.name", .string(key.namespace ?? "")),
            ("s3gateway.name", .string(key.name)),
        ])
        let start = ContinuousClock.now
        let result = span.withCurrent { reconciler.reconcile(key, context: ReconcileContext(cancellation: leadership)) }
        let duration = start.duration(to: .now)
        span.setAttribute("reconcile.result", .string(result.metricLabel))
        if case .error(let error) = result { span.setStatus(.error("\(error)")) }
        span.end()
        metrics.activeWorkers(controller: name, delta: -1)
        metrics.reconciled(controller: name, result: result.metricLabel, duration: duration)
        switch result {
        case .done:
            queue.forget(key)
        case .requeue(let after):
            // A planned requeue is not a failure: reset the backoff, come back at the asked time.
            queue.forget(key)
            queue.addAfter(key, after)
        case .error(let error):
            log.error("reconciler error", ["controller": name, "key": key.description, "error": "\(error)",
                                           "retries": "\(queue.numRequeues(key))"])
            queue.addRateLimited(key)
        }
        queue.done(key)
    }
}
