import SluiceCore
import SluiceSystem
import SluiceTesting
import Testing

/// A parser that yields thousands of fields per event stays linear: the fields are set through a
/// hash index, with exactly the result of setting them one by one (a 256 KiB line of separators
/// took 46 s before).
@Suite struct ManyColumnsTests {
    @Test func aLineOfManyThousandColumnsParsesQuicklyAndExactly() throws {
        let h = try ProcessorHarness("""
          - Type: processor_parse_delimiter_native
            SourceKey: content
            Separator: ','
            Keys: [a, b, a]
            KeepingSourceWhenParseSucceed: true
        """)
        let columns = 100_000
        let line = (0..<columns).map { "v\($0)" }.joined(separator: ",")
        let t0 = Sys.monotonicNanos()
        let out = h.run([line])
        let seconds = Double(Sys.monotonicNanos() - t0) / 1e9
        #expect(seconds < 10, "took \(seconds) s")
        let doc = try #require(out.first)
        // `a` named twice: the second value overwrites the first in place, as set() does.
        #expect(doc.hasPrefix(#"{"a":"v2","b":"v1","__column3__":"v3""#))
        #expect(!doc.contains(#""a":"v0""#))
        #expect(doc.contains(#""__column99999__":"v99999""#))
    }

    @Test func fewColumnsAndManyColumnsGiveTheSameFields() throws {
        let yaml = """
          - Type: processor_parse_delimiter_native
            SourceKey: content
            Separator: ','
            Keys: [x, content, x]
        """
        let h = try ProcessorHarness(yaml)
        for n in [3, 31, 33, 200] {
            let line = (0..<n).map { "c\($0)" }.joined(separator: ",")
            let got = try #require(h.run([line]).first)
            var expected = #"{"content":"c1","x":"c2""#
            for i in 3..<n { expected += #","__column\#(i)__":"c\#(i)""# }
            #expect(got.hasPrefix(expected), "n=\(n): \(got.prefix(120))")
        }
    }
}
