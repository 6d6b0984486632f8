import Glibc
import SluiceConfig
import SluiceCore

/// `flusher_stdout`: writes one JSON object per event per line to standard output.
public final class FlusherStdout: FlusherPlugin, WriterFlusher {
    public static let spec = PluginSpec(
        type: "flusher_stdout", kind: .flusher,
        summary: "Writes events as JSON lines to standard output (or, with `FileName`, to a file rotated by size).",
        fields: [
            FieldSpec(name: "OnlyStdout", type: .bool, doc: "With `FileName`: false (iLogtail's code default) writes to that file, true to standard output. Without `FileName` Sluice writes to standard output either way (iLogtail writes to its own plugin log).", defaultValue: "false"),
            FieldSpec(name: "Tags", type: .bool, doc: "iLogtail: print tags. Sluice always prints the batch tags as fields.", defaultValue: "true",
                      status: .acceptedNotYetEffective(reason: "tags are always written")),
            FieldSpec(name: "KeyValuePairs", type: .bool, doc: "iLogtail: print key=value pairs instead of JSON.", defaultValue: "false",
                      status: .acceptedNotYetEffective(reason: "output is always JSON lines")),
            FlusherRoute.matchField,
            FieldSpec(name: "FileName", type: .string, doc: "With `OnlyStdout: false`: write the JSON lines to this file (its directory created), rotated by `MaxSize` into `FileName.1` … `FileName.<MaxRolls>`. iLogtail writes through seelog with a date and time before each line; Sluice writes the plain JSON lines, as `flusher_file` does.", defaultValue: nil),
            FieldSpec(name: "MaxSize", type: .int, doc: "With `FileName`: rotate when the file would grow past this many bytes (≤ 0: 1048576, as iLogtail).", defaultValue: "1048576"),
            FieldSpec(name: "MaxRolls", type: .int, doc: "With `FileName`: rotated files kept besides the current one (≤ 0: 1, as iLogtail).", defaultValue: "1"),
        ])

    public struct Options: Sendable, Equatable {
        /// The file to write instead of standard output (`FileName` with `OnlyStdout: false`).
        public var fileName: String?
        public var maxSize: Int64 = 1_048_576
        public var maxRolls: Int = 1
        public init() {}
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        var o = Options()
        let onlyStdout = try c.bool("OnlyStdout") ?? false
        if let f = try c.string("FileName"), !f.isEmpty, !onlyStdout { o.fileName = f }
        if let v = try c.int("MaxSize"), v > 0 { o.maxSize = Int64(v) }
        if let v = try c.int("MaxRolls"), v > 0 {
            guard v <= 1000 else { throw c.error(at: "MaxRolls", "must be at most 1000") }
            o.maxRolls = v
        }
        return o
    }

    public let writer: ThreadedWriter
    /// One request per read batch at most (`max_read_buffer_size`), so a crash re-delivers at most
    /// one batch; requests in order, the next encoded while the current one is written.
    public let delivery: DeliveryOptions

    let fileTarget: RotatingFileTarget?

    public init(options: Options, context: PluginContext) {
        if let f = options.fileName {
            let t = RotatingFileTarget(path: f, maxFileSize: options.maxSize, maxFiles: options.maxRolls)
            fileTarget = t
            writer = ThreadedWriter(name: "flusher_stdout", target: t)
        } else {
            fileTarget = nil
            writer = ThreadedWriter(name: "flusher_stdout", target: DescriptorTarget(fd: 1, label: "standard output"))
        }
        delivery = DeliveryOptions(maxBytes: context.globals.maxReadBufferSize, concurrency: 1)
    }

    /// Writes to `fd` instead of standard output (tests).
    public init(fd: Int32, maxRequestBytes: Int = 512 * 1024) {
        fileTarget = nil
        writer = ThreadedWriter(name: "flusher_stdout", target: DescriptorTarget(fd: fd, label: "standard output"))
        delivery = DeliveryOptions(maxBytes: maxRequestBytes, concurrency: 1)
    }

    public func start() async throws {
        // Fail early with a clear message; sends retry the open if this fails.
        if let t = fileTarget { do { try t.open() } catch { throw FlushError(error.message) } }
    }

}

