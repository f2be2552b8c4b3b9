import Synchronization

/// The server-wide books of `ConnectionAdmission` when several event loops hold connections: how many
/// connections have a slot, how many of them are unauthenticated, how many sit in the probe reserve, and
/// the unauthenticated connections that are idle, least recently active first, across every loop.
///
/// Its lock is taken per connection, never per request of an authenticated connection: at accept, at
/// close, when a connection authenticates, and around each request of a connection that is still
/// unauthenticated (it leaves and rejoins the idle list). The fields of `HTTPConnection` it keeps
/// (`inLRU`, `lruPrevious`, `lruNext`, `countedUnauthenticated`, `evicted`) are only touched under it.
///
/// Eviction crosses loops: the accepting loop takes the idle victim off the books at once (its slot goes
/// to the newcomer) and asks the victim's loop to close it. Until that loop does, the victim's own loop
/// may still try to serve a request that just arrived on it; `unlist` then says no, and it is closed
/// instead. So the books never count one slot twice, and an evicted connection is never served.
final class ConnectionLedger: @unchecked Sendable {
    let admission: ConnectionAdmission
    private let lock = Mutex<Void>(())
    // Guarded by `lock`.
    private var slotted = 0
    private var unauthenticated = 0
    private var reserved = 0
    private var lruHead: HTTPConnection?
    private var lruTail: HTTPConnection?
    private var lruCount = 0

    init(admission: ConnectionAdmission) {
        self.admission = admission
    }

    /// What a new connection gets; its slot (or reserve place) is counted before this returns.
    enum Entry {
        case admit
        /// Admitted in the place of `victim`, an idle unauthenticated connection now off the books: its
        /// loop must close it.
        case admitEvicting(victim: HTTPConnection)
        case reserve
        case refuse
    }

    /// Decides for a newcomer (`trusted`: it needs no authentication) and counts it.
    func enter(trusted: Bool) -> Entry {
        lock.withLock { _ in
            let occupancy = ConnectionAdmission.Occupancy(connections: slotted, unauthenticated: unauthenticated,
                                                          idleUnauthenticated: lruCount, reserved: reserved)
            var entry = Entry.admit
            switch admission.decide(occupancy) {
            case .admit: break
            case .admitEvictingIdleUnauthenticated:
                guard let victim = lruHead else { break }  // decide() saw lruCount > 0
                unlinkLocked(victim)
                victim.evicted = true
                releaseLocked(victim)
                entry = .admitEvicting(victim: victim)
            case .reserve:
                reserved += 1
                return .reserve
            case .refuse:
                return .refuse
            }
            slotted += 1
            if !trusted { unauthenticated += 1 }
            return entry
        }
    }

    /// Records that `connection` (just admitted with `entry`) counts as unauthenticated and is idle.
    /// Called by the accepting loop before any other thread sees the connection.
    func listNewcomer(_ connection: HTTPConnection) {
        lock.withLock { _ in
            connection.countedUnauthenticated = true
            appendLocked(connection)
        }
    }

    /// The connection's request authenticated: it leaves the unauthenticated budget (once).
    func authenticated(_ connection: HTTPConnection) {
        lock.withLock { _ in
            guard connection.countedUnauthenticated, !connection.evicted else { return }
            connection.countedUnauthenticated = false
            unauthenticated -= 1
        }
    }

    /// An unauthenticated connection is idle again. False if it was evicted meanwhile (close it).
    func listIdle(_ connection: HTTPConnection) -> Bool {
        lock.withLock { _ in
            if connection.evicted { return false }
            appendLocked(connection)
            return true
        }
    }

    /// An idle unauthenticated connection is about to be served (or closed). False if it was evicted
    /// (then it must be closed, not served).
    func unlist(_ connection: HTTPConnection) -> Bool {
        lock.withLock { _ in
            if connection.evicted { return false }
            unlinkLocked(connection)
            return true
        }
    }

    /// The connection closed: its slot (or reserve place) is free, unless eviction already freed it.
    func release(_ connection: HTTPConnection) {
        lock.withLock { _ in
            if connection.evicted { return }
            unlinkLocked(connection)
            releaseLocked(connection)
            connection.evicted = true  // released once
        }
    }

    /// Slots taken, unauthenticated among them, reserve places taken, idle unauthenticated (for tests).
    var counts: (slotted: Int, unauthenticated: Int, reserved: Int, idleUnauthenticated: Int) {
        lock.withLock { _ in (slotted, unauthenticated, reserved, lruCount) }
    }

    private func releaseLocked(_ connection: HTTPConnection) {
        if connection.reserved {
            reserved -= 1
            return
        }
        slotted -= 1
        if connection.countedUnauthenticated {
            connection.countedUnauthenticated = false
            unauthenticated -= 1
        }
    }

    private func appendLocked(_ connection: HTTPConnection) {
        guard !connection.inLRU else { return }
        connection.inLRU = true
        connection.lruPrevious = lruTail
        connection.lruNext = nil
        if let tail = lruTail { tail.lruNext = connection } else { lruHead = connection }
        lruTail = connection
        lruCount += 1
    }

    private func unlinkLocked(_ connection: HTTPConnection) {
        guard connection.inLRU else { return }
        connection.inLRU = false
        if let previous = connection.lruPrevious { previous.lruNext = connection.lruNext } else { lruHead = connection.lruNext }
        if let next = connection.lruNext { next.lruPrevious = connection.lruPrevious } else { lruTail = connection.lruPrevious }
        connection.lruPrevious = nil
        connection.lruNext = nil
        lruCount -= 1
    }
}

/// Which event loop a newly accepted connection goes to: the one holding the fewest connections, ties
/// broken round-robin from the loop after the last choice. Unlike `SO_REUSEPORT`'s hash of the address
/// pair, this keeps the loops even however the clients' ports fall (measured with the hash: 64
/// connections split unevenly for their whole life, and the busier loop set the tail latency).
struct LoopAssignment: Equatable, Sendable {
    /// The loop chosen last.
    var last: Int = -1

    /// Picks a loop given each loop's open connections.
    mutating func pick(open: [Int]) -> Int {
        precondition(!open.isEmpty)
        var best = -1
        var bestCount = Int.max
        for step in 1...open.count {
            let i = (last + step) % open.count
            let n = open[i]
            if n < bestCount {
                best = i
                bestCount = n
            }
        }
        last = best
        return best
    }
}
