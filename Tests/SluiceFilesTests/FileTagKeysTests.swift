import Glibc
import SluiceConfig
import SluiceCore
@testable import SluiceFiles
import SluiceTesting
import Synchronization
import Testing

/// A sink that keeps each event's fields (an unparsed event: its `content`) and its batch's tags.
final class FieldsSink: BatchSink, Sendable {
    struct Event: Sendable {
        var fields: [String: String]
        var order: [String]
        var tags: [String: String]
    }
    private let state = Mutex<[Event]>([])

    func send(_ b: EventBatch) -> Bool {
        var got: [Event] = []
        let tags = Dictionary(b.tags.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        for i in b.events.indices {
            let f = b.fieldStrings(i)
            got.append(Event(fields: Dictionary(f.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }), order: f.map(\.key), tags: tags))
        }
        state.withLock { $0 += got }
        b.ack?.expect(1)
        b.ack?.acknowledge()
        return true
    }

    var events: [Event] { state.withLock { $0 } }
}

/// The incumbent's `Tags`, `AppendingLogPositionMeta` and `FileOffsetKey` (FileTagOptions).
@Suite("input_file tags and line offsets")
struct FileTagKeysTests {
    static func keys(_ yaml: String) throws -> FileTagKeys {
        try FileTagKeys.from(try ConfigObject.parse(yaml: yaml, file: "t.yaml", fields: FileTagKeys.fields))
    }

    @Test("The incumbent's rules: defaults, renames, \"\" and __default__, and which key wins")
    func rules() throws {
        let none = try Self.keys("{}")
        #expect(none.path == "__path__" && none.inode == nil && none.offset == nil && !none.pathNamed)
        let meta = try Self.keys("AppendingLogPositionMeta: true")
        #expect(meta.inode == "__inode__" && meta.offset == "__file_offset__")
        // FileOffsetKey or Tags.FileInodeTagKey set: AppendingLogPositionMeta is not looked at,
        // and each adds only what it names.
        let offsetOnly = try Self.keys("AppendingLogPositionMeta: true\nFileOffsetKey: __default__")
        #expect(offsetOnly.offset == "__file_offset__" && offsetOnly.inode == nil)
        let inodeOnly = try Self.keys("Tags: {FileInodeTagKey: ino}")
        #expect(inodeOnly.inode == "ino" && inodeOnly.offset == nil)
        let noneAtAll = try Self.keys("AppendingLogPositionMeta: true\nFileOffsetKey: ''")
        #expect(noneAtAll.offset == nil && noneAtAll.inode == nil)
        let renamed = try Self.keys("Tags: {FilePathTagKey: file, K8sNamespaceTagKey: ns, ContainerIpTagKey: '', ContainerNameTagKey: __default__}")
        #expect(renamed.path == "file" && renamed.pathNamed)
        #expect(renamed.containerRenames == ["_namespace_": "ns", "_container_ip_": "", "_container_name_": "_container_name_"])
        let dropped = try Self.keys("Tags: {FilePathTagKey: ''}")
        #expect(dropped.path == nil && !dropped.pathNamed)
        let tags = [EventTag("_container_name_", "c"), EventTag("_namespace_", "n"), EventTag("_container_ip_", "10.0.0.1"), EventTag("_pod_name_", "p")]
        #expect(renamed.renamingContainerTags(tags) == [EventTag("_container_name_", "c"), EventTag("ns", "n"), EventTag("_pod_name_", "p")])
    }

    @Test("A value that is not text is an error at its key")
    func badValue() {
        #expect(throws: ConfigError.self) { try Self.keys("Tags: [a]") }
        #expect(throws: ConfigError.self) { try Self.keys("AppendingLogPositionMeta: 3") }
    }

    /// Reads `bytes` written as `name` with options `o`; returns the events once `count` arrived.
    func read(_ o: (inout FileInputOptions) -> Void, _ name: String, _ bytes: [UInt8], count: Int) async throws -> (events: [FieldsSink.Event], inode: UInt64) {
        let env = FIEnv()
        defer { env.remove() }
        env.createMarker()
        var opts = env.options()
        o(&opts)
        let sink = FieldsSink()
        var inode: UInt64 = 0
        try await fiWithInput(try env.input(opts, table: try env.table()), sink: sink) {
            #expect(await env.waitStarted())
            fiPlaceAtomically(env.inDir + "/" + name, bytes)
            inode = fiStat(env.inDir + "/" + name)?.inode ?? 0
            #expect(await eventually(5) { sink.events.count >= count })
        }
        return (sink.events, inode)
    }

    @Test("AppendingLogPositionMeta: each line's offset after its content, the inode as a tag, an unterminated last line too")
    func offsetsOfPlainLines() async throws {
        let text = "first\nsecond line\nthird"  // offsets 0, 6, 18 (the last unterminated)
        let (events, inode) = try await read({ $0.tagKeys = try! Self.keys("AppendingLogPositionMeta: true") }, "a.log", Array(text.utf8), count: 3)
        #expect(events.map { $0.fields["content"] ?? "" } == ["first", "second line", "third"])
        #expect(events.map { $0.fields["__file_offset__"] ?? "" } == ["0", "6", "18"])
        #expect(events.allSatisfy { $0.order == ["content", "__file_offset__"] })
        #expect(events.allSatisfy { $0.tags["__inode__"] == String(inode) && $0.tags["__path__"] != nil })
    }

