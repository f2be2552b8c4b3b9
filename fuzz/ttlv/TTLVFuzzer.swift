// libFuzzer entry for the KMIP TTLV decoder, compiled together with Sources/Proxy/Keys/KMIP/TTLV.swift
// by fuzz/run-ttlv.sh (not part of the Swift package).
//
// Invariants: no crash or hang; whatever decodes re-encodes to exactly the input (the decoder
// accepts only canonical encodings); the framing size agrees with the decoder on well-formed input.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
    let data = Array(UnsafeBufferPointer(start: bytes, count: count))
    var limits = TTLV.Limits()
    limits.maxMessageSize = 1 << 16
    limits.maxItems = 512
    do {
        let item = try TTLV.decode(data, limits: limits)
        if item.encoded() != data { fatalError("decoded item does not re-encode to its input") }
        if case .structure = item.value, (try? TTLV.messageSize(header: data.prefix(8), limits: limits)) != data.count {
            fatalError("messageSize disagrees with the decoder")
        }
    } catch {
        // TTLVError: refused, as it should be.
    }
    return 0
}
