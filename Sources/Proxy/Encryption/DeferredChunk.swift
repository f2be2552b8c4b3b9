import Shared

/// How a caller takes some whole chunks of a stream to open them itself later, on another thread, so that one
/// stream's decryption can share two cores (`ChunkOpener.update(_:space:emit:deferring:)`; issue 12's single-stream
/// GET, bounded by the one thread that received and decrypted everything).
public struct ChunkDeferral {
    /// Asked for each whole chunk that is known not to be the segment's last: hand this one over?
    public var wants: () -> Bool
    /// Receives a chunk handed over. Its bytes are ciphertext until `DeferredChunk.open()` succeeds: the caller
    /// must open it before it releases any of them, and drop them if that fails.
    public var take: (DeferredChunk) throws -> Void

    public init(wants: @escaping () -> Bool, take: @escaping (DeferredChunk) throws -> Void) {
        self.wants = wants
        self.take = take
    }
}

/// One non-final chunk whose ciphertext lies where its plaintext goes (`target`, a whole chunk's plaintext long),
/// with its tag and what opening it there takes. `open()` decrypts in place and checks the tag; a chunk that fails
/// is left as zeros. Chunks of one segment share one `DeferredOpener`, so they are opened one at a time, in order
/// (a relay's second thread does).
public struct DeferredChunk {
    let opener: DeferredOpener
    let index: UInt64
    let tag: (UInt64, UInt64)
    /// Where the chunk's plaintext will be (its ciphertext until opened).
    public let target: UnsafeMutableRawBufferPointer

    /// Decrypts the chunk where it lies and verifies it; throws `tamperDetected` (the target zeroed) when the
    /// stored chunk was modified: the chunk was known not to be the last, so no other diagnosis applies.
    public func open() throws(EncryptionError) {
        opener.nonceAAD.set(index: index, final: false)
        do {
            try opener.box.context.openStart(nonce: UnsafeRawBufferPointer(opener.nonceAAD.nonce),
                                             aad: UnsafeRawBufferPointer(opener.nonceAAD.aad))
            try opener.box.context.openUpdate(UnsafeRawBufferPointer(target), into: target.baseAddress!)
            var tag = self.tag
            try withUnsafeBytes(of: &tag) { (bytes) throws(AEADError) in
                try opener.box.context.openFinish(tag: bytes, wiping: target)
            }
        } catch AEADError.authenticationFailed {
            throw EncryptionError(.tamperDetected, "chunk \(index) failed authentication: the stored object was modified, reordered or spliced")
        } catch {
            SecureMemory.cleanse(target)
            throw EncryptionError(.internalFailure, "opening chunk \(index) failed: \(error)")
        }
    }
}

/// The context that opens one segment's deferred chunks: a duplicate of its opener's cipher context (same key,
/// no new key schedule) and a nonce/AAD buffer of its own, for the thread that opens them.
final class DeferredOpener {
    let box: OpenContextBox
    let nonceAAD: ChunkNonceAAD

    init(duplicating context: borrowing AEADContext, chunkSize: Int, partNumber: Int) throws(EncryptionError) {
        do {
            box = OpenContextBox(try context.duplicate())
        } catch {
            throw EncryptionError(.internalFailure, "cannot duplicate the content cipher: \(error)")
        }
        nonceAAD = ChunkNonceAAD(cipher: context.algorithm, chunkSize: chunkSize, partNumber: partNumber)
    }
}
