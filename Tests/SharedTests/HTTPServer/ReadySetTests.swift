import Foundation
import Glibc
import Synchronization
import Testing
@testable import Shared

/// Settled kept-alive connections wait in the worker pool's ready set: the worker that wakes for a request
/// serves it, with no hand-off from the loop; the loop still owns their timeouts, the drain and anything
/// that is not a complete head.
@Suite(.serialized) struct ReadySetTests {
    func start(_ handler: GatedHandler, observer: ServerTestObserver? = nil,
               configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> HTTPServer {
        try startGatedServer(handler, observer: observer, configure: configure)
    }

    /// Only the first request of a signed connection is handed over by its loop; the others are read and
    /// served by the worker that wakes for them, pipelined ones and probes included.
    @Test func aSettledConnectionIsServedWithoutHandOffs() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.eventLoops = 2
            $0.maxUnauthenticatedConnections = 8
            $0.unauthenticatedTimeout = .seconds(30)
        }
        defer { server.shutdown(grace: .seconds(2)) }
        let c = try connectRaw(server)
        c.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.body == Array("signed".utf8))
        #expect(server.requestsHandedOff == 1)
        for _ in 0..<50 {
            c.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(c.readResponse()?.body == Array("signed".utf8))
        }
        c.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\nGET /forbidden HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.status == 200)
        #expect(c.readResponse()?.status == 403)
        c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(c.readResponse()?.body == Array("ok".utf8))
        #expect(server.requestsHandedOff == 1)
        // An unsigned connection stays with its loop (its budget and eviction order are the loop's).
        let anonymous = try connectRaw(server)
        for _ in 0..<3 {
            anonymous.send("GET /forbidden HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(anonymous.readResponse()?.status == 403)
        }
        #expect(server.requestsHandedOff == 4)
    }

    /// A head that arrives in pieces goes back to the loop, which reads the rest; a malformed one is
    /// answered and the connection closed.
    @Test func partialAndMalformedHeadsOfASettledConnection() throws {
        let handler = GatedHandler()
        let observer = ServerTestObserver()
        let server = try start(handler, observer: observer)
        defer { server.shutdown(grace: .seconds(2)) }
        let c = try connectRaw(server)
        #expect(c.sendSigned())
        for _ in 0..<3 {
            c.send("GET /auth HTTP/1.1\r\nHo")
            usleep(20_000)  // lets the first piece be read on its own (either way the answer must come)
            c.send("st: t\r\n\r\n")
            #expect(c.readResponse()?.body == Array("signed".utf8))
        }
        #expect(c.sendSigned())
        c.send("GET /auth HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
        #expect(c.readResponse()?.status == 400)
        #expect(c.isClosedByPeer())
        #expect(observer.rejections.withLock { $0.count } == 1)
        #expect(waitUntil { server.activeConnections == 0 })
    }

    /// A request blocked on a slow backend holds its worker only: another settled connection's request is
    /// still served (the pool adds a thread for it), and so is the blocked connection once released.
    @Test func aBlockedRequestDoesNotHoldBackOtherSettledConnections() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.eventLoops = 1
            $0.eagerWorkerThreads = 1
            $0.maxWorkerThreads = 4
        }
        defer {
            handler.open()
            server.shutdown(grace: .seconds(2))
        }
        let slow = try connectRaw(server)
        let other = try connectRaw(server)
        for c in [slow, other] {
            #expect(c.sendSigned())
        }
        let handedOff = server.requestsHandedOff
        slow.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        for _ in 0..<3 {
            other.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(other.readResponse()?.body == Array("signed".utf8))
        }
        handler.open()
        #expect(slow.readResponse()?.body == Array("released".utf8))
        #expect(server.requestsHandedOff == handedOff)
    }

    /// Liveness, the bell's side: the pool's only thread waits on the ready set, and a queued job (a new
    /// connection's first request, handed over by the loop) wakes it and holds it. A parked connection's
    /// next request must still be answered while that job runs: the thread that left the wait last starts
    /// another (or makes the growth watcher watch), as it does when it leaves for a connection's event.
    @Test func aJobTheBellWokeTheLastWaiterForDoesNotHoldBackParkedConnections() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.eventLoops = 1
            $0.eagerWorkerThreads = 4
            $0.maxWorkerThreads = 4
        }
        defer {
            handler.open()
            server.shutdown(grace: .seconds(2))
        }
        let parked = try connectRaw(server)
        #expect(parked.sendSigned())
        // One thread, back in the wait, with the connection parked.
        #expect(waitUntil { server.workerThreads.alive == 1 && server.readySetWaits.waiting == 1 })
        let slow = try connectRaw(server)
        slow.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")  // queued: the bell rings for the only waiter
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        parked.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(parked.readResponse()?.body == Array("signed".utf8))
        #expect(handler.released.load(ordering: .sequentiallyConsistent) == 0)  // answered while the job is held
        handler.open()
        #expect(slow.readResponse()?.body == Array("released".utf8))
    }

    /// Liveness, the idle exit's side: with one thread held by a request and the other the only one
    /// waiting on the ready set, that waiting thread must not end on its idle timeout, or a parked
    /// connection's next request would wait for the held one to finish (a slow client blocking another).
    @Test func theLastWaiterDoesNotEndOnIdleWhileConnectionsAreParked() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.eventLoops = 1
            $0.eagerWorkerThreads = 4
            $0.maxWorkerThreads = 4
            $0.workerIdleExit = .milliseconds(20)
        }
        defer {
            handler.open()
            server.shutdown(grace: .seconds(2))
        }
        let slow = try connectRaw(server)
        let other = try connectRaw(server)
        for c in [slow, other] {
            #expect(c.sendSigned())
        }
        // Idle threads beyond one end; the last one waits for the parked connections.
        #expect(waitUntil { server.workerThreads.alive == 1 && server.readySetWaits.waiting == 1 })
        slow.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")  // takes the waiting thread; it starts another
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        #expect(waitUntil { server.workerThreads.alive == 2 && server.readySetWaits.waiting == 1 })
        // The waiting thread's idle timeout passes (it has decided whether to end once this counts it).
        let timeouts = server.readySetWaits.idleTimeouts
        #expect(waitUntil { server.readySetWaits.idleTimeouts >= timeouts + 2 })
        #expect(server.workerThreads.alive == 2)
        other.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(other.readResponse()?.body == Array("signed".utf8))
        #expect(handler.released.load(ordering: .sequentiallyConsistent) == 0)  // answered while the upload is held
        handler.open()
        #expect(slow.readResponse()?.body == Array("released".utf8))
    }

    /// A parked connection's idle timer runs from the end of its last response, though its loop never saw
    /// the requests.
    @Test func aParkedConnectionKeepsItsIdleTimeout() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.eventLoops = 2
            $0.idleTimeout = .seconds(2)
        }
        defer { server.shutdown(grace: .seconds(2)) }
        let c = try connectRaw(server)
        for _ in 0..<50 {
            c.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(c.readResponse()?.body == Array("signed".utf8))
        }
        let answered = ContinuousClock.now
        #expect(c.isClosedByPeer())
        let idle = ContinuousClock.now - answered
        #expect(idle >= .milliseconds(1900))
        #expect(idle < .seconds(5))  // the timer was not lost (the client's own limit is 20 s)
        #expect(waitUntil { server.activeConnections == 0 })
    }

    /// The drain closes parked connections at once, lets one served from the ready set finish with
    /// `Connection: close`, and the slots of closed parked connections are free again.
    @Test func theDrainClosesParkedConnectionsAndFinishesServedOnes() throws {
        let handler = GatedHandler()
        let server = try start(handler) {
            $0.eventLoops = 2
            $0.maxConnections = 4
            $0.reservedProbeConnections = 0
        }
        var parked: [RawHTTPClient] = []
        for _ in 0..<3 {
            let c = try connectRaw(server)
            #expect(c.sendSigned())
            parked.append(c)
        }
        let busy = try connectRaw(server)
        #expect(busy.sendSigned())
        // Every slot is held by a parked connection: MAX_CONNECTIONS counts them.
        let extra = try connectRaw(server)
        extra.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(extra.readResponse()?.status == 503)
        // Closing a parked connection frees its slot.
        parked.removeLast()
        #expect(waitUntil { server.activeConnections == 3 })
        let next = try connectRaw(server)
        #expect(next.sendSigned())
        parked.append(next)

        let handedOff = server.requestsHandedOff
        busy.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        #expect(server.requestsHandedOff == handedOff)  // served from the ready set
        let done = shutdownInBackground(server, grace: .seconds(10))
        for c in parked { #expect(c.isClosedByPeer()) }
        try expectDrainFinishesHeldRequest(busy, handler: handler, done: done)
        #expect(server.activeConnections == 0)
    }
}
