// TEMPORARY: stands in for Shared's CancellationToken until the lead's HTTPClient lands on main (~18:20 UTC).
// Deleted at `git merge main`. Same API as Sources/Shared/HTTPClient/HTTPClient.swift.
import Synchronization

final class CancellationToken: Sendable {
    private let flag = Atomic<Bool>(false)
    init() {}
    func cancel() { flag.store(true, ordering: .sequentiallyConsistent) }
    var isCancelled: Bool { flag.load(ordering: .sequentiallyConsistent) }
}
