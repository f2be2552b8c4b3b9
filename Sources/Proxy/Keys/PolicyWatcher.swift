import Foundation
import Shared
import Synchronization

/// Reloads `ENCRYPTION_POLICY_FILE` when it changes (a ConfigMap update swaps the file behind a
/// symlink): checks the file's identity and size every `interval`, and its content hash every 10
/// checks, so a same-size in-place edit is seen too. A file that fails to parse or names an
/// unconfigured provider leaves the last good policy in force; the error is logged and counted.
///
/// Each request reads the policy once, when it starts, so a reload never changes the decision of a
/// request in flight.
final class PolicyWatcher: Sendable {
    let path: String
    let keys: KeyService
    let defaultKey: KeySpec
    private let logger: Logger
    private let telemetry: KeyTelemetry?
    private let state: Mutex<(stamp: FileStamp?, digest: [UInt8], checks: Int)>

    init(path: String, keys: KeyService, defaultKey: KeySpec, logger: Logger, telemetry: KeyTelemetry?) {
        self.path = path
        self.keys = keys
        self.defaultKey = defaultKey
        self.logger = logger
        self.telemetry = telemetry
        let data = FileManager.default.contents(atPath: path).map { Array($0) } ?? []
        self.state = Mutex((FileStamp.of(path), Digest.hash(.sha256, data), 0))
    }

    /// Checks every `interval` on a background thread for the life of the process.
    func start(interval: Duration = .seconds(1)) {
        let thread = Thread { [weak self] in
            while let watcher = self {
                watcher.check()
                let (s, atto) = interval.components
                Thread.sleep(forTimeInterval: Double(s) + Double(atto) / 1e18)
            }
        }
        thread.name = "policy-watcher"
        thread.start()
    }

    /// One check; reloads when the file changed. Returns whether a new policy was installed.
    @discardableResult
    func check() -> Bool {
        let stamp = FileStamp.of(path)
        let (changedStamp, hashCheck) = state.withLock { s -> (Bool, Bool) in
            s.checks += 1
            return (s.stamp != stamp, s.checks % 10 == 0)
        }
        guard changedStamp || hashCheck else { return false }
        guard let data = FileManager.default.contents(atPath: path).map({ Array($0) }) else {
            state.withLock { $0.stamp = stamp }
            reject("cannot read \(path)")
            return false
        }
        let digest = Digest.hash(.sha256, data)
        let same = state.withLock { s -> Bool in
            defer { s.stamp = stamp }
            return s.digest == digest
        }
        if same { return false }
        do {
            let policy = try BucketPolicy.parse(data, defaultKey: defaultKey, configured: keys.configuredProviders)
            try keys.replacePolicy(policy)
            state.withLock { $0.digest = digest }
            telemetry?.policyReloads.inc(["ok"])
            logger.info("encryption policy reloaded", ["path": .string(path), "rules": .int(policy.rules.count),
                                                       "sha256": .string(Encoding.hex(digest.prefix(8)))])
            return true
        } catch let error as PolicyError {
            state.withLock { $0.digest = digest }
            reject(error.message)
        } catch {
            state.withLock { $0.digest = digest }
            reject("\(error)")
        }
        return false
    }

    private func reject(_ reason: String) {
        telemetry?.policyReloads.inc(["error"])
        logger.error("encryption policy not reloaded; the previous policy stays in force",
                     ["path": .string(path), "error": .string(reason)])
    }
}
