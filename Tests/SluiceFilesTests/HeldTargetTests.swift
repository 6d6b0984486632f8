import Glibc
import SluiceCore
import SluiceFiles
import SluiceTesting
import Synchronization
import Testing

/// Dynamic targets that hold their files (a container whose metadata is not known yet).
@Suite("input_file: held and discarded targets")
struct HeldTargetTests {
    func target(_ env: FIEnv, key: String, dir: String, hold: Bool = false, discard: Bool = false, tag: String = "v") throws -> WatchTarget {
        var t = WatchTarget(key: key, patterns: [try PathPattern(dir + "/*.log")], tags: [EventTag("who", tag)], existedBefore: false)
        t.hold = hold
        t.discard = discard
        return t
    }

    /// A sink whose destination is down: each send waits (calling `waiting`, as the pipeline's
    /// queue does) until `released`.
    final class DownSink: BatchSink, Sendable {
        let released = Atomic<Bool>(false)
        let waits = Atomic<Int>(0)
        let inner = FIRecordingSink()
        func send(_ b: EventBatch) -> Bool { send(b, waiting: {}) }
        func send(_ b: EventBatch, waiting: () -> Void) -> Bool {
            while !released.load(ordering: .acquiring) {
                waiting()
                waits.add(1, ordering: .relaxed)
                usleep(20_000)
            }
            return inner.send(b)
        }
    }

    @Test("A container that comes and goes (its log deleted) while the input waits for the destination is read whole afterwards")
    func containerComingAndGoingWhileBlocked() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let dir = env.tmp.sub("job")
        let input = try env.input(env.options(), table: try env.table())
        let sink = DownSink()
        try await fiWithInput(input, sink: sink) {
            // Something to send: the input now waits in the sink.
            writeFile(env.inDir + "/app.log", "first\n")
            #expect(await eventually { sink.waits.load(ordering: .relaxed) > 3 })
            // A Job's container starts, writes, ends and is removed with its log, all while blocked.
            let log = dir + "/0.log"
            writeFile(log, (0..<50).map { "job-\($0)\n" }.joined())
            input.setDynamicTargets([try target(env, key: "job", dir: dir)])
            #expect(await eventually { fiIsOpenInProcess(log) }, "opened while the input waits")
            #expect(unlink(log) == 0)
            input.setDynamicTargets([])
            await pause(0.2)
            sink.released.store(true, ordering: .releasing)
            #expect(await eventually(3) { sink.inner.lines.count >= 51 })
            await pause(0.2)
        }
        #expect(sink.inner.lines.filter { $0.hasPrefix("job-") } == (0..<50).map { "job-\($0)" })
        #expect(sink.inner.lines.first == "first")
    }

    @Test("A held target's file is opened at once but not read; released, it is read from 0, even after deletion")
    func heldThenReleased() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let dir = env.tmp.sub("c1")
        let input = try env.input(env.options([]), table: try env.table())
        let sink = FIRecordingSink()
        try await fiWithInput(input, sink: sink) {
            input.setDynamicTargets([try target(env, key: "c1", dir: dir, hold: true, tag: "partial")])
            writeFile(dir + "/0.log", "a\nb\n")
            #expect(await eventually { fiIsOpenInProcess(dir + "/0.log") })
            appendFile(dir + "/0.log", "c\n")
            await pause(0.4)
            #expect(sink.lines.isEmpty, "a held file must not be read")
            // Deleted while held: still read through the held descriptor once released.
            unlink(dir + "/0.log")
            await pause(0.2)
            input.setDynamicTargets([try target(env, key: "c1", dir: dir, tag: "complete")])
            #expect(await eventually { sink.lines.count >= 3 })
        }
        #expect(sink.lines == ["a", "b", "c"])
    }

    @Test("A held target that goes away is drained (read to the end), not dropped")
    func heldTargetRemovedIsDrained() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let dir = env.tmp.sub("c2")
        let input = try env.input(env.options([]), table: try env.table())
        let sink = FIRecordingSink()
        try await fiWithInput(input, sink: sink) {
            input.setDynamicTargets([try target(env, key: "c2", dir: dir, hold: true)])
            writeFile(dir + "/0.log", "x\ny\n")
            #expect(await eventually { fiIsOpenInProcess(dir + "/0.log") })
            input.setDynamicTargets([])
            #expect(await eventually { sink.lines.count >= 2 })
        }
        #expect(sink.lines == ["x", "y"])
    }

    @Test("A discarded target lets its held files go unread and opens nothing new")
    func discardedTargetLetsGoUnread() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let dir = env.tmp.sub("c3")
        let input = try env.input(env.options([]), table: try env.table())
        let sink = FIRecordingSink()
        try await fiWithInput(input, sink: sink) {
            input.setDynamicTargets([try target(env, key: "c3", dir: dir, hold: true)])
            writeFile(dir + "/0.log", "secret\n")
            #expect(await eventually { fiIsOpenInProcess(dir + "/0.log") })
            input.setDynamicTargets([try target(env, key: "c3", dir: dir, discard: true)])
            #expect(await eventually { !fiIsOpenInProcess(dir + "/0.log") })
            writeFile(dir + "/1.log", "more\n")
            await pause(0.5)
            #expect(!fiIsOpenInProcess(dir + "/1.log"))
            input.setDynamicTargets([])
            await pause(0.5)
        }
        #expect(sink.lines.isEmpty)
    }

    @Test("A target replaced by one under another key that matches the same path adopts the file, deleted or not")
    func keyChangeAdoptsByPath() async throws {
        let env = FIEnv()
        defer { env.remove() }
        let dir = env.tmp.sub("c4")
        let input = try env.input(env.options([]), table: try env.table())
        let sink = FIRecordingSink()
        try await fiWithInput(input, sink: sink) {
            input.setDynamicTargets([try target(env, key: "log:c4", dir: dir, hold: true, tag: "old")])
            writeFile(dir + "/0.log", "one\ntwo\n")
            #expect(await eventually { fiIsOpenInProcess(dir + "/0.log") })
            unlink(dir + "/0.log")
            await pause(0.2)
            input.setDynamicTargets([try target(env, key: "id:c4", dir: dir, tag: "new")])
            #expect(await eventually { sink.lines.count >= 2 })
        }
        #expect(sink.lines == ["one", "two"])
    }
}
