import Shared

/// Builds the per-chunk nonce and AAD of docs/FORMAT.md §5 in place, so sealing allocates nothing.
struct ChunkNonceAAD: ~Copyable {
    let nonce: UnsafeMutableRawBufferPointer
    let aad: UnsafeMutableRawBufferPointer
    /// Both in one allocation (every read and write of an object makes one of these): its own, or nil when
    /// they live in memory of the owner's (`init(in:...)`), who frees it.
    private let storage: UnsafeMutableRawBufferPointer?
    private static let aadOffset = 16
    /// How many bytes `init(in:...)` uses.
    static let size = aadOffset + FormatV1.chunkAADSize

    init(cipher: AEADAlgorithm, chunkSize: Int, partNumber: Int) {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.size, alignment: 8)
        self.init(in: storage, owned: true, cipher: cipher, chunkSize: chunkSize, partNumber: partNumber)
    }

    /// Nonce and AAD in the first `size` bytes of `memory`, which the caller owns and keeps for as long as this
    /// lives (a chunk opener puts them in its buffers' allocation: one allocation less per read, issue 12).
    init(in memory: UnsafeMutableRawBufferPointer, cipher: AEADAlgorithm, chunkSize: Int, partNumber: Int) {
        self.init(in: memory, owned: false, cipher: cipher, chunkSize: chunkSize, partNumber: partNumber)
    }

    private init(in memory: UnsafeMutableRawBufferPointer, owned: Bool, cipher: AEADAlgorithm, chunkSize: Int, partNumber: Int) {
        precondition(memory.count >= Self.size, "nonce and AAD need \(Self.size) bytes")
        let memory = UnsafeMutableRawBufferPointer(rebasing: memory[0..<Self.size])
        storage = owned ? memory : nil
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        nonce = UnsafeMutableRawBufferPointer(rebasing: memory[0..<12])
        aad = UnsafeMutableRawBufferPointer(rebasing: memory[Self.aadOffset...])
        for (i, byte) in FormatV1.chunkAADMagic.enumerated() { aad[i] = byte }
        aad[4] = FormatV1.versionByte
        aad[5] = cipher.rawValue
        aad[6] = 0          // final flag, set per chunk
        aad[7] = 0          // reserved
        aad.storeBytes(of: UInt32(chunkSize).bigEndian, toByteOffset: 8, as: UInt32.self)
        aad.storeBytes(of: UInt32(partNumber).bigEndian, toByteOffset: 12, as: UInt32.self)
    }

    deinit {
        storage?.deallocate()
    }

    func set(index: UInt64, final: Bool) {
        nonce[0] = final ? FormatV1.finalNonceFlag : 0
        nonce.storeBytes(of: index.bigEndian, toByteOffset: 4, as: UInt64.self)
        aad[6] = final ? 1 : 0
        aad.storeBytes(of: index.bigEndian, toByteOffset: 16, as: UInt64.self)
    }
}
