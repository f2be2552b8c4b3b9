import Shared

/// Builds the per-chunk nonce and AAD of docs/FORMAT.md §5 in place, so sealing allocates nothing.
struct ChunkNonceAAD: ~Copyable {
    let nonce: UnsafeMutableRawBufferPointer
    let aad: UnsafeMutableRawBufferPointer
    /// Both in one allocation (every read and write of an object makes one of these).
    private let storage: UnsafeMutableRawBufferPointer
    private static let aadOffset = 16

    init(cipher: AEADAlgorithm, chunkSize: Int, partNumber: Int) {
        storage = .allocate(byteCount: Self.aadOffset + FormatV1.chunkAADSize, alignment: 8)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        nonce = UnsafeMutableRawBufferPointer(rebasing: storage[0..<12])
        aad = UnsafeMutableRawBufferPointer(rebasing: storage[Self.aadOffset...])
        for (i, byte) in FormatV1.chunkAADMagic.enumerated() { aad[i] = byte }
        aad[4] = FormatV1.versionByte
        aad[5] = cipher.rawValue
        aad[6] = 0          // final flag, set per chunk
        aad[7] = 0          // reserved
        aad.storeBytes(of: UInt32(chunkSize).bigEndian, toByteOffset: 8, as: UInt32.self)
        aad.storeBytes(of: UInt32(partNumber).bigEndian, toByteOffset: 12, as: UInt32.self)
    }

    deinit {
        storage.deallocate()
    }

    func set(index: UInt64, final: Bool) {
        nonce[0] = final ? FormatV1.finalNonceFlag : 0
        nonce.storeBytes(of: index.bigEndian, toByteOffset: 4, as: UInt64.self)
        aad[6] = final ? 1 : 0
        aad.storeBytes(of: index.bigEndian, toByteOffset: 16, as: UInt64.self)
    }
}
