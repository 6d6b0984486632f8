#if canImport(Glibc)
import Glibc
#endif
import Logging
import SluiceConfig
import SluiceCore

/// `flusher_file`: appends one JSON object per event per line (see `JSONLineEncoder`) to a file,
/// rotating it by size: `FilePath` → `FilePath.1` → … → `FilePath.<MaxFiles>` (the oldest is removed).
/// A batch is acknowledged once its bytes are written to the file (they survive the process
/// being killed; `fsync` happens on rotation and on stop).
public actor FlusherFile: Flusher {
    public static let spec = PluginSpec(
        type: "flusher_file", kind: .flusher,
        summary: "Writes events as JSON lines to a local file, rotated by size.",
        fields: [
            FieldSpec(name: "FilePath", type: .string, doc: "Path of the output file (required). Its directory is created if missing.", defaultValue: nil),
            FieldSpec(name: "MaxFileSize", type: .int, doc: "Rotate when the file would grow past this many bytes; 0 turns rotation off.", defaultValue: "10485760"),
            FieldSpec(name: "Match", type: .any, doc: "iLogtail routing condition for this flusher.", defaultValue: nil,
                      status: .acceptedNotYetEffective(reason: "routing is not implemented yet: every flusher receives every event")),
            FieldSpec(name: "MaxFiles", type: .int, doc: "Rotated files kept besides the current one.", defaultValue: "10"),
        ])

    public struct Options: Sendable {
        public var filePath: String
        public var maxFileSize: Int64 = 10 * 1024 * 1024
        public var maxFiles: Int = 10
        public init(filePath: String) { self.filePath = filePath }
    }

    public static func options(from c: ConfigObject) throws(ConfigError) -> Options {
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
    let context: PluginContext
    private var fd: Int32 = -1
    private var size: Int64 = 0
    private var writer = ResumableWriter()
    private let encoder = JSONLineEncoder()

    public init(options: Options, context: PluginContext) {
        self.options = options
        self.context = context
    }

    public func start() async throws {
        try openFile()
    }

    private func openFile() throws {
        if fd >= 0 { return }
        let path = options.filePath
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            makeDirs(String(path[..<slash]))
        }
        let f = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if f < 0 { throw FlushError("cannot open \(path): \(WriteError(code: errno))") }
        var st = stat()
        fstat(f, &st)
        fd = f
        size = Int64(st.st_size)
    }

    private func makeDirs(_ dir: String) {
        var cur = ""
        for c in dir.split(separator: "/") {
            cur += "/" + c
            mkdir(cur, 0o755)
        }
    }

    public func flush(_ batch: EventBatch) async throws {
        if !writer.hasPending {
            writer.reset()
            encoder.encode(batch, into: writer.buffer)
        }
        try openFile()
        if options.maxFileSize > 0 && size > 0 && size + Int64(writer.buffer.count - writer.written) > options.maxFileSize {
            try rotate()
        }
        let before = writer.written
        do {
            try writer.drain(to: fd)
        } catch {
            size += Int64(writer.written - before)
            throw FlushError("cannot write \(options.filePath): \(error)")
        }
        size += Int64(writer.written - before)
        context.metrics.bytesOut.add(writer.buffer.count, ordering: .relaxed)
        writer.reset()
    }

    private func rotate() throws {
        fsync(fd)
        close(fd)
        fd = -1
        let p = options.filePath
        if options.maxFiles == 0 {
            unlink(p)
        } else {
            unlink("\(p).\(options.maxFiles)")
            var i = options.maxFiles - 1
            while i >= 1 {
                rename("\(p).\(i)", "\(p).\(i + 1)")
                i -= 1
            }
            rename(p, "\(p).1")
        }
        try openFile()
    }

    public func stop() async {
        if fd >= 0 {
            fsync(fd)
            close(fd)
            fd = -1
        }
    }
}

public struct FlushError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
