import Testing
@testable import Proxy

/// Only that the benchmark runs and validates its flags; the figures go to bench/engine.sh.
@Suite struct EngineBenchmarkTests {
    @Test func runsSmallAndRejectsBadFlags() throws {
        #expect(runEngineBenchmark(arguments: ["--total-mib", "2", "--piece-kib", "100", "--chunk-size", "4096"]) == 0)
        #expect(runEngineBenchmark(arguments: ["--total-mib", "1", "--cipher", "chacha20-poly1305"]) == 0)
        #expect(runEngineBenchmark(arguments: ["--total-mib"]) == 2)
        #expect(runEngineBenchmark(arguments: ["--chunk-size", "12"]) == 2)
        #expect(runEngineBenchmark(arguments: ["--cipher", "rot13"]) == 2)
        #expect(runEngineBenchmark(arguments: ["--bogus", "1"]) == 2)
        let report = try EngineBenchmark(layout: ChunkLayout(chunkSize: 4096), cipher: .aes256GCM, totalBytes: 1 << 20, pieceBytes: 3000).run()
        #expect(report.map(\.0) == ["aead_seal_mib_s", "engine_seal_mib_s", "engine_open_mib_s"])
        #expect(report.allSatisfy { $0.1 > 0 && $0.1.isFinite })
    }
}
