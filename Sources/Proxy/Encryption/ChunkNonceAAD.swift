import Shared

/// Builds the per-chunk nonce and AAD of docs/FORMAT.md §5 in place, so sealing allocates nothing.
struct ChunkNonceAAD: ~Copyable {
    let nonce: UnsafeMutableRawBufferPointer
    let aad: UnsafeMutableRawBufferPointer

    init(cipher: AEADAlgorithm, chunkSize: Int, partNumber: Int) {
        nonce = .allocate(byteCount: 12, alignment: 8)
        nonce.initializeMemory(as: UInt8.self, repeating: 0)
        aad = .allocate(byteCount: FormatV1.chunkAADSize, alignment: 8)
        aad.initializeMemory(as: UInt8.self, repeating: 0)
        for (i, byte) in FormatV1.chunkAADMagic.enumerated() { aad[i] = byte }
        aad[4] = FormatV1.versionByte
        aad[5] = cipher.rawValue
        aad[6] = 0          // final flag, set per chunk
        aad[7] = 0          // reserved
        aad.storeBytes(of: UInt32(chunkSize).bigEndian, toByteOffset: 8, as: UInt32.self)
        aad.storeBytes(of: UInt32(partNumber).bigEndian, toByteOffset: 12, as: UInt32.self)
    }

    deinit {
        nonce.deallocate()
        aad.deallocate()
    }

    func set(index: UInt64, final: Bool) {
        nonce[0] = final ? FormatV1.finalNonceFlag : 0
        nonce.storeBytes(of: index.bigEndian, toByteOffset: 4, as: UInt64.self)
        aad[6] = final ? 1 : 0
        aad.storeBytes(of: index.bigEndian, toByteOffset: 16, as: UInt64.self)
    }
}
