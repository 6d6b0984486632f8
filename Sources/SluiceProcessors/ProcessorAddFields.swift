import SluiceConfig
import SluiceCore

/// `processor_add_fields`: appends fields with constant values to every event
/// [LC plugins/processor/addfields/processor_add_fields.go]. They go after the event's own fields
/// (a raw line stays `content`), in the order the config writes them: the incumbent walks a Go
/// map, so its order differs from run to run. Without `IgnoreIfExist` a field is appended even
/// when the event already has one of that name, so the event then holds the name twice, as the
/// incumbent's v1 logs do; with it, the event's own field wins.
public final class ProcessorAddFields: ProcessorPlugin {
    public struct Field: Sendable, Equatable {
        public var key: String
        public var value: String
    }

    public struct Options: Sendable, Equatable {
        /// In document order; names are unique (the loader refuses a repeated key).
        public var fields: [Field]
        public var ignoreIfExist: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_add_fields", kind: .processor,
        summary: "Adds fields with constant values to every event.",
        fields: [
            FieldSpec(name: "Fields", type: .stringMap,
                      doc: "Field name → value. Required, not empty. Added in the order written (iLogtail adds them in Go's random map order).",
                      defaultValue: nil),
            FieldSpec(name: "IgnoreIfExist", type: .bool,
                      doc: "Skip a field the event already has. False appends it anyway, so the event then holds that name twice (as in iLogtail).",
                      defaultValue: "false"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        guard let pairs = try c.stringPairs("Fields"), !pairs.isEmpty else {
            throw c.error(at: c.has("Fields") ? "Fields" : nil, "Fields is required and must not be empty")
        }
        return Options(fields: pairs.map { Field(key: $0.0, value: $0.1) },
                       ignoreIfExist: try c.bool("IgnoreIfExist") ?? false)
    }

    let options: Options

    public init(options: Options, context: PluginContext) {
        self.options = options
    }

    public func process(_ batch: inout EventBatch) {
        let ignoreIfExist = options.ignoreIfExist
        batch.rewriteFields(fieldsPerEvent: options.fields.count) { arena, events, w in
            let contentKey = w.intern("content")
            var added: [EventField] = []
            added.reserveCapacity(options.fields.count)
            for f in options.fields {
                let key = w.intern(f.key)
                added.append(EventField(key: key, value: w.intern(f.value)))
            }
            for i in events.indices {
                var ev = events[i]
                w.begin(ev, contentKey: contentKey)
                for f in added {
                    // Names in `added` are unique, so only the event's own fields can be found.
                    if ignoreIfExist && w.find(f.key, arena: arena) != nil { continue }
                    w.append(f.key, f.value)
                }
                w.end(&ev)
                events[i] = ev
            }
        }
    }
}
