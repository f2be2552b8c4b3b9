import Foundation

/// How much memory this process may use: the machine's, capped by the tightest memory limit of its cgroup
/// and every ancestor — cgroup v2 `memory.max` or cgroup v1 `memory.limit_in_bytes`, which is what a
/// Kubernetes memory limit becomes. Going over it gets the process killed (the kernel's OOM killer), every
/// request in flight with it, so what the gateway holds at once is sized from this figure, as thread counts
/// are from `ProcessorBudget`.
public enum MemoryBudget {
    /// The budget of this process in bytes, read once.
    public static let current: Int = bytes(physical: Int(clamping: ProcessInfo.processInfo.physicalMemory),
                                           limitFiles: Cgroup.limitFiles(v2File: "memory.max", v1Controller: "memory",
                                                                         v1File: "memory.limit_in_bytes"))

    /// `physical` capped by the tightest limit given (each a decimal byte count; cgroup v2 writes "max" for
    /// none, cgroup v1 a huge number, which the machine's memory caps anyway). Content not in that form is
    /// ignored: a file we do not understand can only leave the figure as the machine allows.
    static func bytes(physical: Int, limitFiles: [String]) -> Int {
        var budget = max(0, physical)
        for content in limitFiles {
            guard let limit = Int(content.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 else { continue }
            budget = min(budget, limit)
        }
        return budget
    }
}
