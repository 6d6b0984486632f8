import Glibc
import Foundation
import SluiceTesting
import Testing

/// What the bytes of a line become: long lines split, invalid UTF-8 and control bytes encoded.
extension E2E {
    // MARK: 7. Long lines

    /// A 2 MiB line with recognisable, position-dependent bytes.
    static func longLine(_ seed: Int, length: Int = 2 << 20) -> [UInt8] {
        (0..<length).map { i in UInt8(ascii: "A") + UInt8((i &* 7 &+ i / 1000 &+ seed) % 26) }
    }

    @Test("7. a 2 MiB line arrives as 4 pieces of 512 KiB; lines around it intact; lines_split counted")
    func longLineIsSplit() throws {
        let s = E2EScenario("long")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("long", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        try s.startAndWait()
        let piece = 512 * 1024

        // a) The long line between short ones (it starts at offset 18, not on a read boundary).
        let big = Self.longLine(1)
        writeFile(logs + "/a.log", Array("before-1\nbefore-2\n".utf8) + big + Array("\nafter-1\nafter-2\n".utf8))
        let arrivedA = waitForLines(out, 8)
        sleepMs(settleMs)
        let a = outputContents(out)
        let sizesA = a.map { $0.utf8.count }
        note("long line a (after two short lines): \(a.count) events, sizes \(sizesA)")
        #expect(arrivedA)
        #expect(a.count == 8)
        if a.count >= 8 {
            let headOK = a[0] == "before-1" && a[1] == "before-2"
            #expect(headOK, "the two lines before the long one")
            let sizesOK = a[2..<6].allSatisfy { $0.utf8.count == piece }
            let concatOK = Array(a[2..<6].joined().utf8) == big
            #expect(sizesOK, "piece sizes \(sizesA)")
            #expect(concatOK, "the pieces concatenated are the line")
            let tailOK = a[6] == "after-1" && a[7] == "after-2"
            #expect(tailOK, "the two lines after the long one")
        }
        let splitA = waitUntil(timeout: 3) { statValue(readStats(s.statsFile), "lines_split") == 1 }
        note("long line a: stats lines_split = \(statValue(readStats(s.statsFile), "lines_split") ?? -1)")
        #expect(splitA, "lines_split == 1")

        // b) The long line at the very start of a file: its end falls exactly on a read boundary.
        let big2 = Self.longLine(2)
        let before = countLines(out)
        writeFile(logs + "/b.log", big2 + Array("\nafter-b\n".utf8))
        let arrivedB = waitForLines(out, before + 5)
        sleepMs(settleMs)
        let b = Array(outputContents(out).dropFirst(before))
        let sizesB = b.map { $0.utf8.count }
        note("long line b (at offset 0): \(b.count) events, sizes \(sizesB)")
        #expect(arrivedB)
        #expect(b.count == 5, "4 pieces and after-b; sizes \(sizesB)")
        let concatB = Array(b.prefix(4).joined().utf8) == big2
        let sizesB_OK = b.prefix(4).allSatisfy { $0.utf8.count == piece }
        let lastB = b.last.map { $0.count > 20 ? "<\($0.utf8.count) bytes>" : $0 } ?? "<none>"
        let emptyEvents = b.filter { $0.isEmpty }.count
        #expect(concatB, "the pieces concatenated are the line")
        #expect(sizesB_OK, "piece sizes \(sizesB)")
        #expect(lastB == "after-b")
        #expect(emptyEvents == 0, "no empty event after a line that ends on a piece boundary")
        let splitB = waitUntil(timeout: 3) { statValue(readStats(s.statsFile), "lines_split") == 2 }
        #expect(splitB, "lines_split == 2 after the second long line")
        #expect(s.process?.stop() == 0)
    }

    @Test("7c. max_read_buffer_size from the environment sets the piece size")
    func longLineWithSmallerBuffer() throws {
        let s = E2EScenario("long-env")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("long", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        try s.startAndWait(environment: ["max_read_buffer_size": "100000"])
        let line = Self.longLine(3, length: 250_000)
        writeFile(logs + "/a.log", Array("x\n".utf8) + line + Array("\ny\n".utf8))
        // Wait for the last line rather than for a count (the count is what is being checked).
        let arrived = waitUntil(timeout: 8) { countLines(out) >= 3 && outputContents(out).last == "y" }
        sleepMs(settleMs)
        let got = outputContents(out)
        let sizes = got.map { $0.utf8.count }
        let concatOK = got.count == 5 && Array(got[1..<4].joined().utf8) == line
        note("max_read_buffer_size=100000: a 250000-byte line → event sizes \(sizes); lines_split \(statValue(readStats(s.statsFile), "lines_split") ?? -1)")
        #expect(arrived)
        #expect(sizes == [1, 100_000, 100_000, 50_000, 1], "no event longer than max_read_buffer_size")
        #expect(concatOK)
        #expect(waitUntil(timeout: 3) { statValue(readStats(s.statsFile), "lines_split") == 1 })
        #expect(s.process?.stop() == 0)
    }

    // MARK: 17. flusher_file rotation

    @Test("17. flusher_file rotates its output by MaxFileSize: every line once across the files, none above the size")
    func flusherFileRotation() throws {
        let s = E2EScenario("outrot")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("outrot", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out, maxFileSize: 100_000)
            .replacingOccurrences(of: "    MaxFileSize: 100000\n", with: "    MaxFileSize: 100000\n    MaxFiles: 50\n"))
        try s.startAndWait()
        let lines = NumberedLines(prefix: "outrot-", digits: 6, lineLength: 64)
        // In several appends, so that batches are small and rotation happens between them.
        for k in 0..<10 {
            lines.write(to: logs + "/a.log", (k * 500)..<((k + 1) * 500), append: true)
            sleepMs(50)
        }
        func allFiles() -> [String] {
            var files = [out]
            var i = 1
            while access("\(out).\(i)", F_OK) == 0 { files.append("\(out).\(i)"); i += 1 }
            return files
        }
        let arrived = waitUntil(timeout: 15) { allFiles().map(countLines).reduce(0, +) >= 5000 }
        sleepMs(settleMs)
        let files = allFiles()
        // Oldest first: out.N … out.1, out.
        let delivered = files.reversed().flatMap { outputContents($0) }
        let sizes = files.map(fileSize)
        let r = deliveryReport(expected: lines.contents(0..<5000), delivered: delivered)
        note("output rotation (MaxFileSize 100000): \(files.count) files, sizes \(sizes); \(r); in order: \(delivered == lines.contents(0..<5000))")
        #expect(arrived)
        #expect(r.ok, "\(r)")
        #expect(files.count > 3)
        #expect(sizes.allSatisfy { $0 <= 100_000 }, "sizes \(sizes)")
        #expect(s.process?.stop() == 0)
    }

    // MARK: 8. Invalid UTF-8 and binary bytes

    @Test("8. invalid UTF-8, NUL, control bytes, quotes, backslashes: every output line is valid JSON with U+FFFD per bad byte")
    func invalidUTF8AndBinary() throws {
        let s = E2EScenario("bytes")
        defer { s.cleanup() }
        let logs = s.dir("logs")
        let out = s.path("out/out.jsonl")
        s.writePipeline("bytes", Pipelines.fileToFile(paths: [logs + "/*.log"], output: out))
        try s.startAndWait()

        let r: Unicode.Scalar = "\u{FFFD}"
        func str(_ scalars: [Unicode.Scalar]) -> String { var s = ""; s.unicodeScalars.append(contentsOf: scalars); return s }
        func ascii(_ t: String) -> [Unicode.Scalar] { Array(t.unicodeScalars) }
        var everyByte: [UInt8] = []
        var everyByteExpected: [Unicode.Scalar] = []
        for b in 0...255 where b != 0x0A {
            everyByte.append(UInt8(b))
            everyByteExpected.append(b < 0x80 ? Unicode.Scalar(UInt8(b)) : r)
        }
        // (bytes of the line, expected content)
        let cases: [([UInt8], String)] = [
            (Array("plain ascii".utf8), "plain ascii"),
            ([0x61, 0x00, 0x62], "a\u{0}b"),
            ([0xFF], str([r])),
            ([0x78, 0xC3, 0x79], str(ascii("x") + [r] + ascii("y"))),
            (Array("say \"hi\" and \"\"".utf8), "say \"hi\" and \"\""),
            (Array("back\\slash \\n \\u0041 \\".utf8), "back\\slash \\n \\u0041 \\"),
            (Array("tab\there\t".utf8), "tab\there\t"),
            (Array("héllo 日本 🎉 ümlaut".utf8), "héllo 日本 🎉 ümlaut"),
            ([0x65, 0x6E, 0x64, 0xC3], str(ascii("end") + [r])),
            ([0x01, 0x1F, 0x7F, 0x0D, 0x08, 0x0C, 0x1B], str([Unicode.Scalar(0x01), Unicode.Scalar(0x1F), Unicode.Scalar(0x7F), Unicode.Scalar(0x0D), Unicode.Scalar(0x08), Unicode.Scalar(0x0C), Unicode.Scalar(0x1B)])),
            ([0xC0, 0xAF], str([r, r])),                               // overlong '/'
            ([0xED, 0xA0, 0x80], str([r, r, r])),                      // UTF-16 surrogate
            ([0xF4, 0x90, 0x80, 0x80], str([r, r, r, r])),             // above U+10FFFF
            ([0xE6, 0x97, 0x7A], str([r, r] + ascii("z"))),            // truncated 3-byte sequence
            ([0x61, 0xF0, 0x9F, 0x8E], str(ascii("a") + [r, r, r])),   // truncated emoji at the end
            (Array("crlf".utf8) + [0x0D], "crlf\r"),
            ([], ""),
            (everyByte, str(everyByteExpected)),
            ([0x22, 0x5C, 0xFF, 0x22, 0x00], str(ascii("\"\\") + [r] + ascii("\"") + [Unicode.Scalar(0)])),
        ]
        var file: [UInt8] = []
        for c in cases { file += c.0 + [0x0A] }
        writeFile(logs + "/bytes.log", file)
        // A file whose name needs escaping too.
        let oddName = logs + "/odd \"name\" \\ é.log"
        writeFile(oddName, "odd-name-line\n")

        let total = cases.count + 1
        let arrived = waitForLines(out, total)
        sleepMs(settleMs)
        let raw = readFileBytes(out)
        #expect(String(validating: raw, as: UTF8.self) != nil, "the output is valid UTF-8")
        let objects = readJSONLines(out)
        let unparseable = objects.filter { $0["__unparseable__"] != nil }
        note("bytes: \(objects.count) output lines, \(unparseable.count) not valid JSON")
        #expect(arrived)
        #expect(unparseable.isEmpty, "lines that are not JSON: \(unparseable.prefix(3))")
        let byFile = objects.filter { ($0["__path__"] as? String) == logs + "/bytes.log" }.map { ($0["content"] as? String) ?? "<none>" }
        #expect(byFile.count == cases.count)
        var mismatches = 0
        for (i, c) in cases.enumerated() where i < byFile.count {
            let got = Array(byFile[i].unicodeScalars), want = Array(c.1.unicodeScalars)
            if got != want {
                mismatches += 1
                note("bytes: case \(i) \(c.0.prefix(12).map { String(format: "%02x", $0) }.joined(separator: " ")): got \(got.prefix(12).map { String(format: "U+%04X", $0.value) }) want \(want.prefix(12).map { String(format: "U+%04X", $0.value) })")
            }
            #expect(got == want, "case \(i)")
        }
        note("bytes: \(cases.count) cases, \(mismatches) mismatches")
        let odd = objects.filter { ($0["content"] as? String) == "odd-name-line" }
        #expect(odd.count == 1)
        #expect((odd.first?["__path__"] as? String) == oddName, "__path__ of a file whose name has quotes, a backslash and é")
        #expect(objects.allSatisfy { ($0["__hostname__"] as? String) == s.hostname && ($0["__time__"] as? NSNumber) != nil })
        #expect(s.process?.stop() == 0)
    }
}
