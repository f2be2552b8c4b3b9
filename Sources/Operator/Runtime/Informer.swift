import Foundation
import Shared
import Synchronization

/// What to watch and how.
struct InformerConfiguration: Sendable {
    var resource: GroupVersionResource
    /// nil = all namespaces (or a cluster-scoped kind).
    var namespace: String?
    var labelSelector: String?
    /// LIST page size.
    var pageSize: Int = 500
    /// Server-side watch timeout, drawn at random per watch so that many clients do not re-watch in lockstep.
    var watchTimeoutSeconds: ClosedRange<Int> = 300...600
    var backoff: Backoff = .listWatch
    /// A watch that ends normally this fast without a single event counts as a failure (backs off),
    /// so a server that closes watches at once cannot make us spin.
    var minimumWatchDuration: Duration = .seconds(1)
    /// Applied to every object before it is cached or handed to handlers (client-go's TransformFunc), e.g. to drop
    /// what the operator never reads. The default drops `metadata.managedFields`.
    var transform: @Sendable (JSONValue) -> JSONValue = InformerConfiguration.dropManagedFields
    /// Every period, each cached object is delivered again as an update (client-go's resync), so a reconcile that
    /// was dropped or a world that changed without an event is looked at again. nil: never.
    var resyncPeriod: Duration?

    static let dropManagedFields: @Sendable (JSONValue) -> JSONValue = { object in
        var o = object
        o["metadata"]?["managedFields"] = nil
        return o
    }

    init(resource: GroupVersionResource, namespace: String? = nil, labelSelector: String? = nil) {
        self.resource = resource
        self.namespace = namespace
        self.labelSelector = labelSelector
    }
}

/// A shared informer for one kind (client-go's reflector + `sharedIndexInformer`, without resync):
/// LIST (paged) into the `store`, then WATCH from the list's resourceVersion with bookmarks. A watch that ends
/// normally is resumed from the last resourceVersion seen (objects and bookmarks advance it). 410 Gone — as the
/// HTTP status or as an in-stream ERROR event — relists and **replaces** the cache, so objects deleted while the
/// watch was down are reported deleted and changed ones updated. List and watch failures back off
/// (0.8 s doubling to 30 s; reset by a watch that worked).
///
/// Handlers must be added before `start`; they run on the informer's thread.
final class SharedInformer: Sendable {
    let configuration: InformerConfiguration
    let store: Store
    private let client: any KubeClient
    private let log: any RuntimeLog
    private let stopSignal = StopSignal()

    private struct State {
        var handlers: [ResourceEventHandler] = []
        var started = false
        var synced = false
        var lastResourceVersion = ""
        var currentWatch: CancellationToken?
        var listCount = 0
        var watchCount = 0
    }
    private let state = Mutex(State())
    private let finished = StopSignal()

    init(client: any KubeClient, configuration: InformerConfiguration,
         indexers: [String: IndexFunc] = [:], log: any RuntimeLog = SilentLog()) {
        self.client = client
        self.configuration = configuration
        self.store = Store(indexers: indexers)
        self.log = log
    }

    /// Registers a handler. Must happen before `start()`.
    func addEventHandler(_ handler: ResourceEventHandler) {
        state.withLock { s in
            precondition(!s.started, "SharedInformer: add event handlers before start()")
            s.handlers.append(handler)
        }
    }

    /// True once the first LIST is in the store and its add events were delivered.
    var hasSynced: Bool { state.withLock { $0.synced } }

    /// The resourceVersion the next watch would start from.
    var lastSyncResourceVersion: String { state.withLock { $0.lastResourceVersion } }

    /// How many LISTs (full relists) and WATCH requests were made; for tests and debugging.
    var counters: (lists: Int, watches: Int) { state.withLock { ($0.listCount, $0.watchCount) } }

    /// Starts the list/watch loop on its own thread (and the resync timer when configured).
    func start() {
        let thread = Thread { [self] in
            run()
            finished.stop()
        }
        thread.name = "informer-\(configuration.resource.resource)"
        let first = state.withLock { s -> Bool in
            guard !s.started else { return false }
            s.started = true
            return true
        }
        guard first else { return }
        thread.start()
        if let period = configuration.resyncPeriod {
            let resync = Thread { [self] in
                while stopSignal.sleep(period) { resyncOnce() }
            }
            resync.name = "resync-\(configuration.resource.resource)"
            resync.start()
        }
    }

    /// Delivers every cached object to the handlers as an update of itself (old == new, same resourceVersion).
    /// Runs on the resync thread; handlers only enqueue keys, so the order relative to watch events does not matter.
    func resyncOnce() {
        guard hasSynced else { return }
        let handlers = state.withLock { $0.handlers }
        for object in store.list() {
            for h in handlers { h.onUpdate(object, object) }
        }
    }

    /// Ends the current watch and the loop; waits up to `timeout` for the loop to exit (a LIST in flight cannot
    /// be interrupted). Returns whether it exited.
    @discardableResult
    func stop(timeout: Duration = .seconds(5)) -> Bool {
        stopSignal.stop()
        let (token, started) = state.withLock { ($0.currentWatch, $0.started) }
        token?.cancel()
        return started ? finished.wait(timeout: timeout) : true
    }

    /// Polls until synced or stopped/timeout; true when synced.
    func waitForSync(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !hasSynced {
            if stopSignal.isStopped || ContinuousClock.now >= deadline { return false }
            stopSignal.sleep(.milliseconds(20))
        }
        return true
    }

    // MARK: The loop

    private enum Next { case list, watch }

