import Foundation
import Glibc
import Synchronization
import Testing
@testable import Shared

@Suite struct LoopAssignmentTests {
    @Test(arguments: [
        // open connections per loop, loop chosen last → loop chosen
        ([0, 0], -1, 0),
        ([0, 0], 0, 1),  // a tie goes round-robin from the loop after the last choice
        ([1, 0], 0, 1),
        ([1, 1], 1, 0),
        ([5, 2, 2], 1, 2),  // ties among the least loaded, too
        ([5, 2, 2], 2, 1),
        ([3, 9, 1, 1], 3, 2),
        ([4], 0, 0),
    ])
    func picksTheLeastLoadedLoop(open: [Int], last: Int, expected: Int) {
        var assignment = LoopAssignment(last: last)
        #expect(assignment.pick(open: open) == expected)
        #expect(assignment.last == expected)
    }

    @Test func connectionsArrivingOneByOneAlternate() {
        var assignment = LoopAssignment()
        var open = [0, 0, 0]
        for _ in 0..<30 { open[assignment.pick(open: open)] += 1 }
        #expect(open == [10, 10, 10])
        // One loop's connections close: the newcomers go there until it catches up.
        open[1] = 2
        let next = (0..<8).map { _ in
            let i = assignment.pick(open: open)
            open[i] += 1
            return i
        }
        #expect(next == [1, 1, 1, 1, 1, 1, 1, 1])
    }
}

/// The shared books as the loops use them, without sockets.
@Suite struct ConnectionLedgerTests {
    let server: HTTPServer

    init() throws {
        server = try HTTPServer(configuration: HTTPServerConfiguration(listenAddress: "127.0.0.1:0"),
                                handler: ServerTestHandler())
    }

    /// A connection as loop `loop` would hold it (no socket).
    func connection(_ id: UInt64, loop: Int = 0) -> HTTPConnection {
        HTTPConnection(server: server, id: id, loopIndex: loop, socket: ConnectionSocket(fd: -1), remote: "t",
                       trusted: false)
    }

    @Test func evictionTakesTheIdlestUnauthenticatedConnectionWhicheverLoopHoldsIt() {
        let ledger = ConnectionLedger(admission: ConnectionAdmission(maxConnections: 8, maxUnauthenticated: 2,
                                                                     reserve: 1))
        let a = connection(2, loop: 1), b = connection(3, loop: 0)
        for c in [a, b] {
            guard case .admit = ledger.enter(trusted: false) else { Issue.record("not admitted"); return }
            ledger.listNewcomer(c)
        }
        #expect(ledger.counts == (2, 2, 0, 2))
        // b is being served (off the idle list): a is the only candidate, although it was listed first.
        #expect(ledger.unlist(b))
        guard case .admitEvicting(let victim) = ledger.enter(trusted: false) else {
            Issue.record("expected an eviction")
            return
        }
        #expect(victim === a)
        // a's slot went to the newcomer: still two unauthenticated, one of them idle (none listed yet).
        #expect(ledger.counts == (2, 2, 0, 0))
        // a's loop had a request on it meanwhile: it must not serve it, and closing it frees nothing twice.
        #expect(!ledger.unlist(a))
        #expect(!ledger.listIdle(a))
        ledger.release(a)
        #expect(ledger.counts == (2, 2, 0, 0))
        // b authenticates, once; budgets follow.
        ledger.authenticated(b)
        ledger.authenticated(b)
        #expect(ledger.counts == (2, 1, 0, 0))
        ledger.release(b)
        ledger.release(b)
        #expect(ledger.counts == (1, 1, 0, 0))
    }

    @Test func fullSlotsGoToTheReserveThenAreRefused() {
        let ledger = ConnectionLedger(admission: ConnectionAdmission(maxConnections: 2, maxUnauthenticated: nil,
                                                                     reserve: 1))
        guard case .admit = ledger.enter(trusted: true), case .admit = ledger.enter(trusted: true) else {
            Issue.record("not admitted")
            return
        }
        guard case .reserve = ledger.enter(trusted: true) else { Issue.record("expected the reserve"); return }
        guard case .refuse = ledger.enter(trusted: true) else { Issue.record("expected a refusal"); return }
        #expect(ledger.counts == (2, 0, 1, 0))
        let reserved = connection(9)
        reserved.reserved = true
        ledger.release(reserved)
        #expect(ledger.counts == (2, 0, 0, 0))
    }
}

