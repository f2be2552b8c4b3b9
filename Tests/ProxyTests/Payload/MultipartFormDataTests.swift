import Foundation
import Shared
import Testing
@testable import Proxy

/// The S3 error code a form error becomes.
func formError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as FormDataError {
        return error.s3Error.code
    } catch {
        return "other error: \(error)"
    }
}

@Suite struct MultipartFormDataTests {
    static let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"

    /// A form as a browser sends it: fields, then the file part, then the close delimiter.
    static func form(_ fields: [(String, String)], file: [UInt8], fileName: String = "photo.jpg", boundary: String = boundary,
                     after: [(String, String)] = []) -> [UInt8] {
        var out = ""
        for (name, value) in fields {
            out += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        out += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(fileName)\"\r\nContent-Type: image/jpeg\r\n\r\n"
        var bytes = Array(out.utf8) + file
        var tail = ""
        for (name, value) in after {
            tail += "\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)"
        }
        bytes += Array((tail + "\r\n--\(boundary)--\r\n").utf8)
        return bytes
    }

    @Test func boundaryFromContentType() throws {
        #expect(try MultipartFormData.boundary(contentType: "multipart/form-data; boundary=abc") == "abc")
        #expect(try MultipartFormData.boundary(contentType: "Multipart/Form-Data;boundary=\"a b:c\"; charset=utf-8") == "a b:c")
        #expect(try MultipartFormData.boundary(contentType: "application/x-www-form-urlencoded") == nil)
        for bad in ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=a;boundary=b",
                    "multipart/form-data; boundary=\(String(repeating: "x", count: 71))", "multipart/form-data; boundary=a{b}"] {
            #expect(formError { _ = try MultipartFormData.boundary(contentType: bad) } == "MalformedPOSTRequest", "\(bad)")
        }
    }

