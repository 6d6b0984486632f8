import CJSONText
import Glibc
import SluiceCore

/// Writes an `ExportLogsServiceRequest` (opentelemetry/proto/collector/logs/v1) straight into a
/// buffer, as `LokiPushEncoder` does for Loki: no generated message, `String` or array per event.
/// Sizes come first, so each length prefix is exact, and the bytes are those SwiftProtobuf writes
/// for the same messages (fields in number order, proto3 zeros left out, a oneof that is set
/// written even when empty, a message field that is set written even when empty).
///
/// Field numbers: ExportLogsServiceRequest.resource_logs 1; ResourceLogs.resource 1, scope_logs 2;
/// Resource.attributes 1; ScopeLogs.log_records 2; LogRecord.time_unix_nano 1 (fixed64),
/// severity_text 3, body 5, attributes 6, observed_time_unix_nano 11 (fixed64); KeyValue.key 1,
/// value 2; AnyValue.string_value 1.
///
/// The mapping is `FlusherOtlp.resourceLogs`' (which stays the reference and the path for a batch
/// holding bytes that are not valid UTF-8, which a protobuf `string` cannot carry as they are).
struct OtlpLogsEncoder {
    typealias Pair = (key: [UInt8], value: [UInt8])

    /// Per written record of the batch: its event, its size, and the fields that are its body and
    /// severity text (a field index; -1 none; for the body of an unparsed event, its line).
    private var records: [(event: Int, size: Int, body: Int, severity: Int)] = []

    private static let contentKey = Array("content".utf8)
    private static let levelKey = Array("level".utf8)

