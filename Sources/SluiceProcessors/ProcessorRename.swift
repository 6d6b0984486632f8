import SluiceConfig
import SluiceCore

/// `processor_rename`: renames fields in place, keeping their position
/// [LC plugins/processor/rename/processor_rename.go, v1 `processLog`]. Every field whose name is a
/// source key gets the paired destination name, each occurrence, in one pass: `a→b, b→c` turns
/// `a` into `b` and the original `b` into `c` (no chaining). A pair whose source equals its
/// destination is ignored; for a source listed twice the last pair wins. A destination name the
/// event already has is not merged: the event then holds that name twice, as in the incumbent.
/// A raw line is the field `content`.
public final class ProcessorRename: ProcessorPlugin {
    public struct Rename: Sendable, Equatable {
        public var source: String
        public var dest: String
    }

    public struct Options: Sendable, Equatable {
        /// Sources unique, identity pairs left out, in order of first appearance.
        public var renames: [Rename]
        public var noKeyError: Bool
    }

    public static let spec = PluginSpec(
        type: "processor_rename", kind: .processor,
        summary: "Renames fields, keeping their position.",
        fields: [
            FieldSpec(name: "SourceKeys", type: .stringList, doc: "Names of the fields to rename (`content` is the raw line). Required, not empty.", defaultValue: nil),
            FieldSpec(name: "DestKeys", type: .stringList, doc: "The new name of each source key, in the same order. Required, as many as `SourceKeys`.", defaultValue: nil),
            FieldSpec(name: "NoKeyError", type: .bool,
                      doc: "iLogtail logs a warning for each event lacking a source key. Accepted; Sluice leaves such events unchanged and logs nothing per event.",
                      defaultValue: "false"),
        ])

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        let sources = try c.requiredStringList("SourceKeys")
        let dests = try c.requiredStringList("DestKeys")
        guard sources.count == dests.count else {
            throw c.error(at: "DestKeys", "DestKeys has \(dests.count) items, SourceKeys \(sources.count): they must pair up")
        }
        var order: [String] = []
        var target: [String: String] = [:]
        for (s, d) in zip(sources, dests) where s != d {
            if target[s] == nil { order.append(s) }
            target[s] = d
        }
        return Options(renames: order.map { Rename(source: $0, dest: target[$0]!) },
                       noKeyError: try c.bool("NoKeyError") ?? false)
    }

    let options: Options

    public init(options: Options, context: PluginContext) {
        self.options = options
    }

    public func process(_ batch: inout EventBatch) {
        guard !options.renames.isEmpty else { return }
        batch.rewriteFields(fieldsPerEvent: 0) { arena, events, w in
            let contentKey = w.intern("content")
            var sources: [Span] = []
            var dests: [Span] = []
            sources.reserveCapacity(options.renames.count)
            dests.reserveCapacity(options.renames.count)
            for r in options.renames {
                sources.append(r.source == "content" ? contentKey : w.intern(r.source))
                dests.append(r.dest == "content" ? contentKey : w.intern(r.dest))
            }
            for i in events.indices {
                var ev = events[i]
                w.begin(ev, contentKey: contentKey)
                for fi in w.current {
                    let key = w.fields[fi].key
                    for j in sources.indices where w.equal(key, sources[j], arena: arena) {
                        w.fields[fi].key = dests[j]
                        break
                    }
                }
                w.end(&ev)
                events[i] = ev
            }
        }
    }
}
