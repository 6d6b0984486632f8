import SluiceConfig
import SluiceCore

/// `processor_drop`: removes every field named in `DropKeys`, each occurrence of the name
/// [LC plugins/processor/drop/processor_drop.go]. A raw line is the field `content`. An event left
/// with no field would not be written (see ``JSONLineEncoder``), so it is dropped here and
/// counted (`discarded{reason="empty"}`); the incumbent would pass on a log with no contents.
public final class ProcessorDrop: ProcessorPlugin {
    public struct Options: Sendable, Equatable {
        /// Unique, in document order.
        public var dropKeys: [String]
    }

    public static let spec = PluginSpec(
        type: "processor_drop", kind: .processor,
        summary: "Removes fields by name.",
        fields: [
            FieldSpec(name: "DropKeys", type: .stringList,
                      doc: "Names of the fields to remove (`content` is the raw line). Required, not empty. An event left with no field is dropped and counted as `empty`.",
                      defaultValue: nil),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        var seen = Set<String>()
        let keys = try c.requiredStringList("DropKeys").filter { seen.insert($0).inserted }
        return Options(dropKeys: keys)
    }

    let options: Options
    let metrics: ComponentMetrics

    public init(options: Options, context: PluginContext) {
        self.options = options
        metrics = context.metrics
    }

    public func process(_ batch: inout EventBatch) {
        var emptied = 0
        batch.rewriteFields(fieldsPerEvent: 0) { arena, events, w in
            let contentKey = w.intern("content")
            var keys: [Span] = []
            keys.reserveCapacity(options.dropKeys.count)
            for k in options.dropKeys { keys.append(k == "content" ? contentKey : w.intern(k)) }
            var kept = 0
            for i in events.indices {
                var ev = events[i]
                w.begin(ev, contentKey: contentKey)
                var live = 0
                for fi in w.current {
                    let key = w.fields[fi].key
                    var drop = false
                    for k in keys where w.equal(key, k, arena: arena) {
                        drop = true
                        break
                    }
                    if drop { w.fields[fi].kind = .deleted } else { live += 1 }
                }
                if live == 0 {
                    emptied += 1
                    w.discardCurrent()
                    continue
                }
                w.end(&ev)
                events[kept] = ev
                kept += 1
            }
            events.removeSubrange(kept..<events.count)
        }
        metrics.discarded(emptied, reason: "empty")
    }
}
