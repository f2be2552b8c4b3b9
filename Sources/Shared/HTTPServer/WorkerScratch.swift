import Glibc

/// A pool thread's own buffers: the read buffer and the response-gathering buffer every request on that
/// thread uses. Made on the thread's first request and freed when the thread ends, so connections
/// waiting in the event loop hold no buffers at all.
final class WorkerScratch {
    let readBuffer: UnsafeMutableRawBufferPointer
    let outputBuffer: UnsafeMutableRawBufferPointer
    init(readBufferSize: Int) {
        readBuffer = .allocate(byteCount: max(readBufferSize, 4096), alignment: 16)
        outputBuffer = .allocate(byteCount: ConnectionResponseWriter.coalesceLimit, alignment: 16)
    }

    deinit {
        // Request and response bytes passed through these buffers (plaintext of decrypted reads and of
        // uploads before sealing): wiped when the thread ends, before the memory is reused.
        SecureMemory.cleanse(readBuffer)
        SecureMemory.cleanse(outputBuffer)
        readBuffer.deallocate()
        outputBuffer.deallocate()
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<WorkerScratch>.fromOpaque(pointer).release() }
        }
        precondition(rc == 0, "pthread_key_create failed")
        return key
    }()

    /// The calling thread's scratch, made on first use with at least `readBufferSize` bytes to read into.
    static func current(readBufferSize: Int) -> WorkerScratch {
        if let raw = pthread_getspecific(key) {
            let scratch = Unmanaged<WorkerScratch>.fromOpaque(raw).takeUnretainedValue()
            if scratch.readBuffer.count >= readBufferSize { return scratch }
            Unmanaged<WorkerScratch>.fromOpaque(raw).release()
        }
        let scratch = WorkerScratch(readBufferSize: readBufferSize)
        pthread_setspecific(key, Unmanaged.passRetained(scratch).toOpaque())
        return scratch
    }
}