    @Test("Renamed keys; the path tag left out; no inode tag when only FileOffsetKey names the offset")
    func renamedKeys() async throws {
        let (events, _) = try await read({ $0.tagKeys = try! Self.keys("FileOffsetKey: off\nTags: {FilePathTagKey: ''}") }, "b.log", Array("x\nyy\n".utf8), count: 2)
        #expect(events.map { $0.fields["off"] ?? "" } == ["0", "2"])
        #expect(events.allSatisfy { $0.tags["__path__"] == nil && $0.tags["__inode__"] == nil })
        let (named, _) = try await read({ $0.tagKeys = try! Self.keys("Tags: {FilePathTagKey: file, FileInodeTagKey: __default__}") }, "c.log", Array("x\n".utf8), count: 1)
        #expect(named.first?.tags["file"]?.hasSuffix("/c.log") == true && named.first?.tags["__path__"] == nil)
        #expect(named.first?.tags["__inode__"] != nil && named.first?.fields["__file_offset__"] == nil)
    }

    @Test("Multiline groups have their first line's offset, in the file's bytes (GBK: before conversion)")
    func offsetsOfGroupsAndGBK() async throws {
        let text = "2024 a\n  at x\n  at y\n2024 b\n2024 c\n  at z\n"  // groups at 0, 21, 28
        let (groups, _) = try await read({
            $0.tagKeys = try! Self.keys("AppendingLogPositionMeta: true")
            $0.multiline = try! MultilineOptions.from(try ConfigObject.parse(yaml: "StartPattern: '\\d+ .*'", file: "m.yaml", fields: MultilineOptions.fields), allowJSON: true)
        }, "m.log", Array(text.utf8), count: 3)
        #expect(groups.map { $0.fields["content"] ?? "" } == ["2024 a\n  at x\n  at y", "2024 b", "2024 c\n  at z"])
        #expect(groups.map { $0.fields["__file_offset__"] ?? "" } == ["0", "21", "28"])

        let zhongwen: [UInt8] = [0xD6, 0xD0, 0xCE, 0xC4]  // 中文, 4 bytes in GBK, 6 in UTF-8
        let (gbk, _) = try await read({
            $0.tagKeys = try! Self.keys("FileOffsetKey: __default__")
            $0.fileEncoding = "gbk"
        }, "g.log", zhongwen + [0x0A] + zhongwen + [0x0A] + Array("ok".utf8), count: 3)
        #expect(gbk.map { $0.fields["content"] ?? "" } == ["中文", "中文", "ok"])
        #expect(gbk.map { $0.fields["__file_offset__"] ?? "" } == ["0", "5", "10"])
    }

    @Test("Runtime logs: each record has the offset of its first line, a joined CRI record its P line's")
    func offsetsOfRuntimeRecords() async throws {
        let lines = [
            "2024-05-01T00:00:00.000000001Z stdout P part one ",
            "2024-05-01T00:00:00.000000002Z stdout F and two",
            "2024-05-01T00:00:00.000000003Z stderr F alone",
        ]
        let text = lines.map { $0 + "\n" }.joined()
        let second = lines[0].utf8.count + 1 + lines[1].utf8.count + 1
        let (events, _) = try await read({
            $0.tagKeys = try! Self.keys("AppendingLogPositionMeta: true")
            $0.containerLogFormat = .cri
        }, "c.log", Array(text.utf8), count: 2)
        let byContent = Dictionary(events.map { ($0.fields["content"] ?? "", $0.fields["__file_offset__"] ?? "") }, uniquingKeysWith: { a, _ in a })
        #expect(byContent == ["part one and two": "0", "alone": String(second)])
    }

    @Test("Runtime logs with multiline: a group has its first record's offset, each line of an unmatched group its record's")
    func offsetsOfRuntimeGroups() {
        let t = "2024-01-01T00:00:01Z"
        let records = ["noise\\n", "BEGIN 1\\n", "body\\n", "END 1\\n", "BEGIN 2\\n", "a\\nb\\n"]
        var arena: [UInt8] = []
        var events: [LogEvent] = []
        var offsets: [Int64] = []
        for r in records {
            let line = #"{"log":"\#(r)","stream":"stdout","time":"\#(t)"}"#
            offsets.append(500 + Int64(arena.count))
            events.append(LogEvent(content: Span(arena.count, line.utf8.count)))
            arena += Array(line.utf8) + [0x0A]
        }
        let d = StreamDecoder(format: .dockerJSON, multiline: MultilineOptions(start: mlPattern("BEGIN"), end: mlPattern("END")))
        d.offsetKey = "__file_offset__"
        func rows(_ batches: [EventBatch]) -> [String] {
            batches.flatMap { b in b.events.indices.map { i in
                let f = Dictionary(b.fieldStrings(i).map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
                return (f["content"] ?? "?") + "@" + (f["__file_offset__"] ?? "?")
            } }
        }
        let decoded = d.decode(EventBatch(arena: arena, events: events, tags: [], timeSeconds: 1, inputBytes: arena.count), baseOffset: 500)
        #expect(rows(decoded) == ["noise@\(offsets[0])", "BEGIN 1\nbody\nEND 1@\(offsets[1])"])
        // Let go with the second group open: unmatched, so each line leaves alone; the record
        // with two lines of its own gives both its offset.
        #expect(rows(d.flushPending(tags: [], observedNanos: 0)) == ["BEGIN 2@\(offsets[4])", "a@\(offsets[5])", "b@\(offsets[5])"])
    }
}
