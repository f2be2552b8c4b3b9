import Testing
@testable import Proxy
@testable import Shared

@Suite struct OptimisticReadTests {
    static let c = FormatV1.defaultChunkSize
    static let sealed = c + 16

    @Test(arguments: [
        (nil, String?.none),
        ("bytes=0-99", "bytes=0-\(sealed - 1)"),
        ("bytes=\(c)-\(c)", "bytes=\(sealed)-\(2 * sealed - 1)"),
        ("bytes=100-\(2 * c + 5)", "bytes=0-\(3 * sealed - 1)"),
        ("bytes=\(3 * c + 1)-", "bytes=\(3 * sealed)-"),
        ("bytes=5-99999999999999999999999", "bytes=0-"),   // `last` saturates: read to the end
        ("bytes=0-1,5-9", nil),                           // several ranges: the whole object, as S3 serves it
        ("items=0-9", nil),
    ] as [(String?, String?)])
    func asksForTheCiphertextTheDefaultLayoutWouldCover(range: String?, expected: String?) throws {
        let read = try #require(OptimisticRead(rangeHeader: range))
        #expect(read.backendRange == expected)
    }

    @Test func suffixRangesNeedTheSizeFirst() {
        #expect(OptimisticRead(rangeHeader: "bytes=-100") == nil)
        #expect(OptimisticRead(rangeHeader: "bytes=99999999999999999999999-") == nil)
    }

    /// Plays an S3 backend on a stored object of `stored` bytes: the status and head it answers `range` with.
    static func backendAnswer(stored: Int, range: String?) -> (status: Int, headers: [(name: String, value: String)]) {
        guard let range, let parsed = ByteRange.parse(range) else {
            return (200, [("Content-Length", "\(stored)")])
        }
        switch parsed.resolve(size: stored) {
        case .unsatisfiable:
            return (416, [("Content-Range", "bytes */\(stored)")])
        case .satisfiable(let first, let last):
            return (206, [("Content-Length", "\(last - first + 1)"), ("Content-Range", "bytes \(first)-\(last)/\(stored)")])
        }
    }

    static let ranges: [String?] = [nil, "bytes=0-0", "bytes=0-99", "bytes=1-70000", "bytes=65535-65536", "bytes=65536-",
                                    "bytes=0-", "bytes=131071-131100", "bytes=200000-300000", "bytes=5000000-",
                                    "bytes=10-5", "bytes=0-1,4-5"]
    static let sizes = [0, 1, 100, 65535, 65536, 65537, 131072, 200_001, 1_000_000]

    /// For every object size and client range: with the default chunk size the one answer always suffices and the
    /// plan is the one a HEAD would have given; with another chunk size a read is used only when the answer holds
    /// exactly the plan's bytes, else redone with the stored size the answer told.
    @Test(arguments: [FormatV1.defaultChunkSize, 4096, 1 << 20])
    func oneAnswerSufficesForTheDefaultLayout(chunkSize: Int) throws {
        let layout = try ChunkLayout(chunkSize: chunkSize)
        for size in Self.sizes {
            let stored = layout.ciphertextLength(plaintextLength: size)
            for range in Self.ranges {
                let read = try #require(OptimisticRead(rangeHeader: range))
                let answer = Self.backendAnswer(stored: stored, range: read.backendRange)
                let expected = try ReadPlan(storedLength: stored, layout: layout, rangeHeader: range)
                guard answer.status != 416 else {
                    // Only a range that selects nothing of the plaintext can miss the ciphertext entirely.
                    #expect(expected.status == 416, "size \(size) range \(range ?? "-")")
                    continue
                }
                let decision = try #require(try read.decide(status: answer.status, headers: answer.headers, layout: layout))
                switch decision {
                case .read(let plan):
                    #expect(plan == expected)
                    let received = OptimisticRead.receivedRange(status: answer.status, headers: answer.headers)
                    #expect(received?.range == plan.backendRange, "size \(size) range \(range ?? "-")")
                case .unsatisfiable(let plan):
                    #expect(plan == expected && plan.status == 416)
                case .redo(let storedLength):
                    #expect(chunkSize != FormatV1.defaultChunkSize, "size \(size) range \(range ?? "-")")
                    #expect(storedLength == stored)
                }
            }
        }
    }

    @Test func answersWithoutAUsableSizeNeedAHead() throws {
        let read = try #require(OptimisticRead(rangeHeader: "bytes=0-9"))
        #expect(try read.decide(status: 206, headers: [("Content-Range", "bytes 0-65551/*")], layout: .default) == nil)
        #expect(try read.decide(status: 206, headers: [("Content-Range", "bytes 9-2/100")], layout: .default) == nil)
        #expect(try read.decide(status: 206, headers: [], layout: .default) == nil)
        #expect(try read.decide(status: 200, headers: [], layout: .default) == nil)
        #expect(try read.decide(status: 304, headers: [("Content-Length", "5")], layout: .default) == nil)
        // A backend that ignores the range sends the whole object: read again.
        #expect(try read.decide(status: 200, headers: [("Content-Length", " 200000 ")],
                                layout: .default) == .redo(storedLength: 200_000))
    }

    @Test(arguments: [
        (206, [("Content-Range", "bytes 0-9/100")], 100, "bytes=0-9"),
        (206, [("content-range", "\t bytes 0-9/100 \t")], 100, "bytes=0-9"),
        (206, [("CONTENT-RANGE", "bytes 5-5/6")], 6, "bytes=5-5"),
        (206, [("Content-Rangex", "bytes 0-9/100")], nil, nil),
        (206, [("Content-Range", "items 0-9/100")], nil, nil),
        (206, [("Content-Range", "bytes 0-100/100")], nil, nil),
        (206, [("Content-Range", "bytes 0-9/ 100")], nil, nil),
        (200, [("CONTENT-LENGTH", " 42\t")], 42, nil),
        (200, [("Content-Length", "-1")], nil, nil),
        (200, [("Content-Length", "")], nil, nil),
        (200, [("X-Content-Length", "42")], nil, nil),
    ] as [(Int, [(String, String)], Int?, String?)])
    func receivedRangesReadCaseInsensitiveTrimmedHeaders(status: Int, headers: [(String, String)], stored: Int?, range: String?) {
        let received = OptimisticRead.receivedRange(status: status, headers: headers.map { (name: $0.0, value: $0.1) })
        #expect(received?.storedLength == stored)
        #expect(received?.range == range)
    }

    @Test func aStoredSizeNoWriterProducesIsAnError() throws {
        let read = try #require(OptimisticRead(rangeHeader: nil))
        #expect(throws: EncryptionError.self) {
            _ = try read.decide(status: 200, headers: [("Content-Length", "7")], layout: .default)
        }
    }
}