    private func run() {
        var backoff = BackoffSequence(configuration.backoff)
        var next = Next.list
        let r = configuration.resource
        while !stopSignal.isStopped {
            switch next {
            case .list:
                do {
                    try relist()
                    next = .watch
                } catch {
                    if stopSignal.isStopped { return }
                    let delay = backoff.next()
                    log.warn("informer list failed", ["resource": r.description, "error": "\(error)",
                                                     "retryIn": "\(delay)"])
                    if !stopSignal.sleep(delay) { return }
                }
            case .watch:
                switch watchOnce() {
                case .ended(let worked):
                    if worked {
                        backoff.reset()
                    } else {
                        let delay = backoff.next()
                        log.debug("informer watch ended without events", ["resource": r.description])
                        if !stopSignal.sleep(delay) { return }
                    }
                case .gone(let message):
                    // The resourceVersion is too old for the watch cache: only a fresh LIST can resync us.
                    log.info("informer watch expired; relisting", ["resource": r.description, "reason": message])
                    next = .list
                case .failed(let error):
                    if stopSignal.isStopped { return }
                    var delay = backoff.next()
                    // Honour the server's Retry-After when it asks for more patience than our backoff.
                    if case .tooManyRequests(let retryAfter?, _) = error, retryAfter > delay { delay = retryAfter }
                    log.warn("informer watch failed", ["resource": r.description, "error": "\(error)",
                                                      "retryIn": "\(delay)"])
                    if !stopSignal.sleep(delay) { return }
                    // Connection-level trouble resumes from the last resourceVersion (a 410 then relists);
                    // anything else (e.g. 403, a bad request) starts over with a LIST.
                    if !error.isRetryable { next = .list }
                }
            }
        }
    }

    private func relist() throws(KubeError) {
        let c = configuration
        let result: (items: [JSONValue], resourceVersion: String)
        do {
            result = try client.listAll(c.resource, namespace: c.namespace, labelSelector: c.labelSelector,
                                        pageSize: c.pageSize)
        } catch .gone {
            // The continue token expired between pages: fall back to one unpaged LIST, as client-go does.
            let page = try client.list(c.resource, namespace: c.namespace,
                                       options: ListOptions(labelSelector: c.labelSelector))
            result = (page.items, page.resourceVersion)
        }
        let diff = store.replace(with: result.items.map(c.transform))
        let handlers = state.withLock { s -> [ResourceEventHandler] in
            s.lastResourceVersion = result.resourceVersion
            s.listCount += 1
            return s.handlers
        }
        for object in diff.deleted { for h in handlers { h.onDelete(object) } }
        for (old, new) in diff.updated { for h in handlers { h.onUpdate(old, new) } }
        for object in diff.added { for h in handlers { h.onAdd(object) } }
        state.withLock { $0.synced = true }
        log.debug("informer listed", ["resource": c.resource.description, "items": "\(result.items.count)",
                                      "resourceVersion": result.resourceVersion,
                                      "added": "\(diff.added.count)", "updated": "\(diff.updated.count)",
                                      "deleted": "\(diff.deleted.count)"])
    }

    private enum WatchOutcome {
        /// The stream ended normally; `worked` = it delivered events or lasted long enough.
        case ended(worked: Bool)
        case gone(String)
        case failed(KubeError)
    }

    private func watchOnce() -> WatchOutcome {
        let c = configuration
        let token = CancellationToken()
        let (resourceVersion, handlers) = state.withLock { s in
            s.currentWatch = token
            s.watchCount += 1
            return (s.lastResourceVersion, s.handlers)
        }
        defer { state.withLock { $0.currentWatch = nil } }
        // stop() may have run between the loop's check and publishing the token.
        if stopSignal.isStopped { return .ended(worked: true) }
        let options = WatchOptions(labelSelector: c.labelSelector, resourceVersion: resourceVersion,
                                   timeoutSeconds: Int.random(in: c.watchTimeoutSeconds), allowWatchBookmarks: true)
        let started = ContinuousClock.now
        var events = 0
        do {
            try client.watch(c.resource, namespace: c.namespace, options: options, cancellation: token) { event in
                events += 1
                try self.apply(event, handlers: handlers)
            }
        } catch .gone(let message) {
            return .gone(message)
        } catch {
            if stopSignal.isStopped { return .ended(worked: true) }
            return .failed(error)
        }
        return .ended(worked: events > 0 || started.duration(to: .now) >= c.minimumWatchDuration)
    }

    private func apply(_ event: WatchEvent, handlers: [ResourceEventHandler]) throws(KubeError) {
        let transform = configuration.transform
        switch event {
        case .added(let raw), .modified(let raw):
            let object = transform(raw)
            let old = store.upsert(object)
            advance(to: object.resourceVersion)
            if let old {
                for h in handlers { h.onUpdate(old, object) }
            } else {
                for h in handlers { h.onAdd(object) }
            }
        case .deleted(let raw):
            let object = transform(raw)
            guard let key = ObjectKey(of: object) else { return }
            let old = store.delete(key)
            advance(to: object.resourceVersion)
            // Report the final state the server sent; fall back to the cached one.
            let final = object.metadata == nil ? (old ?? object) : object
            for h in handlers { h.onDelete(final) }
        case .bookmark(let resourceVersion):
            advance(to: resourceVersion)
        case .error(let status):
            let code = status["code"]?.int ?? 0
            let message = status["message"]?.string ?? "watch error"
            let reason = status["reason"]?.string ?? ""
            if code == 410 || reason == "Expired" || reason == "Gone" { throw .gone(message) }
            throw .server(code: code, reason: reason, message: message)
        }
    }

    private func advance(to resourceVersion: String?) {
        guard let resourceVersion, !resourceVersion.isEmpty else { return }
        state.withLock { $0.lastResourceVersion = resourceVersion }
    }
}
