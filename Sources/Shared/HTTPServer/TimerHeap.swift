/// Deadlines of the event loop's connections: a binary min-heap of (deadline, connection, generation).
/// Changing a connection's deadline pushes a new entry and bumps its generation; stale entries are
/// skipped when they surface, so nothing is ever searched or removed from the middle.
struct TimerHeap {
    struct Entry {
        var deadline: ContinuousClock.Instant
        var id: UInt64
        var generation: UInt64
    }

    private(set) var entries: [Entry] = []

    var count: Int { entries.count }
    var earliest: ContinuousClock.Instant? { entries.first?.deadline }

    mutating func push(_ entry: Entry) {
        entries.append(entry)
        var i = entries.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if entries[parent].deadline <= entries[i].deadline { break }
            entries.swapAt(parent, i)
            i = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: ContinuousClock.Instant) -> Entry? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(0)
        }
        return first
    }

    /// Drops entries `isLive` rejects (when stale ones pile up).
    mutating func compact(keeping isLive: (Entry) -> Bool) {
        entries = entries.filter(isLive)
        if entries.count > 1 {
            for i in stride(from: entries.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = entries.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && entries[l].deadline < entries[m].deadline { m = l }
            if r < n && entries[r].deadline < entries[m].deadline { m = r }
            if m == i { return }
            entries.swapAt(i, m)
            i = m
        }
    }
}
