/// Who gets a connection slot: the pure decision behind `MAX_CONNECTIONS`, the smaller budget of
/// connections that have not authenticated yet, and the reserve that keeps probes answered at capacity.
///
/// A connection counts as unauthenticated from accept until a request on it authenticates (the S3 layer
/// calls `ConnectionHandle.markAuthenticated()`). Unauthenticated connections that sit idle are the ones
/// given up first: when either budget is full, the one idle the longest is closed to make room, so idle
/// anonymous sockets can never hold slots that signed clients need. Only when every slot is held by an
/// authenticated connection or one busy with a request does a newcomer go to the reserve, where it may
/// still get a probe (`/health`, `/ready`) answered; anything else there is refused with 503 SlowDown.
public struct ConnectionAdmission: Sendable, Equatable {
    /// All connections with a slot (`MAX_CONNECTIONS`).
    public var maxConnections: Int
    /// Of those, how many may be unauthenticated; nil when the server does not track authentication
    /// (every connection is trusted, e.g. the operator's probe server).
    public var maxUnauthenticated: Int?
    /// Extra connections beyond `maxConnections` whose one request is answered only if it is a probe.
    public var reserve: Int

    public init(maxConnections: Int, maxUnauthenticated: Int?, reserve: Int) {
        self.maxConnections = maxConnections
        self.maxUnauthenticated = maxUnauthenticated
        self.reserve = reserve
    }

    /// What the server holds when a connection arrives.
    public struct Occupancy: Sendable, Equatable {
        /// Connections with a slot (authenticated or not, idle or busy).
        public var connections: Int
        /// Of those, unauthenticated ones.
        public var unauthenticated: Int
        /// Of those, unauthenticated ones that are idle (no request being served), which may be closed.
        public var idleUnauthenticated: Int
        /// Connections in the reserve.
        public var reserved: Int

        public init(connections: Int, unauthenticated: Int, idleUnauthenticated: Int, reserved: Int) {
            self.connections = connections
            self.unauthenticated = unauthenticated
            self.idleUnauthenticated = idleUnauthenticated
            self.reserved = reserved
        }
    }

    public enum Decision: Sendable, Equatable {
        /// A slot is free.
        case admit
        /// Close the unauthenticated connection idle the longest, then admit.
        case admitEvictingIdleUnauthenticated
        /// No slot: the connection may send one request, answered only if it is a probe.
        case reserve
        /// Nothing left: answer 503 SlowDown and close.
        case refuse
    }

    public func decide(_ o: Occupancy) -> Decision {
        let slotsFull = o.connections >= maxConnections
        let unauthenticatedFull = maxUnauthenticated.map { o.unauthenticated >= $0 } ?? false
        if !slotsFull && !unauthenticatedFull { return .admit }
        if o.idleUnauthenticated > 0 { return .admitEvictingIdleUnauthenticated }
        return o.reserved < reserve ? .reserve : .refuse
    }
}
