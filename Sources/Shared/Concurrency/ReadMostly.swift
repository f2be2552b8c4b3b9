import Synchronization

/// A value every request reads and a reload rarely replaces (the client credentials, the bucket policy).
///
/// Reads take no lock: each thread keeps the value it last read with the generation it belongs to and
/// checks one atomic generation per read; only a thread's first read after a replacement takes the lock,
/// for nanoseconds, to fetch the new value. A Mutex read per request was the main lock on the encrypting
/// path at c=64 (Swift's Mutex is a priority-inheritance futex: contended, it goes through the kernel).
public final class ReadMostly<Value: Sendable>: Sendable {
    private final class Box: Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    private let current: Mutex<Box>
    /// Advanced (under `current`'s lock) by every replacement.
    private let generation = Atomic<UInt64>(0)
    /// Tells this instance's values apart in the threads' caches (never reused, unlike an address).
    private let id: UInt64

    public init(_ value: Value) {
        current = Mutex(Box(value))
        id = ReadMostlyThreadCache.ids.add(1, ordering: .relaxed).newValue
    }

    /// The current value.
    public var value: Value { box().value }

    /// Replaces the value; every thread reads the new one from its next read on.
    public func replace(_ value: Value) {
        let box = Box(value)
        current.withLock {
            $0 = box
            generation.add(1, ordering: .releasing)
        }
    }

    private func box() -> Box {
        let seen = generation.load(ordering: .acquiring)
        let local = ReadMostlyThreadCache.perThread.current
        // The id is unique to this instance, so an entry under it holds this instance's Box.
        if let kept = local.object(id: id, generation: seen) { return unsafeDowncast(kept, to: Box.self) }
        let (box, itsGeneration) = current.withLock { ($0, self.generation.load(ordering: .relaxed)) }
        local.keep(box, id: id, generation: itsGeneration)
        return box
    }
}

/// The values one thread last read, one per `ReadMostly` (the few a process has). Only its thread touches it.
private final class ReadMostlyThreadCache {
    static let ids = Atomic<UInt64>(0)
    static let perThread = ThreadLocal { ReadMostlyThreadCache() }

    private static let limit = 8
    private var entries: [(id: UInt64, generation: UInt64, object: AnyObject)] = []

    func object(id: UInt64, generation: UInt64) -> AnyObject? {
        for entry in entries where entry.id == id {
            return entry.generation == generation ? entry.object : nil
        }
        return nil
    }

    func keep(_ object: AnyObject, id: UInt64, generation: UInt64) {
        entries.removeAll { $0.id == id }
        if entries.count >= Self.limit { entries.removeFirst() }
        entries.append((id, generation, object))
    }
}