    @Test func parsesTheFieldsAndTheFilePartHeaders() throws {
        let file: [UInt8] = Array("JPEG\r\n--not-the-boundary".utf8)
        let body = Self.form([("key", "user/${filename}"), ("Content-Type", "image/jpeg"), ("x-amz-meta-note", "é ü")], file: file)
        let prelude = try #require(try MultipartFormData.parsePrelude(body, boundary: Self.boundary))
        #expect(prelude.fields == [FormField(name: "key", value: "user/${filename}"), FormField(name: "Content-Type", value: "image/jpeg"),
                                   FormField(name: "x-amz-meta-note", value: "é ü")])
        #expect(prelude.fileName == "photo.jpg")
        #expect(prelude.fileContentType == "image/jpeg")
        #expect(Array(body[prelude.dataOffset..<(prelude.dataOffset + file.count)]) == file)
        let end = try #require(MultipartFormData.find(MultipartFormData.delimiter(Self.boundary), in: body, from: prelude.dataOffset))
        #expect(end == prelude.dataOffset + file.count)
        try MultipartFormData.checkTail(Array(body[end...]), boundary: Self.boundary)
    }

    /// Fed a growing buffer, the parser asks for more until the file part's headers are complete, then gives the
    /// same answer as on the whole body, at every split point.
    @Test func incrementalParsingAgreesWithWholeParsing() throws {
        let body = Self.form([("key", "k"), ("policy", "eyJ9"), ("x-amz-signature", "ab")], file: Array(repeating: 7, count: 10))
        let whole = try #require(try MultipartFormData.parsePrelude(body, boundary: Self.boundary))
        for cut in 0..<whole.dataOffset {
            #expect(try MultipartFormData.parsePrelude(Array(body[0..<cut]), boundary: Self.boundary) == nil, "cut \(cut)")
        }
        for cut in whole.dataOffset...body.count {
            #expect(try MultipartFormData.parsePrelude(Array(body[0..<cut]), boundary: Self.boundary) == whole, "cut \(cut)")
        }
    }

    @Test func refusesMalformedForms() throws {
        let b = Self.boundary
        func code(_ text: String) -> String? {
            formError { _ = try MultipartFormData.parsePrelude(Array(text.utf8), boundary: b) }
        }
        #expect(code("preamble\r\n--\(b)\r\n") == "MalformedPOSTRequest")
        #expect(code("--\(b)\r\nContent-Type: text/plain\r\n\r\nx\r\n--\(b)\r\n") == "MalformedPOSTRequest")
        #expect(code("--\(b)\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\n") == "MalformedPOSTRequest")
        #expect(code("--\(b)\r\nContent-Disposition: form-data\r\n\r\n") == "MalformedPOSTRequest")
        #expect(code("--\(b)\r\nContent-Disposition: form-data; name=\"a\r\n\r\n") == "MalformedPOSTRequest")
        #expect(code("--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\nbroken header\r\n\r\n") == "MalformedPOSTRequest")
        #expect(code("--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: base64\r\n\r\n") == "MalformedPOSTRequest")
        #expect(code("--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--\(b)\r\nContent-Disposition: form-data; name=\"A\"\r\n\r\n2\r\n--\(b)\r\n")
                == "MalformedPOSTRequest")
        #expect(code("--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--\(b)xx") == "MalformedPOSTRequest")
        // A form without a file part.
        #expect(code("--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--\(b)--\r\n") == "InvalidArgument")
        // Not UTF-8.
        #expect(formError {
            _ = try MultipartFormData.parsePrelude(Array("--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n".utf8) + [0xFF, 0xFE]
                + Array("\r\n--\(b)\r\n".utf8), boundary: b)
        } == "MalformedPOSTRequest")
        // A header line that never ends, and fields beyond the prelude limit.
        #expect(code("--\(b)\r\nContent-Disposition: form-data; name=\"a\(String(repeating: "x", count: 2000))") == "MalformedPOSTRequest")
        let huge = "--\(b)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + String(repeating: "v", count: MultipartFormData.maxPreludeSize)
        #expect(code(huge) == "MalformedPOSTRequest")
        let many = (0...MultipartFormData.maxFields).map { "--\(b)\r\nContent-Disposition: form-data; name=\"f\($0)\"\r\n\r\nv\r\n" }.joined()
        #expect(code(many + "--\(b)\r\n") == "MalformedPOSTRequest")
    }

    @Test func dispositionParameters() throws {
        #expect(try MultipartFormData.parseDisposition("form-data; name=\"file\"; filename=\"a \\\"b\\\".txt\"") == ("file", "a \"b\".txt"))
        #expect(try MultipartFormData.parseDisposition("form-data;name=key") == ("key", nil))
        #expect(formError { _ = try MultipartFormData.parseDisposition("form-data; name=\"a\"; name=\"b\"") } == "MalformedPOSTRequest")
    }

    @Test func tailAfterTheFile() throws {
        let b = Self.boundary
        func check(_ text: String) -> String? { formError { try MultipartFormData.checkTail(Array(text.utf8), boundary: b) } }
        #expect(check("\r\n--\(b)--\r\n") == nil)
        #expect(check("\r\n--\(b)--") == nil)
        // Fields after the file are ignored (as S3 does), but must be well-formed.
        #expect(check("\r\n--\(b)\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\nv\r\n--\(b)--\r\n") == nil)
        #expect(check("\r\n--\(b)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nv\r\n--\(b)--\r\n") == "InvalidArgument")
        #expect(check("\r\n--\(b)--\r\ntrailing") == "MalformedPOSTRequest")
        #expect(check("\r\n--\(b)\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\nv") == "MalformedPOSTRequest")
        #expect(check("\r\n--other--\r\n") == "MalformedPOSTRequest")
    }

    @Test func delimiterScannerFindsTheBoundaryAcrossEverySplit() throws {
        let delimiter = MultipartFormData.delimiter("bnd")
        let data = Array("aa\r\r\n-\r\n--bn\r\n--bnx".utf8) + delimiter + Array("zz".utf8)
        let clean = Array("aa\r\r\n-\r\n--bn\r\n--bnx\r\n--bn".utf8)
        for split in 0...data.count {
            var scanner = DelimiterScanner(delimiter)
            let first = data[0..<split].withUnsafeBytes { scanner.scan($0) }
            let second = data[split...].withUnsafeBytes { scanner.scan($0) }
            #expect(first || second, "split \(split)")
        }
        for split in 0...clean.count {
            var scanner = DelimiterScanner(delimiter)
            #expect(!clean[0..<split].withUnsafeBytes { scanner.scan($0) } && !clean[split...].withUnsafeBytes { scanner.scan($0) })
        }
    }

    /// Seeded mutations of a valid form: the parser never traps, never reads past its limits, and whatever it accepts
    /// has a data offset inside the buffer.
    @Test func mutatedFormsNeverTrap() throws {
        var rng = SplitMix64(seed: 0xF0F0)
        let base = Self.form([("key", "a/b"), ("policy", "eyJ9"), ("Content-Type", "text/plain")], file: Array("data".utf8),
                             after: [("late", "x")])
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: i)
                default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                }
                if bytes.isEmpty { bytes = [0] }
            }
            if let prelude = try? MultipartFormData.parsePrelude(bytes, boundary: Self.boundary) {
                #expect(prelude.dataOffset <= bytes.count)
                if let end = MultipartFormData.find(MultipartFormData.delimiter(Self.boundary), in: bytes, from: prelude.dataOffset) {
                    _ = try? MultipartFormData.checkTail(Array(bytes[end...]), boundary: Self.boundary)
                }
            }
        }
    }
}
