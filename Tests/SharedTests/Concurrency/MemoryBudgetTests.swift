import Testing
@testable import Shared

@Suite struct MemoryBudgetTests {
    static let gib = 1 << 30

    @Test(arguments: [
        (16 * gib, [String](), 16 * gib),                               // no limit file anywhere
        (16 * gib, ["max\n"], 16 * gib),                                // cgroup v2 without a limit
        (16 * gib, ["9223372036854771712\n"], 16 * gib),                // cgroup v1 without a limit
        (16 * gib, ["536870912\n"], 512 << 20),                         // a pod limited to 512Mi
        (16 * gib, ["max\n", "1073741824\n", "268435456\n", "max\n"], 256 << 20),  // the tightest ancestor wins
        (16 * gib, ["268435456"], 256 << 20),                           // no newline
        (256 << 20, ["1073741824\n"], 256 << 20),                       // a limit above the machine's memory
        (16 * gib, ["garbage\n", "-1\n", "0\n", "1 2\n", "", "12k\n"], 16 * gib),  // not understood: ignored
    ] as [(Int, [String], Int)])
    func budgetIsTheMachineCappedByTheTightestLimit(physical: Int, files: [String], expected: Int) {
        #expect(MemoryBudget.bytes(physical: physical, limitFiles: files) == expected)
    }
}
