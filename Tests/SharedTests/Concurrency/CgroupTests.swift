import Testing
@testable import Shared

@Suite struct CgroupTests {
    @Test(arguments: [
        ("0::/kubepods.slice/pod1/cri-abc\n", "/kubepods.slice/pod1/cri-abc"),
        ("12:cpu,cpuacct:/docker/1\n0::/\n", "/"),
        ("4:memory:/x\n1:cpu:/\n", nil),                // cgroup v1 only
        ("0::relative\n", nil),
    ] as [(String, String?)])
    func v2PathComesFromTheUnifiedLine(content: String, expected: String?) {
        #expect(Cgroup.v2Path(procSelfCgroup: content) == expected)
    }

    @Test(arguments: [
        ("4:memory:/kubepods/burstable/pod1/abc\n1:cpu:/\n0::/\n", "memory", "/kubepods/burstable/pod1/abc"),
        ("7:cpu,cpuacct:/docker/1\n4:memory:/m\n", "cpu", "/docker/1"),     // controllers sharing a hierarchy
        ("7:cpu,cpuacct:/docker/1\n4:memory:/m\n", "cpuacct", "/docker/1"),
        ("9:name=systemd:/\n0::/a\n", "memory", nil),                       // no v1 memory hierarchy
        ("0::/a\n", "memory", nil),                                         // cgroup v2 only
        ("4:memorysomething:/x\n", "memory", nil),                          // a name that only starts alike
        ("4:memory:relative\n", "memory", nil),
        ("4:memory\n", "memory", nil),                                      // not three fields
    ] as [(String, String, String?)])
    func v1PathComesFromTheControllersLine(content: String, controller: String, expected: String?) {
        #expect(Cgroup.v1Path(procSelfCgroup: content, controller: controller) == expected)
    }

    @Test func everyAncestorUpToTheMountIsRead() {
        #expect(Cgroup.directories(path: "/a/b/c", mount: "/m") == ["/m/a/b/c", "/m/a/b", "/m/a", "/m"])
        #expect(Cgroup.directories(path: "/", mount: "/m") == ["/m"])
    }
}
