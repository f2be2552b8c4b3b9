import Foundation

/// Polls `condition` every 5 ms for up to `limit` (a generous bound for something that must happen, never a timing
/// assertion and never a way to prove that something did not happen).
public func eventually(_ limit: Duration = .seconds(20), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.005)
    }
    return condition()
}
