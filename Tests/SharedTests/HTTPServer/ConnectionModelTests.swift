import Foundation
import Glibc
import Synchronization
import Testing
@testable import Shared

/// A handler whose `/block` requests wait until the test opens the gate; `/auth` marks the connection
/// authenticated (what the S3 layer does after a signature verifies); `/health` is the probe.
final class GatedHandler: HTTPRequestHandler {
    let entered = Atomic<Int>(0)
    /// `/block` requests let go (by `open`, or after 20 s).
    let released = Atomic<Int>(0)
    /// The paths of the requests handled, in the order their handling began.
    let served = Mutex<[String]>([])
    private let gate = Mutex<Bool>(false)

    func open() { gate.withLock { $0 = true } }

    func handle(_ head: HTTPRequestHead, body: RequestBody, response: ResponseWriter, context: RequestContext) throws {
        served.withLock { $0.append(head.rawPath) }
        switch head.rawPath {
        case "/block":
            entered.add(1, ordering: .sequentiallyConsistent)
            let until = ContinuousClock.now + .seconds(20)
            while !gate.withLock({ $0 }) && ContinuousClock.now < until { usleep(2_000) }
            released.add(1, ordering: .sequentiallyConsistent)
            try response.respond(status: 200, body: Array("released".utf8))
        case "/auth":
            context.connection.markAuthenticated()
            try response.respond(status: 200, body: Array("signed".utf8))
        case "/health":
            try response.respond(status: 200, body: Array("ok".utf8))
        case "/thread":
            try response.respond(status: 200, body: Array(KernelThreadName.current().utf8))
        case "/forbidden":
            try response.respond(status: 403, body: Array("denied".utf8))
        default:
            try response.respond(status: 404)
        }
    }
}

/// Set once when something running on another thread has finished.
final class DoneFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// Starts `server.shutdown(grace:)` on a thread of its own (it blocks until the drain is over) and
/// returns the flag it sets when it has returned.
func shutdownInBackground(_ server: HTTPServer, grace: Duration) -> DoneFlag {
    let done = DoneFlag()
    let stopper = Thread {
        server.shutdown(grace: grace)
        done.value.store(true, ordering: .sequentiallyConsistent)
    }
    stopper.start()
    return done
}

/// The end every drain test checks, once the connections it closes at once are closed: the shutdown is still
/// waiting for `busy`'s held request; once released, that request is answered 200 with `Connection: close`
/// and the shutdown returns.
func expectDrainFinishesHeldRequest(_ busy: RawHTTPClient, handler: GatedHandler, done: DoneFlag,
                                    sourceLocation: SourceLocation = #_sourceLocation) throws {
    let finishedEarly = done.value.load(ordering: .sequentiallyConsistent)
    #expect(!finishedEarly, sourceLocation: sourceLocation)
    handler.open()
    let r = try #require(busy.readResponse(), sourceLocation: sourceLocation)
    #expect(r.status == 200, sourceLocation: sourceLocation)
    #expect(r.headers["connection"] == "close", sourceLocation: sourceLocation)
    #expect(waitUntil { done.value.load(ordering: .sequentiallyConsistent) }, sourceLocation: sourceLocation)
}

func waitUntil(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(2_000)
    }
    return condition()
}

/// A started server on an ephemeral loopback port with `handler`, 10 s timeouts and `/health` as the probe.
func startGatedServer(_ handler: GatedHandler, observer: ServerTestObserver? = nil,
                      configure: (inout HTTPServerConfiguration) -> Void) throws -> HTTPServer {
    var config = HTTPServerConfiguration(listenAddress: "127.0.0.1:0", headerTimeout: .seconds(10),
                                         idleTimeout: .seconds(10), bodyIdleTimeout: .seconds(10))
    config.isProbe = { $0.rawPath == "/health" }
    configure(&config)
    let server = try HTTPServer(configuration: config, handler: handler, observer: observer)
    try server.start()
    return server
}

extension RawHTTPClient {
    /// Sends the request `GatedHandler` treats as signed and reads its answer: true when it was a 200. The
    /// first one settles the connection (it leaves the unauthenticated budget and, once kept alive, waits
    /// in the ready set).
    func sendSigned() -> Bool {
        send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
        return readResponse()?.status == 200
    }
}

@Suite(.serialized) struct ConnectionModelTests {
    func start(_ handler: GatedHandler, observer: ServerTestObserver? = nil,
               configure: (inout HTTPServerConfiguration) -> Void) throws -> HTTPServer {
        try startGatedServer(handler, observer: observer, configure: configure)
    }

