import Testing
@testable import Operator

@Suite struct OperatorOptionsTests {
    @Test func defaultsMatchControllerRuntimeConventions() throws {
        let o = try OperatorOptions.parse([])
        #expect(o.kubeconfig == nil)
        #expect(o.namespace == nil)
        #expect(o.leaderElect)
        #expect(o.healthProbeBindAddress == ":8081")
        #expect(o.metricsBindAddress == ":8080")
        #expect(o.leaseDuration == .seconds(15) && o.renewDeadline == .seconds(10) && o.retryPeriod == .seconds(2))
        #expect(o.workers == 1)
        #expect(o.gracefulShutdownTimeout == .seconds(30))
    }

    @Test func parsesEveryFlagInBothForms() throws {
        let o = try OperatorOptions.parse([
            "--kubeconfig", "/tmp/kc", "--namespace=team", "--leader-elect=false",
            "--leader-election-namespace", "ops", "--leader-election-id=my-lock",
            "--leader-election-lease-duration=3s", "--leader-election-renew-deadline", "2s",
            "--leader-election-retry-period=500ms", "--health-probe-bind-address=127.0.0.1:0",
            "--metrics-bind-address", "0", "--workers=4", "--graceful-shutdown-timeout=1m30s", "--log-level=debug",
        ])
        #expect(o.kubeconfig == "/tmp/kc")
        #expect(o.namespace == "team")
        #expect(!o.leaderElect)
        #expect(o.leaderElectionNamespace == "ops")
        #expect(o.leaderElectionID == "my-lock")
        #expect(o.leaseDuration == .seconds(3) && o.renewDeadline == .seconds(2) && o.retryPeriod == .milliseconds(500))
        #expect(o.healthProbeBindAddress == "127.0.0.1:0")
        #expect(RunCommand.bindAddress(o.metricsBindAddress) == nil)
        #expect(o.workers == 4)
        #expect(o.gracefulShutdownTimeout == .seconds(90))
        #expect(o.logLevel == "debug")
    }

    @Test func bareBooleanFlagIsTrueAndLogLevelComesFromEnvironment() throws {
        let o = try OperatorOptions.parse(["--leader-elect"], environment: ["LOG_LEVEL": "warn"])
        #expect(o.leaderElect)
        #expect(o.logLevel == "warn")
        #expect(try OperatorOptions.parse(["--help"]).help)
    }

    @Test(arguments: [
        (["--bogus"], "unknown flag --bogus"),
        (["positional"], "unexpected argument"),
        (["--kubeconfig"], "needs a value"),
        (["--workers", "0"], "--workers"),
        (["--workers=lots"], "--workers"),
        (["--leader-elect=maybe"], "--leader-elect"),
        (["--leader-election-lease-duration=15"], "not a positive duration"),
        (["--graceful-shutdown-timeout=-1s"], "not a positive duration"),
        (["--leader-election-renew-deadline=20s"], "greater than the renew deadline"),
        (["--log-level=loud"], "LOG_LEVEL"),
        (["--leader-election-id="], "must not be empty"),
    ])
    func rejectsBadFlagsWithAMessage(_ args: [String], _ fragment: String) {
        #expect {
            _ = try OperatorOptions.parse(args)
        } throws: { error in
            (error as? OperatorOptions.ParseError)?.message.contains(fragment) == true
        }
    }

    @Test func inconsistentTimingsAreAcceptedWithoutLeaderElection() throws {
        let o = try OperatorOptions.parse(["--leader-elect=false", "--leader-election-renew-deadline=20s"])
        #expect(!o.leaderElect)
    }

    @Test(arguments: [
        ("15s", Duration.seconds(15)), ("500ms", .milliseconds(500)), ("1m30s", .seconds(90)), ("1.5s", .milliseconds(1500)),
        ("2h", .seconds(7200)), ("100us", .microseconds(100)), ("7ns", .nanoseconds(7)), ("0", .zero),
    ])
    func goDurations(_ text: String, _ expected: Duration) {
        #expect(GoDuration.parse(text) == expected)
    }

    @Test(arguments: ["", "15", "s", "1x", "-1s", "1s2", "1..5s", String(repeating: "1s", count: 40), "99999999999h"])
    func badGoDurations(_ text: String) {
        #expect(GoDuration.parse(text) == nil)
    }

    /// Random strings over the duration alphabet never crash the parser; accepted values are non-negative and
    /// round-trip for the simple single-unit form.
    @Test func randomizedDurationsNeverCrash() {
        var rng = SplitMix64(seed: 0xD0_0D_1E)
        let alphabet = Array("0123456789.nsuµmh-+ x".unicodeScalars)
        for _ in 0..<20000 {
            let n = Int.random(in: 0...12, using: &rng)
            let text = String(String.UnicodeScalarView((0..<n).map { _ in alphabet.randomElement(using: &rng)! }))
            if let d = GoDuration.parse(text) { #expect(d >= .zero) }
        }
        for _ in 0..<2000 {
            let value = Int.random(in: 0...100_000, using: &rng)
            #expect(GoDuration.parse("\(value)ms") == .milliseconds(value))
        }
    }

    /// Seeded mutations of valid flag vectors never crash the parser, and whatever it accepts is within bounds.
    @Test func randomizedMutationsNeverCrash() {
        var rng = SplitMix64(seed: 0x5EED_0F_F1A6)
        let seeds = ["--workers=3", "--leader-election-lease-duration=15s", "--namespace=a", "--leader-elect=false",
                     "--metrics-bind-address", ":9090", "--graceful-shutdown-timeout=1m30s"]
        let alphabet = Array("-=abcdefhilmnorstuw0123456789.:µ ".unicodeScalars)
        for _ in 0..<3000 {
            var args = (0..<Int.random(in: 0...5, using: &rng)).map { _ in seeds.randomElement(using: &rng)! }
            if !args.isEmpty {
                let i = Int.random(in: 0..<args.count, using: &rng)
                var scalars = Array(args[i].unicodeScalars)
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let pos = Int.random(in: 0...scalars.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: scalars.insert(alphabet.randomElement(using: &rng)!, at: pos)
                    case 1: if pos < scalars.count { scalars.remove(at: pos) }
                    default: if pos < scalars.count { scalars[pos] = alphabet.randomElement(using: &rng)! }
                    }
                }
                args[i] = String(String.UnicodeScalarView(scalars))
            }
            if let o = try? OperatorOptions.parse(args) {
                #expect((1...256).contains(o.workers))
                #expect(o.gracefulShutdownTimeout > .zero)
                #expect(!o.leaderElect || o.leaderElectionTimings.validate() == nil)
            }
        }
    }
}
