/// Splits a byte stream into `\n`-terminated lines. The `/events` body arrives in chunks that do
/// not align with its JSON objects: bytes after the last newline are kept for the next chunk.
struct DockerLineSplitter: Sendable {
    private(set) var pending: [UInt8] = []
    /// A line longer than this is dropped (its bytes up to the next newline are skipped).
    let maxLineLength: Int
    private var discarding = false
    private(set) var droppedLines = 0

    init(maxLineLength: Int = 1 << 20) {
        self.maxLineLength = maxLineLength
    }

    /// Appends `chunk` and returns the complete, non-empty lines it finished (without `\n` / `\r\n`).
    mutating func append<C: Collection>(_ chunk: C) -> [[UInt8]] where C.Element == UInt8 {
        var lines: [[UInt8]] = []
        for byte in chunk {
            if byte == 10 {
                if discarding {
                    discarding = false
                } else {
                    if pending.last == 13 { pending.removeLast() }
                    if !pending.isEmpty { lines.append(pending) }
                }
                pending.removeAll(keepingCapacity: true)
            } else if !discarding {
                pending.append(byte)
                if pending.count > maxLineLength {
                    pending.removeAll(keepingCapacity: false)
                    discarding = true
                    droppedLines += 1
                }
            }
        }
        return lines
    }

    /// Bytes of an unterminated last line (the stream ended without a newline).
    mutating func finish() -> [UInt8]? {
        defer { pending.removeAll(); discarding = false }
        let trimmed = pending.last == 13 ? Array(pending.dropLast()) : pending
        return discarding || trimmed.isEmpty ? nil : trimmed
    }
}
