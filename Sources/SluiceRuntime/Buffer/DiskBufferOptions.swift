import SluiceConfig

/// A flusher's `Buffer: {Type: disk, MaxBytes: <bytes>, WhenFull: block | drop_newest}`: what it
/// cannot send yet is kept on disk, and the source is acknowledged once it is there.
public struct DiskBufferOptions: Sendable, Equatable {
    public enum WhenFull: String, Sendable {
        /// Appends wait for space: the pipeline's queue fills and the inputs stop reading.
        case block
        /// Appends past the limit are dropped and counted (the source moves past them).
        case dropNewest = "drop_newest"
    }

    public var maxBytes: Int = 256 << 20
    public var whenFull: WhenFull = .block
    /// Segment file size; 0: 1/16 of `maxBytes`, between 1 and 64 MiB.
    public var segmentBytes: Int = 0
    /// Longest wait before appended frames are fsynced together (group commit).
    public var commitIntervalMs: Int = 50

    public init() {}

    var effectiveSegmentBytes: Int { segmentBytes > 0 ? segmentBytes : min(64 << 20, max(1 << 20, maxBytes / 16)) }

    /// The `Buffer` key every flusher accepts (added to each flusher's spec by the registry).
    public static let field = FieldSpec(name: "Buffer", type: .object(fields: [
        FieldSpec(name: "Type", type: .string, doc: "`disk` (the only kind).", defaultValue: nil),
        FieldSpec(name: "MaxBytes", type: .int, doc: "Most bytes the buffer's segment files may take.", defaultValue: "268435456"),
        FieldSpec(name: "WhenFull", type: .string, doc: "`block`: wait for space (the inputs stop reading), also while the disk refuses writes (full); `drop_newest`: drop what does not fit, or what comes while the disk is full, and count it.", defaultValue: "block"),
    ]), doc: "A disk buffer for this flusher: batches are appended to checksummed segment files under the flusher's state directory (`--data-dir`/components/..., or `buffer_file_path`), fsynced by group commit within 50 ms, and only then acknowledged to their source, so a deleted Job's files are released while the destination is down. The flusher sends from the buffer in order; a restart replays what the destination has not acknowledged.", defaultValue: nil)

    /// Reads `Buffer` of a flusher's entry; nil when it has none.
    public static func from(_ flusher: ConfigObject) throws(ConfigError) -> DiskBufferOptions? {
        guard let b = try flusher.object("Buffer") else { return nil }
        guard let type = try b.string("Type") else { throw b.error(at: nil, "Type is required (disk)") }
        guard type == "disk" else { throw b.error(at: "Type", "\"\(type)\" is not a buffer type (disk)") }
        var o = DiskBufferOptions()
        if let m = try b.int("MaxBytes") {
            guard m >= 1 << 20 else { throw b.error(at: "MaxBytes", "\(m) is below 1048576 (1 MiB)") }
            o.maxBytes = m
        }
        if let w = try b.string("WhenFull") {
            guard let v = WhenFull(rawValue: w) else { throw b.error(at: "WhenFull", "\"\(w)\" is not block or drop_newest") }
            o.whenFull = v
        }
        return o
    }
}
