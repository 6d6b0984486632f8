import SluiceConfig
import SluiceCore

/// `processor_strptime` (Go): sets the event time from a field parsed with a strptime `Format`
/// [LC plugins/processor/strptime/strptime.go]. A numeric `%z` in the text gives the zone; else
/// `UTCOffset` with `AdjustUTCOffset`; else the host's zone. `%s` reads the first 10 digits.
/// A value that does not parse leaves the event as it was (counted in `parse_failures`).
public final class ProcessorStrptime: ProcessorPlugin {
    public enum PreciseUnit: String, Sendable, CaseIterable {
        case ms, us, ns
    }

    public struct Options: Sendable {
        public var sourceKey: String
        public var format: StrptimeFormat
        public var keepSource: Bool
        /// Seconds east of UTC when `AdjustUTCOffset`; nil: the host's zone.
        public var utcOffset: Int?
        public var preciseKey: String?
        public var preciseUnit: PreciseUnit
    }

    public static let spec = PluginSpec(
        type: "processor_strptime", kind: .processor,
        summary: "Sets the event time from a field parsed with a strptime format (iLogtail's Go processor).",
        fields: [
            FieldSpec(name: "SourceKey", type: .string, doc: "The field holding the time.", defaultValue: "time"),
            FieldSpec(name: "Format", type: .string, doc: "strptime directives (as `processor_parse_timestamp_native`, plus a numeric `%z` that sets the zone). Required.", defaultValue: nil),
            FieldSpec(name: "KeepSource", type: .bool, doc: "Keep the source field.", defaultValue: "true"),
            FieldSpec(name: "AdjustUTCOffset", type: .bool, doc: "Read times without a zone as `UTCOffset`.", defaultValue: "false"),
            FieldSpec(name: "UTCOffset", type: .int, doc: "Seconds east of UTC (−43200 to 50400), with `AdjustUTCOffset`.", defaultValue: "0"),
            FieldSpec(name: "AlarmIfFail", type: .bool, doc: "iLogtail: warn on a value that does not parse. Sluice counts them in `parse_failures`.", defaultValue: "true"),
            FieldSpec(name: "EnablePreciseTimestamp", type: .bool, doc: "Also write the time as a number of `PreciseTimestampUnit` to `PreciseTimestampKey`.", defaultValue: "false"),
            FieldSpec(name: "PreciseTimestampKey", type: .string, doc: "Field of the precise time.", defaultValue: "precise_timestamp"),
            FieldSpec(name: "PreciseTimestampUnit", type: .string, doc: "`ms`, `us` or `ns`.", defaultValue: PreciseUnit.ms.rawValue),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let formatText = try c.requiredString("Format")
        let format: StrptimeFormat
        do { format = try StrptimeFormat(formatText) } catch { throw c.error(at: "Format", error.message) }
        var offset: Int? = nil
        if try c.bool("AdjustUTCOffset") ?? false {
            let o = try c.int("UTCOffset") ?? 0
            guard o >= -43200 && o <= 50400 else { throw c.error(at: "UTCOffset", "UTCOffset must be between -43200 and 50400 seconds") }
            offset = o
        }
        let unitText = try c.string("PreciseTimestampUnit") ?? PreciseUnit.ms.rawValue
        guard let unit = PreciseUnit(rawValue: unitText) else { throw c.error(at: "PreciseTimestampUnit", "unknown unit \"\(unitText)\" (known: ms, us, ns)") }
        let precise = try c.bool("EnablePreciseTimestamp") ?? false
        return Options(sourceKey: try c.string("SourceKey") ?? "time", format: format, keepSource: try c.bool("KeepSource") ?? true,
                       utcOffset: offset, preciseKey: precise ? (try c.string("PreciseTimestampKey") ?? "precise_timestamp") : nil,
                       preciseUnit: unit)
    }

    let options: Options
    let metrics: ComponentMetrics
    let localOffset: Int

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
        localOffset = ProcessorParseTimestampNative.localOffset()
    }

    public func process(_ batch: inout EventBatch) {
        var failed = 0
        let o = options
        let offset = o.utcOffset ?? localOffset
        batch.rewriteFields(fieldsPerEvent: 1) { arena, events, w in
            let contentKey = w.intern("content")
            let source = o.sourceKey == "content" ? contentKey : w.intern(o.sourceKey)
            let preciseKey = o.preciseKey.map { w.intern($0) }
            for i in events.indices {
                var ev = events[i]
                w.begin(ev, contentKey: contentKey)
                guard let si = w.find(source, arena: arena) else { w.end(&ev); events[i] = ev; continue }
                let v = w.fields[si].value
                if let r = o.format.parse(arena + Int(v.offset), Int(v.length)) {
                    let secs: Int64
                    if let e = r.epochSeconds {
                        secs = e
                    } else {
                        let zone = r.zoneOffset.flatMap { $0 == Int.min ? nil : $0 } ?? offset
                        var month = r.month, day = r.day
                        let year = r.year ?? 1970
                        if let yd = r.yearDay, !r.monthSet && !r.daySet { (month, day) = CivilTime.monthDay(year: year, yearDay: yd) }
                        secs = Int64(CivilTime.days(year: year, month: month, day: day)) * 86400
                            + Int64(r.hour * 3600 + r.minute * 60 + r.second) - Int64(zone)
                    }
                    // A time past 2262 has no Int64 nanoseconds: a parse failure, not a trap.
                    let (scaled, o1) = secs.multipliedReportingOverflow(by: 1_000_000_000)
                    let (ns, o2) = scaled.addingReportingOverflow(Int64(r.nanos))
                    if o1 || o2 {
                        failed += 1
                        w.end(&ev)
                        events[i] = ev
                        continue
                    }
                    ev.timeNanos = ns
                    if let pk = preciseKey {
                        let value: Int64
                        switch o.preciseUnit {
                        case .ms: value = ev.timeNanos / 1_000_000
                        case .us: value = ev.timeNanos / 1_000
                        case .ns: value = ev.timeNanos
                        }
                        let mark = w.extraMark
                        DecimalText.append(value, to: &w.extra)
                        w.set(pk, w.span(since: mark), arena: arena)
                    }
                    if !o.keepSource { w.fields[si].kind = .deleted }
                } else {
                    failed += 1
                }
                w.end(&ev)
                events[i] = ev
            }
        }
        metrics.parseFailures.add(failed)
    }
}
