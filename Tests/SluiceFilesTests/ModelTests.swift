import Glibc
import SluiceCore
import SluiceFiles
import SluiceTesting
import Synchronization
import Testing
import SluiceSystem

// Model-based test of input_file: random sequences of appends, rotations, copytruncates,
// truncations, deletions and restarts (with unacknowledged batches) on 1–3 files, checked
// against a model of which lines must arrive.
//
// Environment:
//   SLUICE_MODEL_SEED=<n>       base seed (printed by every run)
//   SLUICE_MODEL_ONLY=<i>       replay only sequence i of that seed
//   SLUICE_MODEL_SEQUENCES=<n>  number of sequences (30)
//   SLUICE_MODEL_STEPS=<n>      steps per sequence (40)
//   SLUICE_MODEL_VERBOSE=1      print every sequence's operation log
//   SLUICE_MODEL_PARALLEL=<n>   sequences run at once (3)
//   SLUICE_MODEL_STRICT_ROTATED=0  acknowledge batches of rotated files before restarts (on by
//                               default: they are left unacknowledged too, and a restart must
//                               find the rotated files by their identity)
//   SLUICE_MODEL_IDLE_CLOSE=1   every sequence with CloseUnusedReaderIntervalSec = 0.3, readers
//                               reopened by identity; =0 none; by default every third sequence
//                               (the file-rewritten-before-read duplicate that made this mode
//                               flaky is fixed: 300 of 300 sequences passed in idle-close mode)
//
// The oracle:
// - A line "arrived" when a batch holding it was acknowledged (a batch dropped unacknowledged
//   at a restart was never delivered).
// - Every line written must arrive, except lines of a file truncated to 0 that had not been
//   read yet (they are gone). Copytruncate waits until the input has caught up (the copy is
//   not matched by the pattern); rotation and deletion wait until the input holds the file open
//   (a file renamed away or deleted before it was ever opened is legitimately lost; with idle
//   closing on, "seen": open, or in the checkpoint table with its current signature); late
//   writes to a rotated / deleted file happen right after the rename / unlink, well within
//   ReleaseDrainedAfterSec; with idle closing on, lines of a deleted file not yet read when it
//   was deleted may be lost (a closed descriptor cannot be reopened); a restart first waits until
//   rotated and deleted files are drained
//   and acknowledges their batches (a rotated file no longer matches, so today it is not read
//   again after a restart: see SLUICE_MODEL_STRICT_ROTATED).
// - A line arrives at most once, unless it was read again after a restart because a batch of
//   its file at or before it was left unacknowledged (checkpoints commit the contiguous prefix).
// - Nothing arrives that was never written: every event is a whole line, or — when the flush
//   timeout (0.3 s) emitted a partial line — its written prefix and later its suffix.
// - Within one input session, the events of one file arrive in the order written.

/// SplitMix64: small, seedable, good enough to drive the test.
private struct ModelRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &self) }
}

private func mixSeed(_ x: UInt64) -> UInt64 {
    var r = ModelRNG(seed: x)
    return r.next()
}

private func envValue(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    let s = String(cString: p)
    return s.isEmpty ? nil : s
}

private func pad6(_ n: Int) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, 6 - s.count)) + s
}

/// Records every batch; acknowledges each with a probability (decided at send) or holds it.
private final class ModelSink: BatchSink, Sendable {
    struct Sent: Sendable {
        var session: Int
        var contents: [String]
        var path: String
        var autoAcked: Bool
    }
    private struct State {
        var sent: [Sent] = []
        var held: [Int: AckToken] = [:]
        var session = 0
        var ackProbability = 1.0
        var seed: UInt64
    }
    private let state: Mutex<State>

    init(seed: UInt64) { state = Mutex(State(seed: seed)) }

    func send(_ b: EventBatch) -> Bool {
        let path = b.tag("__path__") ?? ""
        var contents: [String] = []
        contents.reserveCapacity(b.events.count)
        for i in 0..<b.events.count { contents.append(String(decoding: b.contentBytes(i), as: UTF8.self)) }
        let tok: AckToken? = state.withLock { s in
            let idx = s.sent.count
            // Decided by the batch's first event and the seed (not by how many batches came
            // before), so a replay holds the same batches as long as the reads split alike.
            var h = ModelRNG(seed: s.seed ^ FNV1a.hash(Array((contents.first ?? "").utf8)))
            let ack = s.ackProbability >= 1 || h.chance(s.ackProbability)
            s.sent.append(Sent(session: s.session, contents: contents, path: path, autoAcked: ack))
            if ack { return b.ack }
            if let t = b.ack { s.held[idx] = t }
            return nil
        }
        tok?.expect(1)
        tok?.acknowledge()
        return true
    }

