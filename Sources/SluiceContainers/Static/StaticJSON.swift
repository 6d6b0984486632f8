/// A small JSON reader for the static container file: exact byte offsets in errors and values
/// that remember where they start, so a wrong field can be reported at its place.
enum StaticJSON {
    indirect enum Value {
        case object([(key: String, value: Node)])
        case array([Node])
        case string(String)
        /// The number as written.
        case number(String)
        case bool(Bool)
        case null

        var kindName: String {
            switch self {
            case .object: return "an object"
            case .array: return "an array"
            case .string: return "a string"
            case .number: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            }
        }
    }

    struct Node {
        var value: Value
        /// Byte offset of the value's first byte.
        var offset: Int
    }

    struct SyntaxError: Error {
        var offset: Int
        var message: String
    }

    /// Parses one JSON document (a UTF-8 byte order mark is skipped).
    static func parse(_ bytes: [UInt8]) throws(SyntaxError) -> Node {
        var parser = Parser(bytes: bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.position = 3 }
        parser.skipSpace()
        guard parser.position < bytes.count else { throw SyntaxError(offset: parser.position, message: "the file is empty") }
        let node = try parser.value(depth: 0)
        parser.skipSpace()
        if parser.position < bytes.count {
            throw SyntaxError(offset: parser.position, message: "unexpected \(parser.describeCurrent()) after the end of the document")
        }
        return node
    }

    /// 1-based line and column (in bytes) of a byte offset.
    static func lineAndColumn(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1
        var lineStart = 0
        for index in 0..<min(offset, bytes.count) where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        return (line, offset - lineStart + 1)
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0
        static let maxDepth = 256

        init(bytes: [UInt8]) { self.bytes = bytes }

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        func describeCurrent() -> String {
            guard let byte = current else { return "end of file" }
            if byte >= 0x20 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
            return "byte 0x\(String(byte, radix: 16))"
        }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
        }

        func error(_ message: String, at offset: Int? = nil) -> SyntaxError {
            SyntaxError(offset: offset ?? position, message: message)
        }

        mutating func value(depth: Int) throws(SyntaxError) -> Node {
            guard depth < Parser.maxDepth else { throw error("nested deeper than \(Parser.maxDepth) levels") }
            let start = position
            guard let byte = current else { throw error("unexpected end of file, expected a value") }
            switch byte {
            case UInt8(ascii: "{"): return Node(value: try object(depth: depth), offset: start)
            case UInt8(ascii: "["): return Node(value: try array(depth: depth), offset: start)
            case UInt8(ascii: "\""): return Node(value: .string(try string()), offset: start)
            case UInt8(ascii: "t"): try literal("true"); return Node(value: .bool(true), offset: start)
            case UInt8(ascii: "f"): try literal("false"); return Node(value: .bool(false), offset: start)
            case UInt8(ascii: "n"): try literal("null"); return Node(value: .null, offset: start)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return Node(value: .number(try number()), offset: start)
            default: throw error("unexpected \(describeCurrent()), expected a value")
            }
        }

        mutating func literal(_ word: String) throws(SyntaxError) {
            let start = position
            for expected in word.utf8 {
                guard current == expected else { throw error("invalid literal, expected \(word)", at: start) }
                position += 1
            }
        }

        mutating func object(depth: Int) throws(SyntaxError) -> Value {
            position += 1
            var entries: [(key: String, value: Node)] = []
            skipSpace()
            if current == UInt8(ascii: "}") { position += 1; return .object(entries) }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else { throw error("unexpected \(describeCurrent()), expected a key in double quotes") }
                let key = try string()
                skipSpace()
                guard current == UInt8(ascii: ":") else { throw error("unexpected \(describeCurrent()), expected ':' after the key \"\(key)\"") }
                position += 1
                skipSpace()
                entries.append((key, try value(depth: depth + 1)))
                skipSpace()
                switch current {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "}"): position += 1; return .object(entries)
                default: throw error("unexpected \(describeCurrent()), expected ',' or '}' in an object")
                }
            }
        }

        mutating func array(depth: Int) throws(SyntaxError) -> Value {
            position += 1
            var items: [Node] = []
            skipSpace()
            if current == UInt8(ascii: "]") { position += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                switch current {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "]"): position += 1; return .array(items)
                default: throw error("unexpected \(describeCurrent()), expected ',' or ']' in an array")
                }
            }
        }

        mutating func hex4() throws(SyntaxError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let byte = current else { throw error("unexpected end of file in a \\u escape") }
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("invalid hex digit \(describeCurrent()) in a \\u escape")
                }
                value = value * 16 + UInt32(digit)
                position += 1
            }
            return value
        }

        mutating func string() throws(SyntaxError) -> String {
            let start = position
            position += 1
            var out: [UInt8] = []
            while true {
                guard let byte = current else { throw error("unterminated string", at: start) }
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    position += 1
                    guard let escape = current else { throw error("unterminated string", at: start) }
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar), current == UInt8(ascii: "\\"),
                           position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") {
                            let save = position
                            position += 2
                            let low = try hex4()
                            if (0xDC00..<0xE000).contains(low) {
                                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                position = save
                            }
                        }
                        out.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
                    default:
                        throw error("invalid escape \\\(Character(Unicode.Scalar(escape)))", at: position - 2)
                    }
                case 0..<0x20:
                    throw error("control character 0x\(String(byte, radix: 16)) in a string (escape it)")
                default:
                    out.append(byte)
                    position += 1
                }
            }
        }

        mutating func number() throws(SyntaxError) -> String {
            let start = position
            func digits() -> Int {
                var count = 0
                while let byte = current, byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") { position += 1; count += 1 }
                return count
            }
            if current == UInt8(ascii: "-") { position += 1 }
            if current == UInt8(ascii: "0") {
                position += 1
            } else if digits() == 0 {
                throw error("invalid number", at: start)
            }
            if current == UInt8(ascii: ".") {
                position += 1
                guard digits() > 0 else { throw error("invalid number: digits expected after '.'", at: start) }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                position += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw error("invalid number: digits expected in the exponent", at: start) }
            }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }
    }
}
