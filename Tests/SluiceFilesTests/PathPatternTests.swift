import SluiceCore
@testable import SluiceFiles
import Testing

@Suite struct PathPatternTests {
    @Test func baseAndComponents() throws {
        let p = try PathPattern("/var/log/*/app/*.log")
        #expect(p.baseDirectory == "/var/log")
        #expect(p.directoryComponents == ["*", "app"])
        #expect(p.filePattern == "*.log")
        #expect(p.matches(path: "/var/log/x/app/a.log"))
        #expect(!p.matches(path: "/var/log/x/y/app/a.log"))
        #expect(!p.matches(path: "/var/log/x/app/a.txt"))
    }

    @Test func doubleStarRespectsMaxDepth() throws {
        let p0 = try PathPattern("/d/**/*.log", maxDepth: 0)
        #expect(p0.matches(path: "/d/a.log"))
        #expect(!p0.matches(path: "/d/x/a.log"))
        let p2 = try PathPattern("/d/**/*.log", maxDepth: 2)
        #expect(p2.matches(path: "/d/a.log"))
        #expect(p2.matches(path: "/d/x/a.log"))
        #expect(p2.matches(path: "/d/x/y/a.log"))
        #expect(!p2.matches(path: "/d/x/y/z/a.log"))
        #expect(p2.maxRelativeDepth == 2)
        #expect(p2.directoryMayLeadToMatch(["x"]))
        #expect(!p2.directoryMayLeadToMatch(["x", "y", "z"]))
    }

    @Test func fixedPattern() throws {
        let p = try PathPattern("/var/log/messages")
        #expect(p.baseDirectory == "/var/log")
        #expect(p.matches(path: "/var/log/messages"))
        #expect(!p.matches(path: "/var/log/messages.1"))
    }

    @Test func rejectsBadPatterns() {
        #expect(throws: PathPattern.ParseError.notAbsolute("var/log/*.log")) { try PathPattern("var/log/*.log") }
        #expect(throws: PathPattern.ParseError.noFileName("/var/log/")) { try PathPattern("/var/log/") }
    }

    @Test func exclusions() {
        let e = PathExclusions(filePaths: ["/var/log/secret*.log"], fileNames: ["*.gz"], directories: ["/var/log/private", "/var/log/tmp*"])
        #expect(e.excludesFile("/var/log/secret1.log"))
        #expect(e.excludesFile("/var/log/a.log.gz"))
        #expect(e.excludesFile("/var/log/private/a.log"))
        #expect(e.excludesFile("/var/log/private/deep/a.log"))
        #expect(e.excludesFile("/var/log/tmp1/a.log"))
        #expect(!e.excludesFile("/var/log/app/a.log"))
    }
}

@Suite struct LineSplitterTests {
    func split(_ s: [UInt8]) -> ([String], Int) {
        var events: [LogEvent] = []
        let rest = s.withUnsafeBufferPointer { LineSplitter.split($0.baseAddress!, start: 0, count: $0.count, into: &events) }
        let lines = events.map { String(decoding: s[Int($0.content.offset)..<Int($0.content.offset + $0.content.length)], as: UTF8.self) }
        return (lines, rest)
    }

    /// Against a plain split: random line lengths (empty, short, across 64-byte blocks), more
    /// lines than one call of the newline scan returns (1024), with and without a rest.
    @Test func manyLinesMatchAPlainSplit() {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<40 {
            var bytes: [UInt8] = []
            var expected: [String] = []
            for _ in 0..<Int.random(in: 0...3000, using: &rng) {
                let len = [0, 1, 7, 63, 64, 65, 200].randomElement(using: &rng)! + Int.random(in: 0...3, using: &rng)
                let line = String((0..<len).map { _ in "abcxyz \t\"".randomElement(using: &rng)! })
                expected.append(line)
                bytes += Array(line.utf8) + [0x0A]
            }
            let full = bytes.count
            if round % 2 == 1 { bytes += Array("no newline yet".utf8) }
            let (l, r) = split(bytes)
            #expect(l == expected)
            #expect(r == full)
        }
    }

    @Test func splitsAndKeepsRest() {
        let (l, r) = split(Array("a\nbb\n\nccc".utf8))
        #expect(l == ["a", "bb", ""])
        #expect(r == 6)
    }

    @Test func noNewline() {
        let (l, r) = split(Array("abc".utf8))
        #expect(l.isEmpty)
        #expect(r == 0)
    }

    /// Reading the same text in chunks of every size gives the same lines.
    @Test func chunkBoundariesDoNotMatter() {
        let text = Array("first line\nsecond\n\nfourth is longer than the others\nx\nlast-unterminated".utf8)
        let expected = ["first line", "second", "", "fourth is longer than the others", "x"]
        for chunk in 1...text.count {
            var held: [UInt8] = []
            var got: [String] = []
            var pos = 0
            while pos < text.count {
                let end = min(pos + chunk, text.count)
                let buf = held + text[pos..<end]
                let (l, r) = split(buf)
                got += l
                held = Array(buf[r...])
                pos = end
            }
            #expect(got == expected, "chunk \(chunk)")
            #expect(String(decoding: held, as: UTF8.self) == "last-unterminated")
        }
    }
}
