import Foundation
import Shared
import Synchronization
import Testing

@Suite struct ReadMostlyTests {
    /// A thread that has read (and so cached) the value reads the replacement on its next read.
    @Test func aThreadThatReadBeforeAReplaceReadsTheNewValue() {
        let shared = ReadMostly("first")
        let step = DispatchSemaphore(value: 0), replaced = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let seen = Mutex<[String]>([])
        let thread = Thread {
            seen.withLock { $0.append(shared.value) }
            step.signal()
            replaced.wait()
            seen.withLock { $0.append(shared.value) }
            done.signal()
        }
        thread.start()
        step.wait()
        shared.replace("second")
        #expect(shared.value == "second")
        replaced.signal()
        done.wait()
        #expect(seen.withLock { $0 } == ["first", "second"])
    }

    /// Instances never read each other's values from a thread's cache, also when one thread reads more
    /// instances than the cache keeps, and after replacements of some of them.
    @Test func instancesStayApartBeyondTheThreadCache() {
        let many = (0..<20).map { ReadMostly($0) }
        for _ in 0..<3 {
            for (i, item) in many.enumerated() { #expect(item.value == i) }
        }
        for (i, item) in many.enumerated() where i % 3 == 0 { item.replace(i + 100) }
        for (i, item) in many.enumerated() { #expect(item.value == (i % 3 == 0 ? i + 100 : i)) }
    }
}
