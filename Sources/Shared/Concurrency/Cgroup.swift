import Foundation

/// Where this process's cgroup limits are read from: the paths of `/proc/self/cgroup` and the directories
/// of a limit file, shared by `ProcessorBudget` (CPU quota) and `MemoryBudget` (memory limit). Pure, so the
/// parsing is table-tested; `limitFiles` alone touches the file system.
enum Cgroup {
    /// The cgroup v2 path of this process ("0::/kubepods/…" in /proc/self/cgroup), nil without cgroup v2.
    static func v2Path(procSelfCgroup: String) -> String? {
        for line in procSelfCgroup.split(separator: "\n") where line.hasPrefix("0::") {
            let path = line.dropFirst(3)
            return path.hasPrefix("/") ? String(path) : nil
        }
        return nil
    }

    /// The cgroup v1 path of this process in the hierarchy of `controller` ("4:memory:/kubepods/…", or
    /// "7:cpu,cpuacct:/…" where controllers share a hierarchy), nil when no v1 hierarchy has it.
    static func v1Path(procSelfCgroup: String, controller: String) -> String? {
        for line in procSelfCgroup.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[0] != "0",
                  fields[1].split(separator: ",").contains(where: { $0 == controller }) else { continue }
            return fields[2].hasPrefix("/") ? String(fields[2]) : nil
        }
        return nil
    }

    /// The directories whose limit files bound a process in cgroup `path`: its own and every ancestor's,
    /// below the mount point, and the mount point itself.
    static func directories(path: String, mount: String) -> [String] {
        var directories: [String] = []
        var components = path.split(separator: "/").map(String.init)
        while !components.isEmpty {
            directories.append(mount + "/" + components.joined(separator: "/"))
            components.removeLast()
        }
        // With a cgroup namespace (a container's usual view) the process's own cgroup is the mount point.
        directories.append(mount)
        return directories
    }

    /// The contents of every limit file that bounds this process: `v2File` in its cgroup v2 directories,
    /// and (when given) `v1File` in its directories of the cgroup v1 `v1Controller` hierarchy. Files that do
    /// not exist are left out.
    static func limitFiles(v2File: String, v1Controller: String? = nil, v1File: String? = nil,
                           root: String = "/sys/fs/cgroup") -> [String]
    {
        let procSelf = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
        var paths = directories(path: v2Path(procSelfCgroup: procSelf) ?? "/", mount: root).map { $0 + "/" + v2File }
        if let controller = v1Controller, let file = v1File {
            let path = v1Path(procSelfCgroup: procSelf, controller: controller) ?? "/"
            paths += directories(path: path, mount: root + "/" + controller).map { $0 + "/" + file }
        }
        return paths.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }
    }
}
