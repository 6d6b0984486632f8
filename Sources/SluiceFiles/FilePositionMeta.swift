import SluiceCore

/// `FileOffsetKey` / `AppendingLogPositionMeta`: each event of a file gets the file offset of its
/// first byte as a field after its content, as the incumbent's line splitter adds
/// `__file_offset__`. The offsets are taken before any transcoding (they are the file's).
enum FilePositionMeta {
    /// The file offsets of `events`' first bytes when the arena's byte 0 is at file offset
    /// `base`; nil when no offset field is wanted (nothing is computed then).
    static func starts(of events: [LogEvent], base: Int64, key: String?) -> [Int64]? {
        guard key != nil else { return nil }
        return events.map { base + Int64($0.content.offset) }
    }

    /// Adds the field `key` with `offsets[i]` in decimal to event `i` of `batch`, in one pass.
    static func add(_ key: String, offsets: [Int64], to batch: inout EventBatch) {
        precondition(offsets.count == batch.events.count, "one offset per event")
        batch.rewriteFields(fieldsPerEvent: 2) { _, events, w in
            let contentKey = w.intern("content")
            let k = w.intern(key)
            var digits = [UInt8](repeating: 0, count: 20)
            for i in events.indices {
                w.begin(events[i], contentKey: contentKey)
                let n = digits.withUnsafeMutableBufferPointer { OutputBuffer.writeDecimal(offsets[i], to: $0.baseAddress!) }
                let v = digits.withUnsafeBufferPointer { w.appendBytes($0.baseAddress!, n) }
                w.append(k, v)
                w.end(&events[i])
            }
        }
    }
}