    func sent(from: Int) -> [Sent] {
        state.withLock { s in from < s.sent.count ? Array(s.sent[from...]) : [] }
    }
    func ack(_ idx: Int) {
        let t: AckToken? = state.withLock { $0.held.removeValue(forKey: idx) }
        t?.expect(1)
        t?.acknowledge()
    }
    func forget(_ idx: Int) { _ = state.withLock { $0.held.removeValue(forKey: idx) } }
    func setSession(_ n: Int) { state.withLock { $0.session = n } }
    func setAckProbability(_ p: Double) { state.withLock { $0.ackProbability = p } }
}

/// One random sequence and its model.
private final class ModelRun {
    enum Part: Int { case full = 0, prefix = 1, suffix = 2 }

    struct Line {
        let id: Int
        let stream: Int
        let content: String
        var prefix: String?
        var suffix: String?
        /// May be lost (the file was truncated before the line was read).
        var optional = false
        var ackFull = 0, ackPrefix = 0, ackSuffix = 0
        /// Last session in which the whole line or its suffix was sent.
        var sentSession = -1
        var acked: Bool { ackFull > 0 || (ackPrefix > 0 && ackSuffix > 0) }
    }
    /// The content of one file between creation / truncation and rotation / deletion / truncation.
    struct Stream {
        let id: Int
        let path: String
        var lineIds: [Int] = []
        var bytes = 0
        var gone = false
        var truncatedAway = false
        var renamedAway = false
        var inode: UInt64 = 0
    }
    struct Slot {
        let path: String
        var fd: Int32 = -1
        var stream = -1
        var rotations = 0
        var partial: (id: Int, rest: String)?
    }

    let index: Int
    let seed: UInt64
    let steps: Int
    var rng: ModelRNG
    let env = FIEnv()
    let sink: ModelSink
    var options: FileInputOptions
    var ackProbability: Double
    var table: CheckpointTable?

    var lines: [Int: Line] = [:]
    var streams: [Stream] = []
    var slots: [Slot] = []
    var nextId = 1
    var session = 0
    var step = 0
    var processed = 0
    var heldIds: [Int: (session: Int, ids: [(Int, Part)])] = [:]
    var lastKey: [String: (Int, Int)] = [:]
    var allowedDup = Set<Int>()
    var violations: [String] = []
    var opLog: [String] = []

    let strictRotated: Bool

    init(index: Int, seed: UInt64, steps: Int, idleClose: Bool, strictRotated: Bool = false) {
        self.strictRotated = strictRotated
        self.index = index
        self.seed = seed
        self.steps = steps
        rng = ModelRNG(seed: seed)
        sink = ModelSink(seed: seed ^ 0x5EED)
        options = env.options()
        options.useInotify = rng.chance(0.8)
        ackProbability = [1.0, 1.0, 0.8, 0.5][rng.int(0...3)]
        _ = rng.next()  // reserved (keeps the sequences of a seed stable whatever the options)
        if idleClose { options.closeUnusedReaderIntervalSec = 0.3 }
        sink.setAckProbability(ackProbability)
        let n = rng.int(1...3)
        for i in 0..<n { slots.append(Slot(path: env.inDir + "/" + ["a", "b", "c"][i] + ".log")) }
    }

    var configDescription: String {
        "files=\(slots.count) inotify=\(options.useInotify) ackProbability=\(ackProbability) idleClose=\(idleClosing)"
    }

    var idleClosing: Bool { options.closeUnusedReaderIntervalSec < 1 }

    func log(_ s: String) { opLog.append("#\(step) [s\(session)] " + s) }
    func violation(_ s: String) { violations.append("#\(step) [s\(session)] " + s) }

    // MARK: Running

