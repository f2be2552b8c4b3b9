// libFuzzer entry for AWSChunkedDecoder, compiled together with the decoder source by
// fuzz/run-aws-chunked.sh (not part of the Swift package; the decoder imports nothing).
//
// Input byte 0 picks the mode (low 2 bits) and a piece size (high 6 bits); the rest is the body.
// Invariants: no crash, progress on every step, data ranges inside the input, at most as many data bytes
// as the chunk headers announced, nothing accepted after the end, and the same outcome whether the body
// is fed in one piece or in small pieces.

struct Outcome: Equatable {
    var events: [String] = []
    var data: [UInt8] = []
    var error: String?
    var done = false
}

func run(_ input: [UInt8], mode: AWSChunkedMode, pieceSize: Int) -> Outcome {
    var limits = AWSChunkedLimits()
    limits.maxTrailerBytes = 256
    limits.maxTrailerFields = 4
    var decoder = AWSChunkedDecoder(mode: mode, limits: limits)
    var out = Outcome()
    var announced: Int64 = 0
    var offset = 0
    var steps = 0
    while offset < input.count {
        let end = min(input.count, offset + pieceSize)
        var piece = Array(input[offset..<end])
        offset = end
        while !piece.isEmpty {
            steps += 1
            if steps > 10 * (input.count + 10) { fatalError("no progress") }
            let result: (consumed: Int, event: AWSChunkedEvent)
            do {
                result = try piece.withUnsafeBytes { try decoder.feed($0) }
            } catch let error as AWSChunkedError {
                out.error = error.message
                return out
            } catch {
                fatalError("untyped error")
            }
            if result.consumed < 1 || result.consumed > piece.count { fatalError("bad consumed count") }
            switch result.event {
            case .needMore:
                if result.consumed != piece.count { fatalError("needMore left bytes") }
            case .data(let range):
                if range.isEmpty || range.lowerBound != 0 || range.upperBound != result.consumed { fatalError("bad data range") }
                out.data += piece[range]
                if Int64(out.data.count) > announced { fatalError("more data than announced") }
            case .chunk(let size, let signature):
                if size < 0 || (signature != nil) != mode.chunksSigned { fatalError("bad chunk header") }
                announced += size
                out.events.append("chunk \(size)")
            case .chunkEnd:
                out.events.append("end-chunk")
            case .trailer(let name, let value):
                if name.isEmpty || !mode.allowsTrailer { fatalError("bad trailer") }
                out.events.append("trailer \(name) \(value)")
            case .end(let signature):
                if (signature != nil) != (mode == .signedWithTrailer) { fatalError("bad end") }
                out.events.append("end")
                out.done = true
            }
            piece.removeFirst(result.consumed)
        }
    }
    if out.done && Int64(out.data.count) != announced { fatalError("ended short of the announced data") }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
    guard count > 0 else { return 0 }
    let control = bytes[0]
    let modes: [AWSChunkedMode] = [.signed, .signedWithTrailer, .unsignedWithTrailer, .unsignedWithTrailer]
    let mode = modes[Int(control & 0x03)]
    let data = Array(UnsafeBufferPointer(start: bytes + 1, count: count - 1))
    let whole = run(data, mode: mode, pieceSize: max(1, data.count))
    let split = run(data, mode: mode, pieceSize: Int(control >> 2) + 1)
    if whole != split { fatalError("split changes the outcome") }
    return 0
}
