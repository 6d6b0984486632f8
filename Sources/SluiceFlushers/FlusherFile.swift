import Glibc
import Logging
import SluiceConfig
import SluiceCore

/// `flusher_file`: appends one JSON object per event per line (see `JSONLineEncoder`) to a file,
/// rotating it by size: `FilePath` → `FilePath.1` → … → `FilePath.<MaxFiles>` (the oldest is removed).
/// Encoding (on the runner's task) and writing (on the writer thread) overlap. A batch is
/// delivered once its bytes are written to the file (they survive the process being killed;
/// `fsync` happens on rotation and on stop). A failed write (a full disk) is sent again from where
/// it stopped, so nothing is written twice.
public final class FlusherFile: FlusherPlugin, WriterFlusher {
    public static let spec = PluginSpec(
        type: "flusher_file", kind: .flusher,
        summary: "Writes events as JSON lines to a local file, rotated by size.",
        fields: [
            FieldSpec(name: "FilePath", type: .string, doc: "Path of the output file (required). Its directory is created if missing.", defaultValue: nil),
            FieldSpec(name: "MaxFileSize", type: .int, doc: "Rotate when the file would grow past this many bytes; 0 turns rotation off.", defaultValue: "10485760"),
            FlusherRoute.matchField,
            FieldSpec(name: "MaxFiles", type: .int, doc: "Rotated files kept besides the current one.", defaultValue: "10"),
        ])

    public struct Options: Sendable {
        public var filePath: String
        public var maxFileSize: Int64 = 10 * 1024 * 1024
        public var maxFiles: Int = 10
        public init(filePath: String) { self.filePath = filePath }
    }

    public static func options(from c: ConfigObject, globals: GlobalParameters) throws(ConfigError) -> Options {
        guard let path = try c.string("FilePath"), !path.isEmpty else { throw c.error(at: nil, "FilePath is required") }
        var o = Options(filePath: path)
        if let v = try c.int("MaxFileSize") {
            guard v >= 0 else { throw c.error(at: "MaxFileSize", "must be ≥ 0") }
            o.maxFileSize = Int64(v)
        }
        if let v = try c.int("MaxFiles") {
            guard v >= 0 && v <= 1000 else { throw c.error(at: "MaxFiles", "must be between 0 and 1000") }
            o.maxFiles = v
        }
        return o
    }

    let options: Options
    let target: RotatingFileTarget
    public let writer: ThreadedWriter
    /// One request per read batch at most (`max_read_buffer_size`), so a crash re-delivers at most
    /// one batch; requests in order, the next encoded while the current one is written.
    public let delivery: DeliveryOptions

    public init(options: Options, context: PluginContext) {
        self.options = options
        target = RotatingFileTarget(path: options.filePath, maxFileSize: options.maxFileSize, maxFiles: options.maxFiles)
        writer = ThreadedWriter(name: "flusher_file", target: target)
        delivery = DeliveryOptions(maxBytes: context.globals.maxReadBufferSize, concurrency: 1)
    }

    public func start() async throws {
        // Fail early with a clear message; sends retry the open if this fails.
        do { try target.open() } catch { throw FlushError(error.message) }
    }

}
