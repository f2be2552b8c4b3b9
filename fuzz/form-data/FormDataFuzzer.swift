// libFuzzer entry for MultipartFormData (the POST Object form parser), compiled together with the parser source
// by fuzz/run-form-data.sh (not part of the Swift package; the parser imports only Foundation).
//
// The boundary is fixed ("bnd"); the input is the body. Invariants: no crash; a parsed prelude's data offset lies
// inside the input and after its fields; parsing every prefix agrees with parsing the whole (nil before the
// prelude is complete, the same prelude after, or the same error); the tail check and the streaming delimiter
// scanner never crash, and the scanner finds the delimiter exactly when a plain search does, whatever the split.

let boundary = "bnd"

func parse(_ bytes: [UInt8]) -> Result<FormPrelude?, FormDataError> {
    do {
        return .success(try MultipartFormData.parsePrelude(bytes, boundary: boundary))
    } catch {
        return .failure(error)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ pointer: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: pointer, count: count))
    let whole = parse(input)
    if case .success(let prelude?) = whole {
        if prelude.dataOffset > input.count || prelude.dataOffset < 7 { fatalError("data offset outside the input") }
        // Every longer prefix gives the same prelude; the parser looks no further than the file's headers.
        if parse(Array(input[0..<prelude.dataOffset])) != whole { fatalError("prefix disagrees") }
        let delimiter = MultipartFormData.delimiter(boundary)
        let found = MultipartFormData.find(delimiter, in: input, from: prelude.dataOffset)
        if let end = found { _ = try? MultipartFormData.checkTail(Array(input[end...]), boundary: boundary) }
        // The streaming scanner agrees with the search, split anywhere.
        let data = Array(input[prelude.dataOffset...])
        let split = data.isEmpty ? 0 : Int(input[0]) % (data.count + 1)
        var scanner = DelimiterScanner(delimiter)
        let seen = data[0..<split].withUnsafeBytes { scanner.scan($0) } || data[split...].withUnsafeBytes { scanner.scan($0) }
        if seen != (MultipartFormData.find(delimiter, in: data, from: 0) != nil) { fatalError("scanner disagrees with find") }
    }
    // A shorter prefix never fails where the whole succeeded, and never succeeds differently.
    if count > 1 {
        let cut = Int(input[count - 1]) % count
        switch (parse(Array(input[0..<cut])), whole) {
        case (.success(let p?), .success(let w)) where p != w: fatalError("prefix gives another prelude")
        case (.failure, .success(_?)): fatalError("prefix fails where the whole succeeds")
        default: break
        }
    }
    return 0
}
