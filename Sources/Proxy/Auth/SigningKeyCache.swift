import Shared
import Synchronization

/// SigV4 signing keys per (access key, secret, date, region, service): a key changes once a day per region,
/// while deriving it costs four HMACs.
///
/// Each thread keeps its own few keys (`perThread`, least recently used dropped first), so a lookup takes no
/// lock and writes nothing another thread reads; a key is a pure function of what it is filed under, so the
/// threads' copies never disagree. The one shared word is an epoch, read on every lookup and advanced by
/// `forgetAll()` when the credential set is replaced: each thread then drops every key it holds at its next
/// lookup, so keys (and secrets) of rotated or removed credentials do not stay cached.
enum SigningKeyCache {
    /// Keys one thread keeps at most.
    static let perThread = 16

    /// The signing key of `secret` for `scope`; `accessKey` (public) files it, `secret` must match too.
    static func key(accessKey: String, secret: String, scope: SigV4Scope) -> [UInt8] {
        entry(accessKey: accessKey, secret: secret, scope: scope).key
    }

    /// The HMAC-SHA256 of `stringToSign` under the signing key of `secret` for `scope` (a request's signature),
    /// and that key. The MAC runs on the thread's context keyed once for the entry, not re-keyed per message.
    static func sign(_ stringToSign: UnsafeRawBufferPointer, accessKey: String, secret: String, scope: SigV4Scope)
        -> (signature: Bytes32, signingKey: [UInt8])
    {
        let entry = entry(accessKey: accessKey, secret: secret, scope: scope)
        return (entry.mac.mac32(stringToSign), entry.key)
    }

    private static func entry(accessKey: String, secret: String, scope: SigV4Scope) -> ThreadKeys.Entry {
        let keys = threadKeys.current
        keys.forgetIfStale(epoch: epoch.load(ordering: .acquiring))
        if let entry = keys.lookup(accessKey: accessKey, secret: secret, scope: scope) { return entry }
        let key = SigV4.signingKey(secret: secret, scope: scope)
        let entry = ThreadKeys.Entry(accessKey: accessKey, secret: secret, scope: scope, key: key, mac: HMACSHA256Key(key: key))
        keys.insert(entry, limit: perThread)
        return entry
    }

    /// Drops every thread's keys (each at its next lookup): the credential set changed.
    static func forgetAll() {
        epoch.add(1, ordering: .releasing)
    }

    /// How many keys the calling thread holds (tests).
    static var countOnThisThread: Int {
        let keys = threadKeys.current
        keys.forgetIfStale(epoch: epoch.load(ordering: .acquiring))
        return keys.entries.count
    }

    private static let epoch = Atomic<UInt64>(0)
    private static let threadKeys = ThreadLocal { ThreadKeys() }

    /// One thread's keys, most recently used last. Only its own thread touches it.
    private final class ThreadKeys {
        /// A class: a lookup hands out one reference, not a copy of five fields (a retain and release each, twice
        /// per request; issue 12). Never changed after it is made.
        final class Entry {
            let accessKey: String
            let secret: String
            let scope: SigV4Scope
            let key: [UInt8]
            /// HMAC under `key`, set up once; only this thread uses it.
            let mac: HMACSHA256Key

            init(accessKey: String, secret: String, scope: SigV4Scope, key: [UInt8], mac: HMACSHA256Key) {
                self.accessKey = accessKey
                self.secret = secret
                self.scope = scope
                self.key = key
                self.mac = mac
            }
        }

        /// Unchecked exclusivity: only its own thread uses it, and no access to it overlaps another (no call out
        /// while one runs); the dynamic checks were ≈ 300 instructions per request (issue 12).
        @exclusivity(unchecked) var entries: [Entry] = []
        private var epoch: UInt64 = 0

        func forgetIfStale(epoch current: UInt64) {
            guard epoch != current else { return }
            entries.removeAll()
            epoch = current
        }

        func lookup(accessKey: String, secret: String, scope: SigV4Scope) -> Entry? {
            var i = entries.count - 1
            while i >= 0 {
                let entry = entries[i]
                // The secret is compared last and only for the entry of this access key and scope: both
                // sides are the gateway's own values, never client input.
                if entry.scope == scope, entry.accessKey == accessKey, entry.secret == secret {
                    if i != entries.count - 1 { entries.append(entries.remove(at: i)) }
                    return entry
                }
                i -= 1
            }
            return nil
        }

        func insert(_ entry: Entry, limit: Int) {
            // A rotated secret replaces its access key's entry for the same scope.
            entries.removeAll { $0.scope == entry.scope && $0.accessKey == entry.accessKey }
            if entries.count >= limit { entries.removeFirst(entries.count - limit + 1) }
            entries.append(entry)
        }
    }
}
