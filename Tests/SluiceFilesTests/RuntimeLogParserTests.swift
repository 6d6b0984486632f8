@testable import SluiceFiles
import SluiceSystem
import Testing

@Suite struct RuntimeLogParserTests {
    func cri(_ s: String) -> (DecodedRecord, String)? {
        let b = Array(s.utf8)
        return b.withUnsafeBufferPointer { p in
            guard let r = RuntimeLogParser.parseCRI(p.baseAddress!, 0, b.count) else { return nil }
            return (r, String(decoding: b[r.contentStart..<r.contentEnd], as: UTF8.self))
        }
    }

    func docker(_ s: String) -> (DecodedRecord, String)? {
        let b = Array(s.utf8)
        var out: [UInt8] = [9, 9]
        return b.withUnsafeBufferPointer { p in
            guard let r = RuntimeLogParser.parseDocker(p.baseAddress!, 0, b.count, into: &out) else {
                #expect(out == [9, 9], "output restored on failure")
                return nil
            }
            return (r, String(decoding: out[r.contentStart..<r.contentEnd], as: UTF8.self))
        }
    }

    @Test func criFullAndPartial() throws {
        let (r, c) = try #require(cri("2016-10-06T00:17:09.669794202Z stdout F log content 1"))
        #expect(r.stream == .stdout && r.isFull && c == "log content 1")
        #expect(r.timeNanos == 1_475_713_029_669_794_202)
        let (p, pc) = try #require(cri("2016-10-06T00:17:09.669794202Z stderr P part"))
        #expect(p.stream == .stderr && !p.isFull && pc == "part")
        let (e, ec) = try #require(cri("2016-10-06T00:17:09Z stdout F "))
        #expect(e.isFull && ec == "")
        let (e2, ec2) = try #require(cri("2016-10-06T00:17:09Z stdout F"))
        #expect(e2.isFull && ec2 == "")
        #expect(cri("not a cri line") == nil)
        #expect(cri("2016-10-06T00:17:09Z stdin F x") == nil)
        #expect(cri("2016-10-06T00:17:09Z stdout X x") == nil)
    }

    @Test func timestamps() {
        func t(_ s: String) -> Int64? {
            let b = Array(s.utf8)
            return b.withUnsafeBufferPointer { RFC3339.parse($0.baseAddress!, 0, b.count) }
        }
        #expect(t("1970-01-01T00:00:00Z") == 0)
        #expect(t("1970-01-01T00:00:01.5Z") == 1_500_000_000)
        let expected: Int64 = (1_709_208_000 - 8 * 3600) * 1_000_000_000
        #expect(t("2024-02-29T12:00:00+08:00") == expected)
        #expect(t("2024-02-29T12:00:00.123456789123Z") == 1_709_208_000_123_456_789)
        #expect(t("2024-13-01T00:00:00Z") == nil)
        #expect(t("2024-01-01T00:00:00") == nil)
        #expect(t("2024-01-01t00:00:00,5z") == 1_704_067_200_500_000_000)
        #expect(t("2024-01-01 00:00:00.Z") == nil, "a fraction needs a digit")
        #expect(t("2024-01-01T24:00:00Z") == nil)
        #expect(t("0001-01-01T00:00:00Z") == nil, "Go's zero time is outside Int64 nanoseconds")
        #expect(t("9999-01-01T00:00:00Z") == nil)
        #expect(RFC3339.parse("2026-11-22T08:33:02.413439554+08:00") == 1_795_307_582_413_439_554)
        #expect(RFC3339.format(unixNanos: 1_795_307_582_413_439_554) == "2026-11-22T00:33:02.413Z")
        #expect(RFC3339.format(unixNanos: 0) == "1970-01-01T00:00:00.000Z")
    }

    @Test func dockerRecords() throws {
        let (r, c) = try #require(docker(#"{"log":"hello \"w\"\tx\n","stream":"stdout","time":"2024-01-01T00:00:00.000000001Z"}"#))
        #expect(r.stream == .stdout && r.isFull && c == "hello \"w\"\tx")
        #expect(r.timeNanos == 1_704_067_200_000_000_001)
        let (p, pc) = try #require(docker(#"{"log":"partial no newline","stream":"stderr","time":"2024-01-01T00:00:00Z"}"#))
        #expect(p.stream == .stderr && !p.isFull && pc == "partial no newline")
        let (u, uc) = try #require(docker(#"{"log":"\u00e9\u4e2d\ud83d\ude00\ud800x\n","stream":"stdout","attrs":{"a":"}"},"time":"2024-01-01T00:00:00Z"}"#))
        #expect(u.isFull && uc == "é中😀\u{FFFD}x")
        #expect(docker("plain text") == nil)
        #expect(docker(#"{"log":"unterminated"#) == nil)
        #expect(docker(#"{"stream":"stdout"}"#) == nil)
    }
}