    /// Appends `batch` as one ResourceLogs (field 1 of the request): `resource` as the resource's
    /// attributes, `tagAttributes` after each record's own. Returns false, with nothing written,
    /// when a string of the batch is not valid UTF-8.
    mutating func appendResourceLogs(_ batch: EventBatch, resource: [Pair], tagAttributes: [Pair], observed: UInt64, to out: OutputBuffer) -> Bool {
        records.removeAll(keepingCapacity: true)
        let tagAttributesSize = tagAttributes.reduce(0) { $0 + ProtobufWire.fieldSize(payload: OtlpLogsEncoder.keyValueSize($1.key.count, $1.value.count)) }
        let fixedRecordSize = (observed != 0 ? 9 : 0) + tagAttributesSize
        var scopeSize = 0
        let valid: Bool = batch.arena.withUnsafeBufferPointer { a in
            let arena = a.baseAddress ?? UnsafePointer(bitPattern: 1)!
            func ok(_ s: Span) -> Bool { sluice_utf8_valid_length(arena + Int(s.offset), Int(s.length)) == Int(s.length) }
            func equal(_ s: Span, _ k: [UInt8]) -> Bool {
                Int(s.length) == k.count && k.withUnsafeBufferPointer { memcmp(arena + Int(s.offset), $0.baseAddress!, k.count) == 0 }
            }
            for (i, ev) in batch.events.enumerated() {
                var size = fixedRecordSize
                if OtlpLogsEncoder.nanos(ev, batch) != 0 { size += 9 }
                var body = -1, severity = -1
                if !ev.isParsed {
                    guard ok(ev.content) else { return false }
                    size += ProtobufWire.fieldSize(payload: ProtobufWire.fieldSize(payload: Int(ev.content.length)))
                    records.append((i, size, -2, -1))
                    scopeSize += ProtobufWire.fieldSize(payload: size)
                    continue
                }
                var live = 0
                let end = Int(ev.fieldStart + ev.fieldCount)
                for fi in Int(ev.fieldStart)..<end {
                    let f = batch.fields[fi]
                    if f.kind == .deleted { continue }
                    live += 1
                    guard ok(f.key), ok(f.value) else { return false }
                    if equal(f.key, OtlpLogsEncoder.contentKey) {
                        body = fi
                    } else if equal(f.key, OtlpLogsEncoder.levelKey) {
                        severity = fi
                    } else {
                        size += ProtobufWire.fieldSize(payload: OtlpLogsEncoder.keyValueSize(Int(f.key.length), Int(f.value.length)))
                    }
                }
                // A parsed event whose fields were all removed is not written (as every flusher).
                if live == 0 { continue }
                if body >= 0 { size += ProtobufWire.fieldSize(payload: ProtobufWire.fieldSize(payload: Int(batch.fields[body].value.length))) }
                if severity >= 0, batch.fields[severity].value.length > 0 { size += ProtobufWire.fieldSize(payload: Int(batch.fields[severity].value.length)) }
                records.append((i, size, body, severity))
                scopeSize += ProtobufWire.fieldSize(payload: size)
            }
            return true
        }
        guard valid else { return false }

        let resourceSize = resource.reduce(0) { $0 + ProtobufWire.fieldSize(payload: OtlpLogsEncoder.keyValueSize($1.key.count, $1.value.count)) }
        let resourceLogsSize = ProtobufWire.fieldSize(payload: resourceSize) + ProtobufWire.fieldSize(payload: scopeSize)
        out.reserve(ProtobufWire.fieldSize(payload: resourceLogsSize))
        out.appendLengthDelimited(field: 1, length: resourceLogsSize)
        out.appendLengthDelimited(field: 1, length: resourceSize)
        for p in resource { OtlpLogsEncoder.appendKeyValue(field: 1, p, to: out) }
        out.appendLengthDelimited(field: 2, length: scopeSize)
        batch.arena.withUnsafeBufferPointer { a in
            let arena = a.baseAddress ?? UnsafePointer(bitPattern: 1)!
            func bytes(_ s: Span) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: arena + Int(s.offset), count: Int(s.length)) }
            for r in records {
                let ev = batch.events[r.event]
                out.appendLengthDelimited(field: 2, length: r.size)
                out.appendFixed64Field(1, OtlpLogsEncoder.nanos(ev, batch))
                if r.severity >= 0 {
                    let v = bytes(batch.fields[r.severity].value)
                    if !v.isEmpty {
                        out.appendLengthDelimited(field: 3, length: v.count)
                        out.append(v.baseAddress!, v.count)
                    }
                }
                if r.body != -1 {
                    let v = r.body == -2 ? bytes(ev.content) : bytes(batch.fields[r.body].value)
                    out.appendLengthDelimited(field: 5, length: ProtobufWire.fieldSize(payload: v.count))
                    OtlpLogsEncoder.appendString(field: 1, v, to: out)
                }
                if ev.isParsed {
                    for fi in Int(ev.fieldStart)..<Int(ev.fieldStart + ev.fieldCount) where fi != r.body && fi != r.severity {
                        let f = batch.fields[fi]
                        if f.kind == .deleted { continue }
                        let k = bytes(f.key), v = bytes(f.value)
                        // Another `content` or `level` field than the last: the record keeps only the last.
                        if k.elementsEqual(OtlpLogsEncoder.contentKey) || k.elementsEqual(OtlpLogsEncoder.levelKey) { continue }
                        OtlpLogsEncoder.appendKeyValue(field: 6, k, v, to: out)
                    }
                }
                for p in tagAttributes { OtlpLogsEncoder.appendKeyValue(field: 6, p, to: out) }
                out.appendFixed64Field(11, observed)
            }
        }
        return true
    }

    /// The record's time: the event's, else the read time; before 1970 is 0 (not written).
    @inline(__always)
    static func nanos(_ ev: LogEvent, _ batch: EventBatch) -> UInt64 {
        UInt64(max(0, ev.timeNanos != 0 ? ev.timeNanos : batch.observedNanos))
    }

    /// A KeyValue's size: the key (left out when empty) and an AnyValue holding the string.
    @inline(__always)
    static func keyValueSize(_ k: Int, _ v: Int) -> Int {
        (k > 0 ? ProtobufWire.fieldSize(payload: k) : 0) + ProtobufWire.fieldSize(payload: ProtobufWire.fieldSize(payload: v))
    }

    /// A string field, written even when empty (AnyValue's oneof); an empty key is left out by the caller.
    @inline(__always)
    static func appendString(field: Int, _ v: UnsafeBufferPointer<UInt8>, to out: OutputBuffer) {
        out.appendLengthDelimited(field: field, length: v.count)
        if let b = v.baseAddress, v.count > 0 { out.append(b, v.count) }
    }

    /// A KeyValue as field `field` (Resource's attributes 1, a LogRecord's 6): the key (left out
    /// when empty) and an AnyValue holding the string, `keyValueSize` bytes.
    @inline(__always)
    static func appendKeyValue(field: Int, _ k: UnsafeBufferPointer<UInt8>, _ v: UnsafeBufferPointer<UInt8>, to out: OutputBuffer) {
        out.appendLengthDelimited(field: field, length: keyValueSize(k.count, v.count))
        if !k.isEmpty { appendString(field: 1, k, to: out) }
        out.appendLengthDelimited(field: 2, length: ProtobufWire.fieldSize(payload: v.count))
        appendString(field: 1, v, to: out)
    }

    static func appendKeyValue(field: Int, _ p: Pair, to out: OutputBuffer) {
        p.key.withUnsafeBufferPointer { k in p.value.withUnsafeBufferPointer { v in appendKeyValue(field: field, k, v, to: out) } }
    }
}
