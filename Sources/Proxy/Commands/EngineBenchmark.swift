import Foundation
import Shared

/// `s3-encryption-gateway bench-engine [--total-mib N] [--chunk-size BYTES] [--cipher aes-256-gcm|chacha20-poly1305]
/// [--piece-kib N]`: in-process throughput of the chunked engine (no I/O), one core.
///
/// Prints `key=value` lines (MiB/s of thread CPU time) that bench/engine.sh compares with `openssl speed`.
/// Returns 0, or 2 on bad arguments.
func runEngineBenchmark(arguments: [String]) -> Int32 {
    var totalMiB = 1024
    var chunkSize = FormatV1.defaultChunkSize
    var cipher = AEADAlgorithm.aes256GCM
    var pieceKiB = 1024
    var index = 0
    while index < arguments.count {
        let flag = arguments[index]
        guard index + 1 < arguments.count else {
            print("bench-engine: \(flag) needs a value")
            return 2
        }
        let value = arguments[index + 1]
        switch flag {
        case "--total-mib": totalMiB = Int(value) ?? -1
        case "--chunk-size": chunkSize = Int(value) ?? -1
        case "--piece-kib": pieceKiB = Int(value) ?? -1
        case "--cipher":
            guard let parsed = AEADAlgorithm(name: value.uppercased()) else {
                print("bench-engine: --cipher must be AES-256-GCM or CHACHA20-POLY1305")
                return 2
            }
            cipher = parsed
        default:
            print("bench-engine: unknown flag \(flag) (flags: --total-mib, --chunk-size, --cipher, --piece-kib)")
            return 2
        }
        index += 2
    }
    guard totalMiB > 0, pieceKiB > 0, let layout = try? ChunkLayout(chunkSize: chunkSize) else {
        print("bench-engine: --total-mib and --piece-kib must be positive, --chunk-size within 4096…16777216")
        return 2
    }
    do {
        let report = try EngineBenchmark(layout: layout, cipher: cipher, totalBytes: totalMiB << 20, pieceBytes: pieceKiB << 10).run()
        print("cipher=\(cipher.name)")
        print("chunk_size=\(chunkSize)")
        print("total_mib=\(totalMiB)")
        for (name, value) in report {
            print("\(name)=\(String(format: "%.1f", value))")
        }
        return 0
    } catch {
        print("bench-engine: \(error)")
        return 1
    }
}

/// The measurements behind `bench-engine`, separate from argument handling.
struct EngineBenchmark {
    let layout: ChunkLayout
    let cipher: AEADAlgorithm
    let totalBytes: Int
    let pieceBytes: Int

    /// Returns (metric, MiB/s) pairs: raw single-context AEAD on whole chunks, engine seal, engine open.
    func run() throws -> [(String, Double)] {
        let key = SecureRandom.bytes(32)
        let piece = SecureRandom.bytes(pieceBytes)
        let mib = Double(totalBytes) / 1_048_576

        // 1. The AEAD context alone, one chunk per call: the ceiling the engine can reach. (A fixed
        //    nonce is fine here only because the random key and the output are thrown away.)
        let context = try AEADContext(algorithm: cipher, key: key, sealing: true)
        var output = [UInt8](repeating: 0, count: layout.sealedChunkSize)
        let nonce = [UInt8](repeating: 0, count: 12)
        let chunks = totalBytes / layout.chunkSize
        let rawSeconds = try time {
            try piece.withUnsafeBytes { p in
                try output.withUnsafeMutableBytes { o in
                    try nonce.withUnsafeBytes { n in
                        let chunk = UnsafeRawBufferPointer(rebasing: p[0..<min(layout.chunkSize, p.count)])
                        for _ in 0..<chunks { _ = try context.seal(nonce: n, aad: UnsafeRawBufferPointer(start: nil, count: 0), plaintext: chunk, into: o) }
                    }
                }
            }
        }

        // 2. Engine seal: plaintext in `pieceBytes` pieces, sealed chunks emitted (and dropped).
        var sealedBytes = 0
        let sealSeconds = try time {
            let sealer = try ChunkSealer(cipher: cipher, segmentKey: key, layout: layout)
            try piece.withUnsafeBytes { p in
                var fed = 0
                while fed < totalBytes {
                    let n = min(p.count, totalBytes - fed)
                    try sealer.update(UnsafeRawBufferPointer(rebasing: p[0..<n])) { sealedBytes &+= $0.count }
                    fed += n
                }
            }
            try sealer.finish { sealedBytes &+= $0.count }
        }
        precondition(sealedBytes == layout.ciphertextLength(plaintextLength: totalBytes))

        // 3. Engine open: a sealed stream of `pieceBytes` (a fresh opener per pass, as per GET) opened
        //    repeatedly in one piece. Like the seal above and `openssl speed`, it reads a buffer that stays in
        //    the cache, so the ratio compares the cipher work, not memory bandwidth.
        let streamBytes = min(totalBytes, pieceBytes)
        var stream: [UInt8] = []
        stream.reserveCapacity(layout.ciphertextLength(plaintextLength: streamBytes))
        let streamSealer = try ChunkSealer(cipher: cipher, segmentKey: key, layout: layout)
        try piece.withUnsafeBytes { p in
            var fed = 0
            while fed < streamBytes {
                let n = min(p.count, streamBytes - fed)
                try streamSealer.update(UnsafeRawBufferPointer(rebasing: p[0..<n])) { stream.append(contentsOf: $0) }
                fed += n
            }
        }
        try streamSealer.finish { stream.append(contentsOf: $0) }
        let rounds = max(1, totalBytes / streamBytes)
        var openedBytes = 0
        let openSeconds = try time {
            try stream.withUnsafeBytes { s in
                for _ in 0..<rounds {
                    let opener = try ChunkOpener(cipher: cipher, segmentKey: key, layout: layout)
                    try opener.update(s) { openedBytes &+= $0.count }
                    try opener.finish { openedBytes &+= $0.count }
                }
            }
        }
        precondition(openedBytes == rounds * streamBytes)
        let openMiB = Double(rounds * streamBytes) / 1_048_576

        return [
            ("aead_seal_mib_s", Double(chunks * layout.chunkSize) / 1_048_576 / rawSeconds),
            ("engine_seal_mib_s", mib / sealSeconds),
            ("engine_open_mib_s", openMiB / openSeconds),
        ]
    }

    /// CPU time of this thread, not wall time: `openssl speed` divides by user CPU time too (unless
    /// `-elapsed`), which keeps the ratio meaningful on a machine shared with other work.
    private func time(_ body: () throws -> Void) rethrows -> Double {
        func now() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        }
        let start = now()
        try body()
        return now() - start
    }
}
