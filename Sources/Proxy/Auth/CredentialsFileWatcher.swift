import Foundation
import Shared
import Synchronization

/// Receives what the watcher did, for logs and metrics.
protocol CredentialsReloadObserver: Sendable {
    func credentialsLoaded(count: Int, path: String)
    func credentialsReloadFailed(path: String, reason: String)
}

/// Keeps a `CredentialStore` in step with `GATEWAY_CREDENTIALS_FILE` (plus the optional single pair from
/// `GATEWAY_ACCESS_KEY`/`GATEWAY_SECRET_KEY`).
///
/// The file is re-read every `interval` and applied when its bytes changed, which also covers Kubernetes
/// Secret volumes (their files are swapped through symlinks, so modification times are not reliable).
/// A file that cannot be read or is invalid keeps the last good set; the failure is reported once per
/// distinct content, so a broken file does not flood the log.
final class CredentialsFileWatcher: Sendable {
    let path: String
    let store: CredentialStore
    private let fixed: [Credential]
    private let observer: any CredentialsReloadObserver
    private let interval: Duration
    private struct State {
        var lastDigest: [UInt8]?
        var lastFailure: String?
        var stopped = false
    }
    private let state = Mutex(State())

    /// Loads the file once; throws (with a message that never quotes a secret) when it is unusable,
    /// which is a start-up configuration error.
    init(path: String, fixed: [Credential], observer: any CredentialsReloadObserver,
         interval: Duration = .seconds(2)) throws(CredentialsFile.Invalid) {
        self.path = path
        self.fixed = fixed
        self.observer = observer
        self.interval = interval
        let data = try Self.read(path)
        let credentials = try Self.merge(CredentialsFile.parse(data), fixed: fixed)
        store = CredentialStore(credentials)
        state.withLock { $0.lastDigest = Digest.hash(.sha256, data) }
        observer.credentialsLoaded(count: credentials.count, path: path)
    }

    /// Starts the polling thread.
    func start() {
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18)
                if state.withLock({ $0.stopped }) { return }
                reloadIfChanged()
            }
        }
        thread.name = "credentials-watcher"
        thread.start()
    }

    func stop() { state.withLock { $0.stopped = true } }

    /// Reads the file and applies it if its content changed. Returns whether a new set was applied.
    @discardableResult
    func reloadIfChanged() -> Bool {
        let data: [UInt8]
        do {
            data = try Self.read(path)
        } catch {
            report(error.message, key: "unreadable")
            return false
        }
        let digest = Digest.hash(.sha256, data)
        let unchanged = state.withLock { state -> Bool in
            guard state.lastDigest == digest else { return false }
            state.lastFailure = nil  // back to the good content: the next breakage is news again
            return true
        }
        if unchanged { return false }
        do {
            let credentials = try Self.merge(CredentialsFile.parse(data), fixed: fixed)
            store.replace(with: credentials)
            state.withLock {
                $0.lastDigest = digest
                $0.lastFailure = nil
            }
            observer.credentialsLoaded(count: credentials.count, path: path)
            return true
        } catch {
            report(error.message, key: Encoding.hex(digest))
            return false
        }
    }

    /// Reports a failure once per broken content (or once while the file stays unreadable).
    private func report(_ reason: String, key: String) {
        let isNew = state.withLock { state -> Bool in
            defer { state.lastFailure = key }
            return state.lastFailure != key
        }
        if isNew { observer.credentialsReloadFailed(path: path, reason: reason) }
    }

    private static func read(_ path: String) throws(CredentialsFile.Invalid) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CredentialsFile.Invalid(message: "cannot be read")
        }
        return Array(data)
    }

    /// The file's credentials plus the environment's pair, which must not reuse one of the file's access keys.
    static func merge(_ fromFile: [Credential], fixed: [Credential]) throws(CredentialsFile.Invalid) -> [Credential] {
        let keys = Set(fromFile.map(\.accessKey))
        if let clash = fixed.first(where: { keys.contains($0.accessKey) }) {
            throw CredentialsFile.Invalid(message: "lists access key \(clash.accessKey), which GATEWAY_ACCESS_KEY already defines")
        }
        return fromFile + fixed
    }
}