    @Test func probeIsAnsweredWhileEveryOtherSlotAndWorkerIsHeld() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.maxConnections = 3
            $0.maxWorkerThreads = 2
        }
        defer {
            handler.open()
            server.shutdown(grace: .seconds(2))
        }
        // Two requests hold both workers; a third connection holds the last slot, its request queued.
        var holders: [RawHTTPClient] = []
        for _ in 0..<3 {
            let c = try connectRaw(server)
            c.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
            holders.append(c)
        }
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 2 })
        #expect(server.workerThreads.busy == 2)

        // Every slot is taken: a probe is still answered, on a connection beyond the limit...
        let probe = try connectRaw(server)
        probe.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        let answer = try #require(probe.readResponse())
        #expect(answer.status == 200)
        #expect(answer.body == Array("ok".utf8))
        #expect(answer.headers["connection"] == "close")
        // ...while anything else there is refused.
        let other = try connectRaw(server)
        other.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(other.readResponse()?.status == 503)
        #expect(handler.entered.load(ordering: .sequentiallyConsistent) == 2)

        handler.open()
        for c in holders { #expect(c.readResponse()?.body == Array("released".utf8)) }
    }

    @Test func probeOnAnOpenConnectionSkipsTheQueueOfABusyPool() throws {
        let handler = GatedHandler()
        let server = try start(handler) { $0.maxWorkerThreads = 1 }
        defer {
            handler.open()
            server.shutdown(grace: .seconds(2))
        }
        let busy = try connectRaw(server)
        busy.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        let probe = try connectRaw(server)
        for _ in 0..<3 {
            probe.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(probe.readResponse()?.status == 200)  // kept alive: a slot is free
        }
    }

    @Test func idleAnonymousSocketsCannotStarveSignedRequests() throws {
        let handler = GatedHandler()
        let observer = ServerTestObserver()
        let server = try start(handler, observer: observer) {
            $0.maxConnections = 8
            $0.maxUnauthenticatedConnections = 4
            $0.unauthenticatedTimeout = .seconds(30)
        }
        defer { server.shutdown(grace: .seconds(2)) }
        // A signed client first, kept alive.
        let signed = try connectRaw(server)
        #expect(signed.sendSigned())

        // Fifty anonymous sockets that never send anything.
        var squatters: [RawHTTPClient] = []
        for _ in 0..<50 { squatters.append(try connectRaw(server)) }
        #expect(waitUntil { observer.opened.load(ordering: .sequentiallyConsistent) == 51 })
        // The signed one plus at most 4 unauthenticated (an evicted one closes on its own loop).
        #expect(waitUntil { server.activeConnections <= 5 })

        // Signed clients keep getting in, on new connections and on the kept-alive one.
        for _ in 0..<5 {
            let c = try connectRaw(server)
            c.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(c.readResponse()?.body == Array("signed".utf8))
            #expect(signed.sendSigned())
        }
        let evicted = observer.rejections.withLock { $0.filter { $0 == .evictedUnauthenticated }.count }
        #expect(evicted >= 46)
        // Most squatters found their connection closed.
        #expect(squatters.filter { $0.isClosedByPeer() }.count >= 46)
    }

    @Test func connectionsThatDoNotAuthenticateInTimeAreClosed() throws {
        let handler = GatedHandler()
        let observer = ServerTestObserver()
        let server = try start(handler, observer: observer) {
            $0.unauthenticatedTimeout = .milliseconds(300)
            $0.maxUnauthenticatedConnections = 100
        }
        defer { server.shutdown(grace: .seconds(2)) }
        let silent = try connectRaw(server)
        // Answered requests that do not authenticate do not extend the deadline.
        let chatty = try connectRaw(server)
        chatty.send("GET /forbidden HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(chatty.readResponse()?.status == 403)
        let signed = try connectRaw(server)
        #expect(signed.sendSigned())

        #expect(silent.isClosedByPeer())
        #expect(chatty.isClosedByPeer())
        #expect(observer.rejections.withLock { $0.filter { $0 == .authenticationTimeout }.count } == 2)
        // The authenticated connection outlives the deadline.
        usleep(400_000)
        #expect(signed.sendSigned())
    }

    @Test func threadsCarryTheirRoleAsKernelName() throws {
        let handler = GatedHandler()
        let server = try start(handler) { _ in }
        defer { server.shutdown(grace: .seconds(2)) }
        let c = try connectRaw(server)
        c.send("GET /thread HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.body == Array("http-worker".utf8))
        // The loop thread is named too: one of the process's threads is "http-loop".
        let names = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").map {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) ?? ""
        }
        #expect(names.contains("http-loop\n"))
    }

    @Test func aSlowClientDoesNotHoldAWorker() throws {
        let handler = GatedHandler()
        let server = try start(handler) { $0.maxWorkerThreads = 1 }
        defer { server.shutdown(grace: .seconds(2)) }
        // Half a head, then nothing (slowloris); and an idle keep-alive connection.
        let slow = try connectRaw(server)
        slow.send("GET /auth HTTP/1.1\r\nHo")
        let idle = try connectRaw(server)
        #expect(idle.sendSigned())
        // The single worker serves everybody else meanwhile.
        for _ in 0..<20 {
            let c = try connectRaw(server)
            #expect(c.sendSigned())
        }
        #expect(server.workerThreads.alive == 1)
        // The slow one finishes eventually and is served too.
        slow.send("st: t\r\n\r\n")
        #expect(slow.readResponse()?.status == 200)
    }

    /// A handler that blocks holds its thread; beyond the eager threads the pool still adds one (queued
    /// work made no progress), so a blocked request never holds up another connection's.
    @Test func aBlockedRequestBeyondTheEagerThreadsDoesNotHoldUpOthers() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.eagerWorkerThreads = 1
            $0.maxWorkerThreads = 4
        }
        defer { server.shutdown(grace: .seconds(2)) }
        let blocked = try connectRaw(server)
        blocked.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        for _ in 0..<3 {
            let c = try connectRaw(server)
            #expect(c.sendSigned())
        }
        // Served while the blocked request still holds the first thread, by one the pool added (the
        // others' workers may still be finishing when their answers are read).
        #expect(waitUntil { server.workerThreads.busy == 1 })
        let alive = server.workerThreads.alive
        #expect(alive >= 2 && alive <= 4)
        handler.open()
        #expect(blocked.readResponse()?.status == 200)
    }

    /// Sends `/block` on an authenticated connection and, while the handler holds it, `next` behind it: the
    /// worker finds `next` readable when the response is done (the path that serves it without the loop).
    func blockThenSend(_ next: String, handler: GatedHandler, server: HTTPServer) throws -> RawHTTPClient {
        let c = try connectRaw(server)
        #expect(c.sendSigned())
        c.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        c.send(next)
        return c
    }

    @Test func aRequestWaitingBehindAResponseIsServedAndTheIdleTimeoutStillHolds() throws {
        let handler = GatedHandler()
        let observer = ServerTestObserver()
        let server = try start(handler, observer: observer) { $0.idleTimeout = .milliseconds(300) }
        defer { server.shutdown(grace: .seconds(2)) }
        let c = try blockThenSend("GET /auth HTTP/1.1\r\nHost: t\r\n\r\nGET /thread HTTP/1.1\r\nHost: t\r\n\r\n",
                                  handler: handler, server: server)
        handler.open()
        #expect(c.readResponse()?.body == Array("released".utf8))
        #expect(c.readResponse()?.body == Array("signed".utf8))
        #expect(c.readResponse()?.body == Array("http-worker".utf8))
        // Then nothing comes: the connection is the loop's again, and its idle timeout closes it.
        #expect(c.isClosedByPeer())
        #expect(waitUntil { observer.closed.load(ordering: .sequentiallyConsistent) == 1 })
    }

    /// One worker. A's next request is already readable when A's response is done, but B's request
    /// arrived before that on another connection: the worker serves B first, and A's next request waits
    /// its turn behind it instead of jumping ahead on the worker that holds A.
    @Test func aReadyNextRequestDoesNotOvertakeAnotherConnectionsRequest() throws {
        let handler = GatedHandler()
        let server = try start(handler) { $0.maxWorkerThreads = 1 }
        defer { server.shutdown(grace: .seconds(2)) }
        let a = try blockThenSend("GET /a2 HTTP/1.1\r\nHost: t\r\n\r\n", handler: handler, server: server)
        let b = try connectRaw(server)
        b.send("GET /b1 HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(waitUntil { server.workerThreads.queued == 1 })  // the loop has dispatched B's request
        handler.open()
        #expect(a.readResponse()?.body == Array("released".utf8))
        #expect(b.readResponse()?.status == 404)
        #expect(a.readResponse()?.status == 404)
        #expect(handler.served.withLock { $0 } == ["/auth", "/block", "/b1", "/a2"])
    }

    @Test func aPartialNextHeadGoesBackToTheLoopAndDoesNotHoldTheWorker() throws {
        let handler = GatedHandler()
        let observer = ServerTestObserver()
        let server = try start(handler, observer: observer) {
            $0.maxWorkerThreads = 1
            $0.headerTimeout = .milliseconds(500)
        }
        defer { server.shutdown(grace: .seconds(2)) }
        let slow = try blockThenSend("GET /auth HTTP/1.1\r\nHo", handler: handler, server: server)
        handler.open()
        #expect(slow.readResponse()?.body == Array("released".utf8))
        // The single worker serves everybody else meanwhile.
        for _ in 0..<10 {
            let c = try connectRaw(server)
            #expect(c.sendSigned())
        }
        #expect(server.workerThreads.alive == 1)
        // The rest of the head never comes: the header timeout ends the connection.
        #expect(slow.readResponse()?.status == 408)
        #expect(slow.isClosedByPeer())
    }

    @Test func aRequestWaitingBehindAResponseIsNotServedOnceTheDrainBegan() throws {
        let handler = GatedHandler()
        let server = try start(handler) { _ in }
        let c = try blockThenSend("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n", handler: handler, server: server)
        let done = shutdownInBackground(server, grace: .seconds(10))
        #expect(waitUntil { server.isDraining })
        handler.open()
        let r = try #require(c.readResponse())
        #expect(r.body == Array("released".utf8))
        #expect(r.headers["connection"] == "close")
        #expect(c.isClosedByPeer())
        #expect(waitUntil { done.value.load(ordering: .sequentiallyConsistent) })
        #expect(server.activeConnections == 0)
    }

    @Test func thousandsOfKeptAliveConnectionsNeedNoThreads() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.maxConnections = 5000
            $0.maxWorkerThreads = 8
            // Opening 2 000 connections one by one can take longer than the usual 10 s on a loaded machine;
            // no connection may time out before the test has seen it served twice.
            $0.idleTimeout = .seconds(600)
            $0.headerTimeout = .seconds(600)
        }
        defer { server.shutdown(grace: .seconds(2)) }
        var clients: [RawHTTPClient] = []
        for _ in 0..<2000 {
            let c = try connectRaw(server)
            c.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
            clients.append(c)
        }
        for c in clients { #expect(c.readResponse()?.status == 200) }
        #expect(server.activeConnections == 2000)
        #expect(server.workerThreads.alive <= 8)
        // Every one of them is still open and served again.
        for c in clients { c.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n") }
        var served = 0
        for c in clients where c.readResponse()?.body == Array("signed".utf8) { served += 1 }
        #expect(served == 2000)
    }

    @Test func aBurstsWorkerThreadsEndWhenIdleWhileTheConnectionsStayOpen() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.maxConnections = 100
            $0.maxWorkerThreads = 6
            $0.workerIdleExit = .milliseconds(200)
        }
        defer { server.shutdown(grace: .seconds(2)) }
        // Six requests held at once need six workers.
        var clients: [RawHTTPClient] = []
        for _ in 0..<6 {
            let c = try connectRaw(server)
            c.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
            clients.append(c)
        }
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 6 })
        #expect(server.workerThreads.alive == 6)
        handler.open()
        for c in clients { #expect(c.readResponse()?.status == 200) }
        // Idle, the pool shrinks back to its one resident thread; the kept-alive connections stay open and served.
        #expect(waitUntil { server.workerThreads.alive == 1 })
        #expect(server.activeConnections == 6)
        for c in clients { c.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n") }
        for c in clients { #expect(c.readResponse()?.status == 200) }
    }

    @Test func drainingAnUnreadBodyHasATotalDeadline() throws {
        let handler = GatedHandler()
        let server = try start(handler) { $0.drainTimeout = .milliseconds(300) }
        defer { server.shutdown(grace: .seconds(2)) }
        // A refused upload whose body trickles in: the server stops draining at the deadline and closes,
        // although bytes keep arriving well within the idle timeout.
        let c = try connectRaw(server)
        c.send("PUT /forbidden HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        let fd = c.fd
        // The trickle must stop before `c` closes its descriptor: a number reused by another test's socket would
        // otherwise receive these bytes (seen: a parallel test's echo answered "abcxxxxxxx").
        let trickleControl = TrickleControl()
        defer {
            trickleControl.stop.store(true, ordering: .sequentiallyConsistent)
            trickleControl.done.wait()
            withExtendedLifetime(c) {}
        }
        let trickle = Thread {
            defer { trickleControl.done.signal() }
            for _ in 0..<100 {
                if trickleControl.stop.load(ordering: .sequentiallyConsistent) { return }
                if send(fd, "xxxxxxxxxx", 10, Int32(MSG_NOSIGNAL)) <= 0 { return }
                usleep(20_000)
            }
        }
        trickle.start()
        let r = try #require(c.readResponse())
        #expect(r.status == 403)
        let started = ContinuousClock.now
        #expect(c.isClosedByPeer())
        #expect(ContinuousClock.now - started < .seconds(1))
    }

    @Test func shutdownClosesIdleConnectionsAndWaitsForBusyOnes() throws {
        let handler = GatedHandler()
        let server = try start(handler) { _ in }
        let idle = try connectRaw(server)
        #expect(idle.sendSigned())
        let busy = try connectRaw(server)
        busy.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        let done = shutdownInBackground(server, grace: .seconds(10))
        #expect(idle.isClosedByPeer())
        try expectDrainFinishesHeldRequest(busy, handler: handler, done: done)
        #expect(server.activeConnections == 0)
    }
}

@Suite struct ConnectionAdmissionTests {
    typealias O = ConnectionAdmission.Occupancy

    @Test(arguments: [
        // connections, unauthenticated, idle unauthenticated, reserved → decision
        (O(connections: 0, unauthenticated: 0, idleUnauthenticated: 0, reserved: 0), ConnectionAdmission.Decision.admit),
        (O(connections: 7, unauthenticated: 3, idleUnauthenticated: 3, reserved: 0), .admit),
        // The unauthenticated budget is full: the idlest one makes room, else the reserve.
        (O(connections: 5, unauthenticated: 4, idleUnauthenticated: 2, reserved: 0), .admitEvictingIdleUnauthenticated),
        (O(connections: 5, unauthenticated: 4, idleUnauthenticated: 0, reserved: 0), .reserve),
        // Every slot taken: idle unauthenticated ones give way; authenticated or busy ones do not.
        (O(connections: 8, unauthenticated: 1, idleUnauthenticated: 1, reserved: 0), .admitEvictingIdleUnauthenticated),
        (O(connections: 8, unauthenticated: 0, idleUnauthenticated: 0, reserved: 1), .reserve),
        (O(connections: 8, unauthenticated: 2, idleUnauthenticated: 0, reserved: 2), .refuse),
    ])
    func budgets(occupancy: ConnectionAdmission.Occupancy, expected: ConnectionAdmission.Decision) {
        let policy = ConnectionAdmission(maxConnections: 8, maxUnauthenticated: 4, reserve: 2)
        #expect(policy.decide(occupancy) == expected)
    }

    @Test func withoutAuthenticationTrackingOnlyTheTotalCounts() {
        let policy = ConnectionAdmission(maxConnections: 2, maxUnauthenticated: nil, reserve: 0)
        #expect(policy.decide(O(connections: 1, unauthenticated: 1, idleUnauthenticated: 1, reserved: 0)) == .admit)
        #expect(policy.decide(O(connections: 2, unauthenticated: 0, idleUnauthenticated: 0, reserved: 0)) == .refuse)
    }
}

@Suite struct TimerHeapTests {
    @Test func popsInDeadlineOrderAndOnlyWhenDue() {
        var heap = TimerHeap()
        let base = ContinuousClock.now
        var order = Array(0..<200).map { UInt64($0) }
        order.shuffle()
        for id in order { heap.push(.init(deadline: base + .milliseconds(Int64(id)), id: id, generation: 0)) }
        #expect(heap.popDue(now: base - .seconds(1)) == nil)
        var popped: [UInt64] = []
        while let e = heap.popDue(now: base + .milliseconds(99)) { popped.append(e.id) }
        #expect(popped == Array(0..<100).map { UInt64($0) })
        heap.compact { $0.id % 2 == 0 }
        #expect(heap.count == 50)
        var rest: [UInt64] = []
        while let e = heap.popDue(now: base + .seconds(1)) { rest.append(e.id) }
        #expect(rest == stride(from: 100, to: 200, by: 2).map { UInt64($0) })
    }
}

/// Stops a test's sender thread and waits for it, so it never writes to a descriptor number after it was closed.
final class TrickleControl: Sendable {
    let stop = Atomic<Bool>(false)
    let done = DispatchSemaphore(value: 0)
}
