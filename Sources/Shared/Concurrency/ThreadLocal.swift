import Glibc

/// One object per thread, made on the thread's first `current` and released when the thread ends: state a
/// request path can use without any lock because no other thread ever sees it (caches, scratch buffers).
///
/// Each instance takes one pthread key, a process-wide resource (at least 128), so instances are made once
/// (`static let`) and live as long as the process.
public final class ThreadLocal<Value: AnyObject>: @unchecked Sendable {
    // Written once in init; pthread_getspecific/setspecific only touch the calling thread's slot.
    private let key: pthread_key_t
    private let make: @Sendable () -> Value

    public init(_ make: @escaping @Sendable () -> Value) {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<AnyObject>.fromOpaque(pointer).release() }
        }
        precondition(rc == 0, "pthread_key_create failed")
        self.key = key
        self.make = make
    }

    /// The calling thread's object, made on first use.
    public var current: Value {
        if let raw = pthread_getspecific(key) {
            return Unmanaged<Value>.fromOpaque(raw).takeUnretainedValue()
        }
        let made = make()
        // Released by the key's destructor (as AnyObject: the same native reference) when the thread ends.
        pthread_setspecific(key, Unmanaged.passRetained(made).toOpaque())
        return made
    }
}
