import Dispatch
import Synchronization

/// A bounded, time-limited cache of keys unwrapped by a remote key manager, so that reading a hot
/// object (and every object sharing its intermediate key) costs no round trip. Entries expire `ttl`
/// after they were unwrapped, whatever their use: a key revoked in the key manager stops working
/// here within `ttl`. At most `capacity` entries; the least recently used go first.
///
/// Concurrent misses for the same entry make one call (the others wait for its result), so a cold
/// hot object does not fan out into one key-manager call per request.
final class UnwrappedKeyCache: Sendable {
    /// SHA-256 of what identifies a wrapped key (provider, key id, ciphertext).
    typealias Key = [UInt8]

    let capacity: Int
    let ttl: Duration
    private let clock: @Sendable () -> ContinuousClock.Instant

    private struct Entry {
        var value: [UInt8]
        var expires: ContinuousClock.Instant
        var lastUse: UInt64
    }

    private final class Flight: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        var result: Result<[UInt8], KeyProviderError>?
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var flights: [Key: Flight] = [:]
        var tick: UInt64 = 0
    }

    private let state = Mutex(State())

    /// `ttl == .zero` or `capacity == 0` disables caching: every lookup loads.
    init(capacity: Int, ttl: Duration, clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.capacity = max(0, capacity)
        self.ttl = ttl
        self.clock = clock
    }

    var isEnabled: Bool { capacity > 0 && ttl > .zero }

    var count: Int { state.withLock { $0.entries.count } }

    /// The cached value, or nil (expired entries are dropped).
    func value(for key: Key) -> [UInt8]? {
        guard isEnabled else { return nil }
        let now = clock()
        return state.withLock { s -> [UInt8]? in
            guard var entry = s.entries[key] else { return nil }
            guard entry.expires > now else {
                s.entries[key] = nil
                return nil
            }
            s.tick += 1
            entry.lastUse = s.tick
            s.entries[key] = entry
            return entry.value
        }
    }

    func insert(_ value: [UInt8], for key: Key) {
        guard isEnabled else { return }
        let now = clock()
        state.withLock { s in
            s.tick += 1
            s.entries[key] = Entry(value: value, expires: now + ttl, lastUse: s.tick)
            if s.entries.count > capacity { Self.evict(&s, now: now, capacity: capacity) }
        }
    }

    /// Drops everything (tests, and a policy reload that removes a key).
    func removeAll() { state.withLock { $0.entries.removeAll() } }

    /// The cached value, or the result of `load` (cached on success). Reports whether it was a hit.
    func value(for key: Key, load: () throws(KeyProviderError) -> [UInt8]) throws(KeyProviderError) -> (value: [UInt8], hit: Bool) {
        guard isEnabled else { return (try load(), false) }
        if let cached = value(for: key) { return (cached, true) }
        enum Role { case leader(Flight), follower(Flight), cached([UInt8]) }
        let now = clock()
        let role: Role = state.withLock { s in
            if let entry = s.entries[key], entry.expires > now { return .cached(entry.value) }
            if let flight = s.flights[key] { return .follower(flight) }
            let flight = Flight()
            s.flights[key] = flight
            return .leader(flight)
        }
        switch role {
        case .cached(let value):
            return (value, true)
        case .follower(let flight):
            flight.done.wait()
            flight.done.signal()  // wake the next follower
            return (try flight.result!.get(), true)
        case .leader(let flight):
            let result: Result<[UInt8], KeyProviderError>
            do { result = .success(try load()) } catch { result = .failure(error) }
            if case .success(let value) = result { insert(value, for: key) }
            state.withLock { s in
                flight.result = result
                s.flights[key] = nil
            }
            flight.done.signal()
            return (try result.get(), false)
        }
    }

    /// Removes expired entries, then the least recently used down to 7/8 of capacity (amortises the sort).
    private static func evict(_ s: inout State, now: ContinuousClock.Instant, capacity: Int) {
        s.entries = s.entries.filter { $0.value.expires > now }
        let target = capacity - capacity / 8
        guard s.entries.count > target else { return }
        let victims = s.entries.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(s.entries.count - target)
        for (key, _) in victims { s.entries[key] = nil }
    }
}