    /// Runs the sequence; returns a failure report, or nil.
    func run() async throws -> String? {
        defer {
            for s in slots where s.fd >= 0 { close(s.fd) }
            env.remove()
        }
        var table = try env.table()
        while true {
            self.table = table
            let metrics = PipelineMetrics()
            let input = try env.input(options, table: table, metrics: metrics)
            let existing = slots.filter { $0.fd >= 0 }.count
            var restart = false
            try await fiWithInput(input, sink: sink) {
                // The first scan opens every file that exists; until it has, the checkpoint
                // table still holds what the previous session persisted.
                let scanned = await eventually(5) { metrics.filesOpened.current >= existing }
                if !scanned { violation("the first scan did not open the \(existing) existing files within 5 s") }
                while step < steps {
                    step += 1
                    if try await randomStep() {
                        restart = true
                        return
                    }
                }
                await finalPhase()
            }
            pull()
            if !restart { break }
            afterStop()
            try table.persist(force: true)
            table = try env.table()
            log("restart: checkpoints " + table.entries.map { "\($0.path.split(separator: "/").last ?? "")#\($0.inode)@\($0.offset)/sig\($0.sigLen)" }.joined(separator: " "))
            session += 1
            sink.setSession(session)
        }
        check()
        if violations.isEmpty { return nil }
        return "config: \(configDescription)\nviolations (\(violations.count)):\n  "
            + violations.prefix(25).joined(separator: "\n  ")
            + "\noperations:\n  " + opLog.joined(separator: "\n  ")
    }

    /// One random operation; true when it is a restart (the caller stops the input).
    func randomStep() async throws -> Bool {
        let s = rng.int(0...(slots.count - 1))
        let r = rng.int(0...99)
        switch r {
        case 0..<44: append(s)
        case 44..<58: await pause()
        case 58..<67: await rotate(s)
        case 67..<73: await copyTruncate(s)
        case 73..<78: await truncateToZero(s)
        case 78..<85: await delete(s)
        case 85..<93: ackSome()
        default:
            await beforeStop()
            return true
        }
        return false
    }

    // MARK: Writing

    func newLine(stream: Int) -> Int {
        let id = nextId
        nextId += 1
        let k = streams[stream].lineIds.count
        var pad = ""
        for _ in 0..<rng.int(0...100) { pad.unicodeScalars.append(Unicode.Scalar(UInt8(97 + rng.int(0...25)))) }
        let content = "id=\(pad6(id)) s\(stream)-\(k) \(pad) end=\(pad6(id))"
        lines[id] = Line(id: id, stream: stream, content: content)
        streams[stream].lineIds.append(id)
        return id
    }

