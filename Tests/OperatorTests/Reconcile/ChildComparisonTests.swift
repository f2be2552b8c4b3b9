import Testing
@testable import Operator

@Suite struct ChildComparisonTests {
    static let desired: JSONValue = [
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": ["name": "gw", "namespace": "ns", "labels": ["a": "b"]],
        "spec": ["replicas": 3, "template": ["spec": ["containers": [["name": "c", "resources": ["requests": ["cpu": "500m"]]]]]],
                 "strategy": ["rollingUpdate": ["maxSurge": 1]]],
    ]

    /// What the API server gives back: the applied fields plus defaults, status and bookkeeping.
    static func live(_ stamped: JSONValue) -> JSONValue {
        var l = stamped
        l["metadata"]?["uid"] = "u"
        l["metadata"]?["resourceVersion"] = "12"
        l["spec"]?["revisionHistoryLimit"] = 10
        l["spec"]?["template"]?["spec"]?["containers"] = [["name": "c", "resources": ["requests": ["cpu": "0.5"]],
                                                            "terminationMessagePath": "/dev/termination-log"]]
        l["status"] = ["replicas": 3]
        return l
    }

    @Test func decisionTable() {
        let stamped = ChildComparison.stamped(Self.desired)
        let live = Self.live(stamped)
        #expect(ChildComparison.needsApply(stamped, live: nil), "missing → apply")
        #expect(!ChildComparison.needsApply(stamped, live: live), "server defaults and an equal quantity → nothing to do")

        var edited = live
        edited["spec"]?["replicas"] = 5
        #expect(ChildComparison.needsApply(stamped, live: edited), "drift of an owned field → apply")
        var removed = live
        removed["metadata"]?["labels"] = nil
        #expect(ChildComparison.needsApply(stamped, live: removed), "owned field deleted → apply")

        // The operator stops setting a field (e.g. replicas once an autoscaler owns it): only the hash shows it.
        var less = Self.desired
        less["spec"]?["replicas"] = nil
        let stampedLess = ChildComparison.stamped(less)
        #expect(ChildComparison.contains(live["spec"], stampedLess[path: "spec"]!))
        #expect(ChildComparison.needsApply(stampedLess, live: live), "desired changed → apply")

        // Hash annotation removed by someone → apply (restores it).
        var noHash = live
        noHash["metadata"]?["annotations"] = nil
        #expect(ChildComparison.needsApply(stamped, live: noHash))
    }

    @Test func listsMatchElementwiseInAnyOrder() {
        let d: JSONValue = ["m": [["t": "cpu"], ["t": "memory"]]]
        #expect(ChildComparison.contains(["m": [["t": "memory", "x": 1], ["t": "cpu"]]], d))
        #expect(!ChildComparison.contains(["m": [["t": "memory"], ["t": "memory"]]], d))
        #expect(!ChildComparison.contains(["m": [["t": "cpu"]]], d))
        #expect(ChildComparison.contains(["other": 1], ["m": [] as JSONValue, "o": [:]]), "empty desired matches missing")
    }

    @Test func quantitiesCompareByValue() {
        for (a, b, equal) in [("500m", "0.5", true), ("1Gi", "1024Mi", true), ("1", "1000m", true), ("128Mi", "128M", false),
                              ("2", "2k", false), ("1e3", "1k", true)] {
            #expect((ChildComparison.quantityValue(a) == ChildComparison.quantityValue(b)) == equal, "\(a) vs \(b)")
        }
        #expect(ChildComparison.quantityValue("5 apples") == nil)
        #expect(!ChildComparison.contains("60s", "1m"))
    }
}
