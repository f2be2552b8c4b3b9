import Glibc
import Synchronization

/// What happened when the certificate files changed.
public enum TLSReloadEvent: Sendable {
    /// The new certificate and key are in use for new connections.
    case reloaded(TLSCertificateInfo)
    /// The changed files could not be used; the last good certificate stays in use.
    case failed(TLSError)
}

/// A server `TLSContext` that follows its certificate and key files (cert-manager and Kubernetes Secret
/// volumes replace them in place, by an atomic symlink swap). New connections take `current()`; sessions
/// already open keep the context they started with.
///
/// The files are looked at (two `stat` calls) at most once per `checkInterval`, on the way to a handshake,
/// so an idle server does no work. A change that does not load (a key that does not match yet, a half-written
/// file) keeps the last good context and is reported once per change; the next change is tried again.
public final class ReloadingTLSContext: Sendable {
    typealias Stamp = FileStamp

    struct State {
        var context: TLSContext
        /// Stamps of the files the current context (or the last failed attempt) was made from.
        var loaded: [Stamp?]
        var failed: [Stamp?]?
        var lastCheck: ContinuousClock.Instant
    }

    public let certificateFile: String
    public let keyFile: String
    public let checkInterval: Duration
    private let onEvent: @Sendable (TLSReloadEvent) -> Void
    private let state: Mutex<State>

    /// Loads the files now; a failure here is a configuration error (the caller exits).
    public init(certificateFile: String, keyFile: String, checkInterval: Duration = .seconds(1),
                onEvent: @escaping @Sendable (TLSReloadEvent) -> Void = { _ in }) throws(TLSError) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.checkInterval = checkInterval
        self.onEvent = onEvent
        let stamps = [Self.stamp(certificateFile), Self.stamp(keyFile)]
        let context = try TLSContext.server(certificateFile: certificateFile, keyFile: keyFile)
        state = Mutex(State(context: context, loaded: stamps, failed: nil, lastCheck: .now))
    }

    /// The certificate in use.
    public var certificate: TLSCertificateInfo? { state.withLock { $0.context }.certificate }

    /// The context for a new connection, reloaded first if the files changed.
    public func current() -> TLSContext {
        let now = ContinuousClock.now
        let (context, due) = state.withLock { s -> (TLSContext, Bool) in
            if now - s.lastCheck < checkInterval { return (s.context, false) }
            s.lastCheck = now
            return (s.context, true)
        }
        guard due else { return context }
        return reloadIfChanged() ?? context
    }

    /// Looks at the files now; returns the new context when they changed and loaded.
    @discardableResult
    public func reloadIfChanged() -> TLSContext? {
        let stamps = [Self.stamp(certificateFile), Self.stamp(keyFile)]
        let unchanged = state.withLock { s in s.loaded == stamps || s.failed == stamps }
        if unchanged { return nil }
        do {
            let fresh = try TLSContext.server(certificateFile: certificateFile, keyFile: keyFile)
            state.withLock { s in
                s.context = fresh
                s.loaded = stamps
                s.failed = nil
            }
            if let info = fresh.certificate { onEvent(.reloaded(info)) }
            return fresh
        } catch {
            state.withLock { s in s.failed = stamps }
            onEvent(.failed(error))
            return nil
        }
    }

    static func stamp(_ path: String) -> Stamp? { FileStamp.of(path) }
}
