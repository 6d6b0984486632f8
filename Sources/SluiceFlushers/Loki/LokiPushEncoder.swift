import SluiceCore

/// Writes a `logproto.PushRequest` (see `proto/push.proto`) straight into a buffer: no message
/// object, `String` or `Timestamp` per entry (building those was a third of the Loki flusher's
/// CPU). Every message's size is computed before it is written, so each length prefix is
/// exact and nothing is moved afterwards. Field numbers: PushRequest.streams 1;
/// StreamAdapter.labels 1, entries 2; EntryAdapter.timestamp 1, line 2;
/// google.protobuf.Timestamp.seconds 1, nanos 2. Zero scalars are left out, as proto3 encoders do;
/// an entry's timestamp is always written (it is set, even when it is the epoch).
enum LokiPushEncoder {
    /// The entry's time as protobuf's Timestamp: seconds rounded down, nanos in 0..<1e9.
    @inline(__always)
    static func split(_ ns: Int64) -> (seconds: Int64, nanos: Int64) {
        let s = LogEvent.seconds(ofNanos: ns)
        return (s, ns &- s &* 1_000_000_000)
    }

    @inline(__always)
    static func timestampSize(_ t: (seconds: Int64, nanos: Int64)) -> Int {
        ProtobufWire.varintFieldSize(UInt64(bitPattern: t.seconds)) + ProtobufWire.varintFieldSize(UInt64(t.nanos))
    }

    @inline(__always)
    static func entrySize(_ e: FlusherLoki.Entry) -> Int {
        let n = e.line.count
        return ProtobufWire.fieldSize(payload: timestampSize(split(e.ns))) + (n == 0 ? 0 : ProtobufWire.fieldSize(payload: n))
    }

    /// Appends the request for `streams` (labels in Loki's text form, entries whose lines are
    /// ranges of `lines`) to `out`.
    static func encode(_ streams: [(String, [FlusherLoki.Entry])], lines: OutputBuffer, into out: OutputBuffer) {
        for (labels, entries) in streams {
            let labelCount = labels.utf8.count
            var size = labelCount == 0 ? 0 : ProtobufWire.fieldSize(payload: labelCount)
            for e in entries { size += ProtobufWire.fieldSize(payload: entrySize(e)) }
            out.reserve(ProtobufWire.fieldSize(payload: size))
            out.appendLengthDelimited(field: 1, length: size)
            if labelCount > 0 {
                out.appendLengthDelimited(field: 1, length: labelCount)
                out.append(labels)
            }
            for e in entries {
                let t = split(e.ns)
                out.appendLengthDelimited(field: 2, length: entrySize(e))
                out.appendLengthDelimited(field: 1, length: timestampSize(t))
                out.appendVarintField(1, UInt64(bitPattern: t.seconds))
                out.appendVarintField(2, UInt64(t.nanos))
                let n = e.line.count
                if n > 0 {
                    out.appendLengthDelimited(field: 2, length: n)
                    out.append(lines.base + e.line.lowerBound, n)
                }
            }
        }
    }
}
