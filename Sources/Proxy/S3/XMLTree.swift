import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Shared

/// A small XML document read strictly and within bounds (Foundation's XMLParser, no DTDs or external
/// entities), as an element tree that can be edited and written back: for the S3 documents the gateway reads
/// from clients or rewrites from the backend (multipart upload requests and results).
struct XMLTree: Equatable {
    struct Element: Equatable {
        var name: String
        /// Attributes in document order (S3 documents carry at most the root's `xmlns`).
        var attributes: [(name: String, value: String)] = []
        var children: [Element] = []
        /// Character data of a leaf element (whitespace between child elements is dropped).
        var text = ""

        static func == (a: Element, b: Element) -> Bool {
            a.name == b.name && a.children == b.children && a.text == b.text
                && a.attributes.map(\.name) == b.attributes.map(\.name) && a.attributes.map(\.value) == b.attributes.map(\.value)
        }

        init(name: String, text: String = "", children: [Element] = []) {
            self.name = name
            self.text = text
            self.children = children
        }

        /// The first child named `name`.
        func child(_ name: String) -> Element? { children.first { $0.name == name } }

        /// Sets the text of the first child named `name`; false when there is none.
        @discardableResult
        mutating func setText(_ text: String, of name: String) -> Bool {
            guard let i = children.firstIndex(where: { $0.name == name }) else { return false }
            children[i].text = text
            return true
        }
    }

    struct ParseError: Error, Equatable {
        var message: String
    }

    var root: Element

    static let maxDepth = 8
    static let maxElements = 200_000
    static let maxTextLength = 8192

    /// Parses `bytes` (UTF-8). Mixed content (text next to child elements), a DTD and anything after the root
    /// element are refused.
    static func parse(_ bytes: [UInt8]) throws(ParseError) -> XMLTree {
        guard isValidUTF8(bytes) else { throw ParseError(message: "the document is not valid UTF-8") }
        // The document goes inside a wrapper element, so a second root is a visible sibling (XMLParser stops
        // reporting after the first root otherwise) and a DOCTYPE is a syntax error.
        let wrapped = Array("<s3eg-wrapper>".utf8) + withoutDeclaration(bytes) + Array("</s3eg-wrapper>".utf8)
        let delegate = Delegate()
        let parser = XMLParser(data: Data(wrapped))
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        parser.delegate = delegate
        let ok = parser.parse()
        if let failure = delegate.failure { throw ParseError(message: failure) }
        guard ok, let wrapper = delegate.root else {
            throw ParseError(message: "the document is not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "unknown error")")
        }
        guard wrapper.children.count == 1, let root = wrapper.children.first else {
            throw ParseError(message: wrapper.children.isEmpty ? "the document has no root element" : "content after the root element")
        }
        return XMLTree(root: root)
    }

    /// `bytes` without a leading byte-order mark and `<?xml …?>` declaration.
    private static func withoutDeclaration(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        var rest = bytes[...]
        if rest.starts(with: [0xEF, 0xBB, 0xBF]) { rest = rest.dropFirst(3) }
        let start = rest.firstIndex { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D } ?? rest.endIndex
        if rest[start...].starts(with: Array("<?xml".utf8)) {
            var i = start
            while i + 1 < rest.endIndex, !(rest[i] == 0x3F && rest[i + 1] == 0x3E) { i += 1 }
            if i + 1 < rest.endIndex { return rest[(i + 2)...] }
        }
        return rest
    }

    /// The document with an XML declaration, text and attribute values escaped.
    var bytes: [UInt8] {
        var out = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        Self.write(root, into: &out)
        return Array(out.utf8)
    }

    private static func write(_ element: Element, into out: inout String) {
        out += "<" + element.name
        for (name, value) in element.attributes { out += " \(name)=\"\(XMLText.escape(value))\"" }
        out += ">"
        if element.children.isEmpty {
            out += XMLText.escape(element.text)
        } else {
            for child in element.children { write(child, into: &out) }
        }
        out += "</" + element.name + ">"
    }

    private final class Delegate: NSObject, XMLParserDelegate {
        var stack: [Element] = []
        var root: Element?
        var count = 0
        var failure: String?

        func fail(_ parser: XMLParser, _ message: String) {
            if failure == nil { failure = message }
            parser.abortParsing()
        }

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            guard failure == nil else { return }
            count += 1
            guard count <= XMLTree.maxElements else { return fail(parser, "the document has too many elements") }
            guard stack.count <= XMLTree.maxDepth else { return fail(parser, "the document nests too deep") }
            if let parent = stack.last, !parent.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                return fail(parser, "element \(parent.name.prefix(64)) mixes text and elements")
            }
            if !stack.isEmpty { stack[stack.count - 1].text = "" }
            var element = Element(name: name)
            element.attributes = attributes.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
            stack.append(element)
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard failure == nil, !stack.isEmpty else { return }
            if !stack[stack.count - 1].children.isEmpty {
                guard string.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                    return fail(parser, "element \(stack[stack.count - 1].name.prefix(64)) mixes text and elements")
                }
                return
            }
            stack[stack.count - 1].text += string
            if stack[stack.count - 1].text.utf8.count > XMLTree.maxTextLength { fail(parser, "element text too long") }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            guard failure == nil, var element = stack.popLast() else { return }
            if !element.children.isEmpty { element.text = "" }
            if stack.isEmpty {
                root = element
            } else {
                stack[stack.count - 1].children.append(element)
            }
        }

        func parser(_ parser: XMLParser, foundCDATA block: Data) {
            guard let text = String(data: block, encoding: .utf8) else { return fail(parser, "CDATA is not UTF-8") }
            self.parser(parser, foundCharacters: text)
        }
    }
}

extension XMLTree {
    /// A document a client sent (Tagging, CompleteMultipartUpload, …): unreadable XML or another root element
    /// is S3's `MalformedXML`, with a message naming what was wrong.
    static func clientDocument(_ bytes: [UInt8], root name: String) throws(S3Error) -> XMLTree {
        let tree: XMLTree
        do {
            tree = try XMLTree.parse(bytes)
        } catch {
            throw S3Error.malformedXML(error.message)
        }
        guard tree.root.name == name else {
            throw S3Error.malformedXML("the root element is \(tree.root.name.prefix(64)), not \(name)")
        }
        return tree
    }
}
