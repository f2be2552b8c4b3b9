import Synchronization

/// When a long transfer runs part of its work on a second thread: pure, over the counts `BackgroundSlots` keeps.
/// A long transfer is an encrypted read (a second thread sends and opens chunks, `DecryptingRelay`) or an upload
/// (a second thread hashes the payload, `DigestPipeline`). Every long transfer keeps one thread busy, every second
/// thread one more; a second thread only pays while that leaves no more busy threads than cores, since it costs a
/// hand-off per buffer and, with every core busy anyway, buys nothing (measured, 2 streams on 2 cores: gateway CPU
/// 0.83 → 0.78 s/GiB without the one stage; 128 concurrent 8 MiB uploads: peak RSS 577 → 289 MiB and more
/// uploads per second without their 128 hashing threads). One long transfer on two cores gets one; two or more get none.
public struct StageRule: Equatable, Sendable {
    /// The cores this process may use (`ProcessorBudget`).
    public let cores: Int

    public init(cores: Int) { self.cores = cores }

    /// A long transfer, counted among `streams`, may start a second thread while `stages` others run.
    public func mayStart(streams: Int, stages: Int) -> Bool {
        streams + stages + 1 <= cores
    }

    /// A long transfer whose second thread is counted among `stages` gives it up: more threads than cores are busy.
    public func mustYield(streams: Int, stages: Int) -> Bool {
        streams + stages > cores
    }
}

/// The long transfers in flight and their second threads, and the permission to start or the request to give up
/// a second thread by `StageRule`. Lock-free: a relay asks on its head and once per libcurl piece, an upload once.
public final class BackgroundSlots: Sendable {
    public static let shared = BackgroundSlots(cores: ProcessorBudget.current)

    public let rule: StageRule
    private let streams = Atomic<Int>(0)
    private let stages = Atomic<Int>(0)

    public init(cores: Int) { rule = StageRule(cores: max(1, cores)) }

    /// A long transfer begins (before it asks for a second thread).
    public func streamStarted() { streams.add(1, ordering: .relaxed) }
    /// A long transfer ended, with or without its second thread.
    public func streamEnded() { streams.subtract(1, ordering: .relaxed) }

    /// Takes a second thread's slot if `rule.mayStart` allows one now.
    public func tryAcquire() -> Bool {
        var current = stages.load(ordering: .relaxed)
        while rule.mayStart(streams: streams.load(ordering: .relaxed), stages: current) {
            let (exchanged, seen) = stages.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = seen
        }
        return false
    }

    /// For a transfer holding a slot: gives it back if `rule.mustYield` says so now (then the caller goes on inline).
    /// Of several reads asking at once, only as many give up as the rule needs.
    public func tryYield() -> Bool {
        var current = stages.load(ordering: .relaxed)
        while current > 0 && rule.mustYield(streams: streams.load(ordering: .relaxed), stages: current) {
            let (exchanged, seen) = stages.compareExchange(expected: current, desired: current - 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = seen
        }
        return false
    }

    /// A second thread ended: its slot goes back.
    public func release() { stages.subtract(1, ordering: .releasing) }

    /// Second threads running.
    public var inUse: Int { stages.load(ordering: .relaxed) }
    /// Long transfers in flight.
    public var activeStreams: Int { streams.load(ordering: .relaxed) }
}
