import Testing
@testable import Shared

@Suite struct ProcessorBudgetTests {
    @Test(arguments: [
        (64, [String](), 64),                           // no cgroup v2 quota anywhere
        (64, ["max 100000\n"], 64),                     // cgroup without a limit
        (64, ["200000 100000\n"], 2),                   // a pod limited to 2 CPUs on a 64-core node
        (64, ["150000 100000\n"], 2),                   // 1.5 CPUs: rounds up
        (64, ["50000 100000\n"], 1),                    // half a CPU: at least one
        (2, ["800000 100000\n"], 2),                    // a quota above the CPUs the process may use
        (64, ["max 100000\n", "400000 100000\n", "800000 100000\n"], 4),  // the tightest ancestor wins
        (64, ["garbage\n", "-1 100000\n", "0 100000\n", "100000 0\n", "1 2 3\n", ""], 64),  // not understood: ignored
        (0, [String](), 1),
    ] as [(Int, [String], Int)])
    func coresAreTheCPUsCappedByTheTightestQuota(online: Int, files: [String], expected: Int) {
        #expect(ProcessorBudget.cores(online: online, cpuMaxFiles: files) == expected)
    }
}