    func write(_ slot: Int, _ text: String) {
        let bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(slots[slot].fd, $0.baseAddress! + off, bytes.count - off) }
            precondition(n > 0, "write failed: \(errno)")
            off += n
        }
        streams[slots[slot].stream].bytes += bytes.count
    }

    /// Opens a new file at the slot's path if it has none.
    func ensureFile(_ slot: Int) {
        guard slots[slot].fd < 0 else { return }
        let fd = open(slots[slot].path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "model error: cannot create \(slots[slot].path): \(errno)")
        slots[slot].fd = fd
        newStream(slot)
    }

    func newStream(_ slot: Int) {
        var st = Stream(id: streams.count, path: slots[slot].path)
        st.inode = fiStat(slots[slot].path)?.inode ?? 0
        streams.append(st)
        slots[slot].stream = st.id
    }

    func name(_ slot: Int) -> String { String(slots[slot].path.split(separator: "/").last!) }

    func append(_ slot: Int, count: Int? = nil) {
        let created = slots[slot].fd < 0
        ensureFile(slot)
        let st = slots[slot].stream
        var text = ""
        var desc: [String] = []
        if let p = slots[slot].partial {
            text += p.rest + "\n"
            slots[slot].partial = nil
            desc.append("completes \(p.id)")
        }
        let k = count ?? (rng.chance(0.1) ? rng.int(10...30) : rng.int(1...6))
        var ids: [Int] = []
        for _ in 0..<k {
            let id = newLine(stream: st)
            ids.append(id)
            text += lines[id]!.content + "\n"
        }
        desc.append("ids \(ids.first!)…\(ids.last!)")
        if count == nil && rng.chance(0.25) {
            let id = newLine(stream: st)
            let c = Array(lines[id]!.content)
            let cut = rng.int(10...(c.count - 11))
            let prefix = String(c[..<cut]), suffix = String(c[cut...])
            lines[id]!.prefix = prefix
            lines[id]!.suffix = suffix
            slots[slot].partial = (id, suffix)
            text += prefix
            desc.append("partial \(id)")
        }
        write(slot, text)
        log("append \(name(slot))\(created ? " (new file, stream s\(st), inode \(streams[st].inode))" : "") \(desc.joined(separator: ", "))")
    }

    func completePartial(_ slot: Int) {
        if let p = slots[slot].partial {
            write(slot, p.rest + "\n")
            slots[slot].partial = nil
            log("  complete partial \(p.id) in \(name(slot))")
        }
    }

    func pause() async {
        let ms = rng.chance(0.1) ? rng.int(350...700) : rng.int(0...20)
        log("sleep \(ms) ms")
        await SluiceTesting.pause(Double(ms) / 1000)
    }

    /// Waits until the input holds the slot's current file open (or, with idle closing, has it
    /// in its checkpoint table with the file's current signature).
    func waitOpened(_ slot: Int) async -> Bool {
        guard let st = fiStat(slots[slot].path) else { return false }
        let fd = slots[slot].fd
        let path = slots[slot].path
        let ok = await eventually(3) {
            fiIsOpenInProcess(dev: st.dev, inode: st.inode, excluding: [fd])
                || (idleClosing && tracked(path: path, dev: st.dev, inode: st.inode))
        }
        if !ok { violation("\(name(slot)) (s\(slots[slot].stream)) was never opened by the input within 3 s") }
        return ok
    }

    func tracked(path: String, dev: UInt64, inode: UInt64) -> Bool {
        guard let e = table?.entries.first(where: { $0.dev == dev && $0.inode == inode }) else { return false }
        let bytes = readFileBytes(path)
        // An empty signature says nothing of this content: the entry may be an earlier file's
        // whose inode this one reused (that file truncated before it was deleted). Taking it as
        // "seen" let a rename away go ahead before the input had ever opened the new file.
        guard e.sigLen > 0 || bytes.isEmpty else { return false }
        let head = Array(bytes.prefix(e.sigLen))
        return head.count == e.sigLen && String(FNV1a.hash(head), radix: 16) == e.sig
    }

    /// Waits until `condition` holds, as long as the input keeps delivering (gives up after 1.5 s
    /// without a new batch — longer than the rescan and poll intervals — or 10 s in all).
    func waitWhileProgressing(_ condition: () -> Bool) async -> Bool {
        let start = monotonicSeconds()
        var seen = processed
        var lastChange = start
        while true {
            if condition() { return true }
            let now = monotonicSeconds()
            if processed != seen {
                seen = processed
                lastChange = now
            }
            if now - lastChange > 1.5 || now - start > 10 { return condition() }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    func waitCaughtUp(_ slot: Int, _ what: String) async {
        let st = slots[slot].stream
        let ok = await waitWhileProgressing { self.caughtUp(st) }
        if !ok { violation("the input did not catch up with s\(st) (\(name(slot))) before \(what)") }
    }

    func lateWrites(_ slot: Int) -> String {
        guard rng.chance(0.5) else { return "" }
        let k = rng.int(1...3)
        var text = ""
        var ids: [Int] = []
        for _ in 0..<k {
            let id = newLine(stream: slots[slot].stream)
            ids.append(id)
            text += lines[id]!.content + "\n"
        }
        write(slot, text)
        return " late writes \(ids.first!)…\(ids.last!)"
    }

    func rotate(_ slot: Int) async {
        guard slots[slot].fd >= 0 else { log("rotate \(name(slot)): no file"); return }
        completePartial(slot)
        _ = await waitOpened(slot)
        slots[slot].rotations += 1
        let to = slots[slot].path + ".\(slots[slot].rotations)"
        precondition(rename(slots[slot].path, to) == 0)
        let st = slots[slot].stream
        streams[st].renamedAway = true
        var desc = "rotate \(name(slot)) (s\(st)) → \(name(slot)).\(slots[slot].rotations)"
        desc += lateWrites(slot)
        close(slots[slot].fd)
        slots[slot].fd = -1
        streams[st].gone = true
        if rng.chance(0.5) {
            ensureFile(slot)
            desc += ", new empty file (s\(slots[slot].stream), inode \(streams[slots[slot].stream].inode))"
        }
        log(desc)
    }

    func delete(_ slot: Int) async {
        guard slots[slot].fd >= 0 else { log("delete \(name(slot)): no file"); return }
        completePartial(slot)
        _ = await waitOpened(slot)
        precondition(unlink(slots[slot].path) == 0)
        let st = slots[slot].stream
        var desc = "delete \(name(slot)) (s\(st))"
        desc += lateWrites(slot)
        if idleClosing {
            // The reader may hold no descriptor: what it has not read yet may be gone.
            pull()
            var lost = 0
            for id in streams[st].lineIds where !lines[id]!.acked && lines[id]!.sentSession != session {
                lines[id]!.optional = true
                lost += 1
            }
            desc += "; not yet read (may be lost): \(lost)"
        }
        close(slots[slot].fd)
        slots[slot].fd = -1
        streams[st].gone = true
        log(desc)
        if rng.chance(0.4) {
            // Re-create the file as soon as the input let go of the old one: ext4 usually hands
            // out the same inode again.
            let old = streams[st].inode
            let dev = fiStat(env.inDir)?.dev ?? 0
            let released = await eventually(3) { !fiIsOpenInProcess(dev: dev, inode: old) }
            append(slot)
            log("  re-created \(name(slot)) after the input \(released ? "released" : "still held") the old one: inode \(streams[slots[slot].stream].inode == old ? "reused" : "new")")
        }
    }

    func copyTruncate(_ slot: Int) async {
        guard slots[slot].fd >= 0 else { log("copytruncate \(name(slot)): no file"); return }
        completePartial(slot)
        while streams[slots[slot].stream].bytes < 1024 { append(slot, count: 8) }
        let st = slots[slot].stream
        await waitCaughtUp(slot, "copytruncate")
        slots[slot].rotations += 1
        let to = slots[slot].path + ".\(slots[slot].rotations)"
        writeFile(to, readFileBytes(slots[slot].path))
        precondition(ftruncate(slots[slot].fd, 0) == 0)
        streams[st].gone = true
        streams[st].truncatedAway = true
        newStream(slot)
        log("copytruncate \(name(slot)) (s\(st), \(streams[st].bytes) bytes) → \(name(slot)).\(slots[slot].rotations), now s\(slots[slot].stream)")
    }

    func truncateToZero(_ slot: Int) async {
        guard slots[slot].fd >= 0 else { log("truncate \(name(slot)): no file"); return }
        completePartial(slot)
        if rng.chance(0.5) { await waitCaughtUp(slot, "truncate") }
        pull()
        let st = slots[slot].stream
        var lost: [Int] = []
        for id in streams[st].lineIds where !lines[id]!.acked && lines[id]!.sentSession != session {
            lines[id]!.optional = true
            lost.append(id)
        }
        precondition(ftruncate(slots[slot].fd, 0) == 0)
        streams[st].gone = true
        streams[st].truncatedAway = true
        newStream(slot)
        log("truncate \(name(slot)) (s\(st)) to 0, now s\(slots[slot].stream); not yet read (may be lost): \(lost.count)")
    }

    func ackSome() {
        pull()
        var n = 0
        for idx in heldIds.keys.sorted() where rng.chance(0.5) {
            ackHeld(idx)
            n += 1
        }
        log("ack \(n) of the held batches")
    }

    // MARK: Restart

    /// Before stopping: rotated / deleted files drained and their batches acknowledged; a random
    /// fraction of the other held batches acknowledged.
    func beforeStop() async {
        if rng.chance(0.6) {
            for s in slots.indices where slots[s].fd >= 0 { await waitCaughtUp(s, "restart") }
        }
        for st in streams where st.gone && !st.truncatedAway {
            let ok = await waitWhileProgressing { self.caughtUp(st.id) }
            if !ok {
                violation("the input did not drain gone stream s\(st.id) (no progress for 1.5 s)")
            }
        }
        pull()
        for (idx, h) in heldIds where h.ids.contains(where: { streams[lines[$0.0]!.stream].gone }) {
            if strictRotated && h.ids.contains(where: { streams[lines[$0.0]!.stream].renamedAway }) { continue }
            ackHeld(idx)
        }
        let fraction = Double(rng.int(0...4)) / 4
        var acked = 0
        for idx in heldIds.keys.sorted() where rng.chance(fraction) {
            ackHeld(idx)
            acked += 1
        }
        log("restart: acknowledged \(acked) more held batches (p=\(fraction)), stopping")
    }

    /// After the input stopped: what is still held is dropped; lines at or after the first
    /// dropped line of each file may arrive twice.
    func afterStop() {
        var minDropped: [Int: Int] = [:]
        var dropped = 0
        for (idx, h) in heldIds {
            for (id, _) in h.ids {
                let st = lines[id]!.stream
                minDropped[st] = min(minDropped[st] ?? Int.max, id)
            }
            sink.forget(idx)
            dropped += 1
        }
        heldIds = [:]
        for (st, m) in minDropped {
            for id in streams[st].lineIds where id >= m { allowedDup.insert(id) }
        }
        log("restart: dropped \(dropped) unacknowledged batches; re-read from \(minDropped.sorted { $0.key < $1.key }.map { "s\($0.key)@\($0.value)" })")
    }

    // MARK: Observing the sink

    func classify(_ c: String) -> (Int, Part)? {
        if c.hasPrefix("id="), let id = Int(c.dropFirst(3).prefix(6)), let l = lines[id] {
            if c == l.content { return (id, .full) }
            if c == l.prefix { return (id, .prefix) }
            return nil
        }
        if c.count >= 11, let id = Int(c.suffix(6)), let l = lines[id], c == l.suffix {
            return (id, .suffix)
        }
        return nil
    }

    func pull() {
        let new = sink.sent(from: processed)
        for (k, b) in new.enumerated() {
            let idx = processed + k
            var ids: [(Int, Part)] = []
            var batchStream: Int?
            for c in b.contents {
                guard let (id, part) = classify(c) else {
                    violation("an event that was never written arrived: \(c.prefix(120).debugDescription) (path \(b.path))")
                    continue
                }
                ids.append((id, part))
                let st = lines[id]!.stream
                if let bs = batchStream, bs != st { violation("batch \(idx) mixes streams s\(bs) and s\(st)") }
                batchStream = st
                if b.path != streams[st].path { violation("line \(id) of \(streams[st].path) arrived tagged \(b.path)") }
                let key = (id, part == .suffix ? 1 : 0)
                let lk = "\(b.session)/\(st)"
                if let last = lastKey[lk], !(key > last) {
                    violation("line \(id) (\(part)) of s\(st) arrived after line \(last.0) in the same session: out of order or repeated")
                }
                lastKey[lk] = key
                if part != .prefix { lines[id]!.sentSession = b.session }
            }
            if b.autoAcked { applyAck(ids) } else { heldIds[idx] = (b.session, ids) }
        }
        processed += new.count
    }

    func applyAck(_ ids: [(Int, Part)]) {
        for (id, part) in ids {
            switch part {
            case .full: lines[id]!.ackFull += 1
            case .prefix: lines[id]!.ackPrefix += 1
            case .suffix: lines[id]!.ackSuffix += 1
            }
        }
    }

    func ackHeld(_ idx: Int) {
        guard let h = heldIds.removeValue(forKey: idx) else { return }
        sink.ack(idx)
        applyAck(h.ids)
    }

    /// Every line of the stream is acknowledged, read in this session, or may be lost (the
    /// unterminated line still being written does not count).
    func caughtUp(_ st: Int) -> Bool {
        pull()
        let pending = Set(slots.compactMap { $0.partial?.id })
        return streams[st].lineIds.allSatisfy { id in
            let l = lines[id]!
            return l.optional || l.acked || l.sentSession == session || pending.contains(id)
        }
    }

    // MARK: End

    func finalPhase() async {
        for s in slots.indices { completePartial(s) }
        sink.setAckProbability(1)
        pull()
        for idx in heldIds.keys.sorted() { ackHeld(idx) }
        let done = await waitWhileProgressing {
            self.pull()
            return self.lines.values.allSatisfy { $0.optional || $0.acked }
        }
        if !done { log("final: not everything arrived (no progress for 1.5 s)") }
        await SluiceTesting.pause(0.6)  // duplicates or strays would show up now
        log("final: stop")
    }

    func check() {
        pull()
        for idx in heldIds.keys.sorted() { ackHeld(idx) }
        for l in lines.values.sorted(by: { $0.id < $1.id }) {
            if !l.optional && !l.acked {
                violation("line \(l.id) of s\(l.stream) (\(streams[l.stream].path)) never arrived (acked full \(l.ackFull), prefix \(l.ackPrefix), suffix \(l.ackSuffix); last sent in session \(l.sentSession))")
            }
            let dup = l.ackFull > 1 || l.ackPrefix > 1 || l.ackSuffix > 1 || (l.ackFull > 0 && (l.ackPrefix > 0 || l.ackSuffix > 0))
            if dup && !allowedDup.contains(l.id) {
                violation("line \(l.id) of s\(l.stream) arrived more than once (full \(l.ackFull), prefix \(l.ackPrefix), suffix \(l.ackSuffix)) with no restart to explain it")
            }
        }
    }
}

@Suite("input_file model")
struct FileInputModelTests {
    @Test("Random append / rotate / copytruncate / truncate / delete / restart sequences agree with the model")
    func randomSequences() async throws {
        let base = envValue("SLUICE_MODEL_SEED").flatMap { UInt64($0) }
            ?? (UInt64(monotonicSeconds() * 1e9) ^ (UInt64(getpid()) << 32))
        let count = envValue("SLUICE_MODEL_SEQUENCES").flatMap { Int($0) } ?? 30
        let steps = envValue("SLUICE_MODEL_STEPS").flatMap { Int($0) } ?? 40
        let only = envValue("SLUICE_MODEL_ONLY").flatMap { Int($0) }
        let verbose = envValue("SLUICE_MODEL_VERBOSE") != nil
        let idleCloseMode = envValue("SLUICE_MODEL_IDLE_CLOSE")
        let strictRotated = envValue("SLUICE_MODEL_STRICT_ROTATED") != "0"
        let parallel = max(1, envValue("SLUICE_MODEL_PARALLEL").flatMap { Int($0) } ?? 3)
        print("input_file model test: SLUICE_MODEL_SEED=\(base) (\(count) sequences × \(steps) steps, \(parallel) at a time)")
        let t0 = monotonicSeconds()
        // SLUICE_MODEL_ONLY replays that one sequence, whatever SLUICE_MODEL_SEQUENCES says.
        let indices = only.map { [$0] } ?? Array(0..<count)
        var failed = 0
        // Sequences are independent (own directory, input and sink) and mostly wait: run a few at once.
        try await withThrowingTaskGroup(of: (index: Int, report: String?, summary: String).self) { group in
            var next = 0
            func launch() {
                guard next < indices.count else { return }
                let i = indices[next]
                next += 1
                group.addTask {
                    let idleClose = idleCloseMode == "1" || (idleCloseMode != "0" && i % 3 == 2)
                    let run = ModelRun(index: i, seed: mixSeed(base &+ UInt64(i)), steps: steps, idleClose: idleClose, strictRotated: strictRotated)
                    let t = monotonicSeconds()
                    let report = try await run.run()
                    var summary = "sequence \(i): \(run.configDescription), \(run.nextId - 1) lines, \(run.session + 1) sessions, \(Int((monotonicSeconds() - t) * 1000)) ms"
                    if verbose { summary += "\n  " + run.opLog.joined(separator: "\n  ") }
                    return (i, report, summary)
                }
            }
            for _ in 0..<parallel { launch() }
            while let r = try await group.next() {
                launch()
                if verbose { print(r.summary) }
                if let report = r.report {
                    failed += 1
                    Issue.record("input_file model: sequence \(r.index) failed; replay with SLUICE_MODEL_SEED=\(base) SLUICE_MODEL_ONLY=\(r.index)\n\(report)")
                }
            }
        }
        print("input_file model test: \(failed) of \(indices.count) sequences failed, \(Int((monotonicSeconds() - t0) * 1000)) ms; SLUICE_MODEL_SEED=\(base)")
    }
}