/// The loops with real sockets: how connections spread, that the budgets hold across loops, and that the
/// drain ends every loop.
@Suite(.serialized) struct EventLoopGroupTests {
    func start(_ handler: GatedHandler, observer: ServerTestObserver? = nil,
               configure: (inout HTTPServerConfiguration) -> Void) throws -> HTTPServer {
        try startGatedServer(handler, observer: observer, configure: configure)
    }

    @Test func connectionsSpreadEvenlyOverTheLoops() throws {
        let handler = GatedHandler()
        let server = try start(handler) { $0.eventLoops = 3 }
        defer { server.shutdown(grace: .seconds(2)) }
        var clients: [RawHTTPClient] = []
        for _ in 0..<9 {
            let c = try connectRaw(server)
            #expect(c.sendSigned())
            clients.append(c)
        }
        #expect(server.connectionsPerLoop == [3, 3, 3])
        // Every loop serves: the kept-alive connections all get answers again.
        for c in clients {
            #expect(c.sendSigned())
        }
        // Closing one loop's connections sends the next ones there.
        clients.removeAll()
        #expect(waitUntil { server.activeConnections == 0 })
        for _ in 0..<4 {
            let c = try connectRaw(server)
            #expect(c.sendSigned())
            clients.append(c)
        }
        #expect(server.connectionsPerLoop.sorted() == [1, 1, 2])
    }

    @Test func maxConnectionsHoldsAcrossLoops() throws {
        let handler = GatedHandler()
        let observer = ServerTestObserver()
        let server = try start(handler, observer: observer) {
            $0.eventLoops = 2
            $0.maxConnections = 4
            $0.reservedProbeConnections = 0
        }
        defer {
            handler.open()
            server.shutdown(grace: .seconds(2))
        }
        var holders: [RawHTTPClient] = []
        for _ in 0..<4 {
            let c = try connectRaw(server)
            #expect(c.sendSigned())
            holders.append(c)
        }
        #expect(server.connectionsPerLoop == [2, 2])
        let extra = try connectRaw(server)
        extra.send("GET /auth HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(extra.readResponse()?.status == 503)
        #expect(observer.rejections.withLock { $0 } == [.tooManyConnections])
        // A slot freed on either loop is a slot for the next client.
        holders.removeLast()
        #expect(waitUntil { server.activeConnections == 3 })
        let next = try connectRaw(server)
        #expect(next.sendSigned())
    }

    @Test func theIdlestAnonymousConnectionIsEvictedFromWhicheverLoopHoldsIt() throws {
        let handler = GatedHandler()
        let observer = ServerTestObserver()
        let server = try start(handler, observer: observer) {
            $0.eventLoops = 2
            $0.maxConnections = 16
            $0.maxUnauthenticatedConnections = 2
            $0.unauthenticatedTimeout = .seconds(30)
        }
        defer { server.shutdown(grace: .seconds(2)) }
        // Two anonymous sockets, one per loop; the first one has been idle the longest.
        let first = try connectRaw(server)
        #expect(waitUntil { server.connectionsPerLoop == [1, 0] })
        let second = try connectRaw(server)
        #expect(waitUntil { server.connectionsPerLoop == [1, 1] })
        // Activity on the first (an answered request that does not authenticate) makes the second the idlest.
        first.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(first.readResponse()?.status == 200)
        let third = try connectRaw(server)
        #expect(second.isClosedByPeer())
        #expect(observer.rejections.withLock { $0 } == [.evictedUnauthenticated])
        // The others still work, and a signed client gets in although the budget is full.
        #expect(third.sendSigned())
        #expect(first.sendSigned())
        #expect(waitUntil { server.activeConnections == 2 })
    }

    @Test func theDrainEndsEveryLoop() throws {
        let handler = GatedHandler()
        let server = try start(handler) { $0.eventLoops = 3 }
        var idle: [RawHTTPClient] = []
        for _ in 0..<5 {
            let c = try connectRaw(server)
            #expect(c.sendSigned())
            idle.append(c)
        }
        let busy = try connectRaw(server)
        busy.send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(waitUntil { handler.entered.load(ordering: .sequentiallyConsistent) == 1 })
        #expect(server.connectionsPerLoop == [2, 2, 2])
        let done = shutdownInBackground(server, grace: .seconds(10))
        for c in idle { #expect(c.isClosedByPeer()) }
        // Idle connections on every loop are closed while the busy one still runs.
        try expectDrainFinishesHeldRequest(busy, handler: handler, done: done)
        // shutdown returns only once every loop's thread has closed its connections and ended.
        #expect(server.connectionsPerLoop == [0, 0, 0])
    }
}
