import Foundation

/// How many processors this process can keep busy: the CPUs it may run on, capped by the CPU quota of its
/// cgroup v2 and every ancestor (`cpu.max`, which a Kubernetes CPU limit becomes). Thread counts are sized
/// from it (the worker pool's eager threads, the second decrypting threads of large reads).
///
/// Foundation's `activeProcessorCount` already honours the CPU affinity mask and a cgroup v1 quota, but not
/// cgroup v2's `cpu.max`: a pod limited to 2 CPUs on a 64-core node would size itself for 64 cores there, and
/// the worker pool would start 256 threads where 8 serve better (docs/http-server.md).
public enum ProcessorBudget {
    /// The budget of this process, read once.
    public static let current: Int = cores(online: ProcessInfo.processInfo.activeProcessorCount,
                                           cpuMaxFiles: readCPUMaxFiles())

    /// `online` capped by the tightest of the `cpu.max` contents given (each "max PERIOD" or "QUOTA PERIOD",
    /// in microseconds); a fractional quota rounds up (1.5 CPUs: two threads can each get some time). Content
    /// that is not in that form is ignored, so a file we do not understand can only leave the figure as the
    /// CPUs allow, never make it smaller.
    static func cores(online: Int, cpuMaxFiles: [String]) -> Int {
        var budget = max(1, online)
        for content in cpuMaxFiles {
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard fields.count == 2, fields[0] != "max",
                  let quota = Int(fields[0]), let period = Int(fields[1]), quota > 0, period > 0 else { continue }
            let (whole, rest) = quota.quotientAndRemainder(dividingBy: period)
            budget = min(budget, max(1, whole + (rest > 0 ? 1 : 0)))
        }
        return budget
    }

    /// Foundation reads cgroup v1's CPU quota already; only v2's `cpu.max` is ours to read (the root cgroup
    /// has none).
    private static func readCPUMaxFiles() -> [String] {
        Cgroup.limitFiles(v2File: "cpu.max")
    }
}
