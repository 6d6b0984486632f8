import Glibc
import FoundationEssentials
import SluiceCore
import Synchronization
import SluiceSystem

/// The persisted position of one file of one pipeline.
public struct CheckpointEntry: Codable, Sendable, Equatable {
    public var dev: UInt64
    public var inode: UInt64
    /// Hex of the FNV-1a hash of the first `sigLen` bytes.
    public var sig: String
    public var sigLen: Int
    /// Every byte before this offset has been delivered and acknowledged.
    public var offset: Int64
    public var path: String

    public var identity: FileIdentity { FileIdentity(dev: dev, inode: inode) }
    public var signature: FileSignature { FileSignature(hash: UInt64(sig, radix: 16) ?? 0, length: sigLen) }
}

struct CheckpointFile: Codable {
    var version: Int
    var pipeline: String
    var files: [CheckpointEntry]
}

/// Checkpoints of one pipeline: per file, the offset up to which everything has been
/// acknowledged by every flusher. Readers register what they emit; flushers' acknowledgements
/// move the offsets; `persist()` writes them atomically (temp file, fsync, rename, fsync dir).
/// Offsets move only on acknowledgement, never on read.
public final class CheckpointTable: Sendable {
    struct Tracked {
        var entry: CheckpointEntry
        var tracker: OrderedAckTracker
        /// The reader has let go of the file: drop the entry once nothing is in flight.
        var released = false
        /// The batches in flight at each truncation (`reset`), by the `resets` count they were
        /// emitted under, still counted as they are acknowledged: a copy of the file that skipped
        /// them waits for them (`floor`). Truncated again before they are, the file keeps both.
        var beforeReset: [Int: OrderedAckTracker] = [:]
        /// Times the file was reset (which of its trackers a floor refers to).
        var resets = 0
        /// Set for a copy of another file (copytruncate) read after the part the original had
        /// emitted: until the original's batches of that part are acknowledged, the copy's
        /// checkpoint stays at what the original has delivered, so a crash re-reads the rest
        /// from the copy instead of losing it.
        var floor: Floor? = nil
        /// Nothing of this file or of its content before a truncation is in flight.
        var drained: Bool { tracker.inFlight == 0 && beforeReset.isEmpty }
    }
    /// The original a copy skipped a part of: its identity, its `resets` then, and where the part ends.
    struct Floor {
        var twin: FileIdentity
        var resets: Int
        var upTo: Int64
    }
    struct State {
        var files: [FileIdentity: Tracked] = [:]
        var dirty = false
        /// Above every sequence number given out: a file's new tracker starts here, so a late
        /// acknowledgement for an earlier file with the same identity (inode reused after the
        /// entry was dropped) cannot be taken for one of the new file's batches.
        var nextSequence: UInt64 = 0
        /// Positions written in place as they move (nil if the journal could not be opened).
        var journal: PositionJournal?

        /// Copies whose checkpoint waits on a file (by the file's identity).
        var copiesOf: [FileIdentity: Set<FileIdentity>] = [:]

        /// Records the current position of `id` in the journal.
        func journalWrite(_ id: FileIdentity) {
            guard let j = journal, let t = files[id] else { return }
            j.write(id, offset: t.entry.offset, signature: t.entry.signature, path: t.entry.path)
        }

        /// What the original of `f` has delivered of the part its copy skipped, nil once all
        /// of it is (or can no longer be: the original is no longer tracked, or was reset again).
        func skippedDelivered(_ f: Floor) -> Int64? {
            guard let twin = files[f.twin] else { return nil }
            let old: OrderedAckTracker
            if twin.resets == f.resets {
                old = twin.tracker
            } else if let b = twin.beforeReset[f.resets] {
                old = b
            } else {
                return nil
            }
            if old.committed >= f.upTo || old.inFlight == 0 { return nil }
            return old.committed
        }

        /// Recomputes the checkpoint of a file: its own acknowledged position, held at its
        /// floor while that is set (a copy waiting on its original).
        mutating func settle(_ id: FileIdentity) {
            guard var t = files[id] else { return }
            var offset = t.tracker.committed
            if let f = t.floor {
                if let held = skippedDelivered(f) {
                    offset = min(offset, held)
                } else {
                    t.floor = nil
                    copiesOf[f.twin]?.remove(id)
                    if copiesOf[f.twin]?.isEmpty == true { copiesOf[f.twin] = nil }
                }
            }
            let moved = offset != t.entry.offset
            t.entry.offset = offset
            files[id] = t
            if moved {
                dirty = true
                journalWrite(id)
            }
        }

        /// Settles the copies waiting on `id`, after its acknowledgements moved or it went.
        mutating func settleCopies(of id: FileIdentity) {
            guard let copies = copiesOf[id] else { return }
            for c in copies {
                if files[c] == nil { copiesOf[id]?.remove(c) } else { settle(c) }
            }
            if copiesOf[id]?.isEmpty == true { copiesOf[id] = nil }
        }
    }

    public let pipeline: String
    public let path: String
    /// The position journal beside it (`<pipeline>.pos`).
    public let journalPath: String
    private let state = Mutex(State())

    /// Loads `<dataDir>/checkpoints/<pipeline>.json` if it exists, then the newer positions of the
    /// journal beside it (`<pipeline>.pos`, written in place on every acknowledgement). A damaged
    /// file is reported by the thrown error; the caller decides (the runtime logs it and starts
    /// without it; the journal's positions still apply).
    public init(dataDir: String, pipeline: String) throws {
        self.pipeline = pipeline
        let dir = dataDir + "/checkpoints"
        let base = dir + "/" + CheckpointTable.fileName(for: pipeline)
        self.path = base + ".json"
        self.journalPath = base + ".pos"
        let journal = try? PositionJournal(path: journalPath)
        let (entries, loadError) = CheckpointTable.merge(json: path, journal: journal)
        let files = entries.mapValues { Tracked(entry: $0, tracker: OrderedAckTracker(committed: $0.offset)) }
        state.withLock { s in
            s.files = files
            s.journal = journal
        }
        if let e = loadError { throw e }
    }

    /// The positions of `<json>` and, newer, of the journal: what a pipeline restarts from.
    static func merge(json path: String, journal: PositionJournal?) -> ([FileIdentity: CheckpointEntry], Error?) {
        var loadError: Error?
        var files: [FileIdentity: CheckpointEntry] = [:]
        switch Sys.readFile(path) {
        case .success(let data):
            do {
                let f = try JSONDecoder().decode(CheckpointFile.self, from: Data(data))
                for e in f.files { files[e.identity] = e }
            } catch {
                loadError = CheckpointError.damaged(path: path, reason: "\(error)")
            }
        case .failure(let e) where e.code == ENOENT: break
        case .failure(let e): loadError = CheckpointError.damaged(path: path, reason: "\(e)")
        }
        for slot in journal?.load() ?? [] {
            // The journal is at least as new as the JSON file: its position wins for the same file.
            var e = files[slot.identity]
                ?? CheckpointEntry(dev: slot.identity.dev, inode: slot.identity.inode, sig: "", sigLen: 0, offset: 0, path: slot.path)
            e.offset = slot.offset
            e.sig = String(slot.signature.hash, radix: 16)
            e.sigLen = slot.signature.length
            if !slot.path.isEmpty { e.path = slot.path }
            files[slot.identity] = e
        }
        return (files, loadError)
    }

    /// The positions a pipeline would restart from, read without opening anything for writing
    /// (safe beside a running daemon). Empty when there are none.
    public static func read(dataDir: String, pipeline: String) -> [CheckpointEntry] {
        let base = dataDir + "/checkpoints/" + fileName(for: pipeline)
        let journal = try? PositionJournal(path: base + ".pos", readOnly: true)
        return merge(json: base + ".json", journal: journal).0.values.sorted { $0.path < $1.path }
    }

    public enum CheckpointError: Error, CustomStringConvertible {
        case damaged(path: String, reason: String)
        case io(path: String, Errno)
        public var description: String {
            switch self {
            case .damaged(let p, let r): return "checkpoint file \(p) is damaged (\(r)); it is kept as \(p).damaged and the pipeline starts without it"
            case .io(let p, let e): return "cannot write checkpoint file \(p): \(e)"
            }
        }
    }

    /// The checkpoint files' base name for a pipeline (any name, made safe for a file name).
    static func fileName(for pipeline: String) -> String { FileNames.component(pipeline) }

    /// The checkpoint of a file, if one is known.
    public func lookup(_ id: FileIdentity) -> CheckpointEntry? {
        state.withLock { $0.files[id]?.entry }
    }

    /// When the previous run of this pipeline last saved a position (the newer of the checkpoint
    /// file's and the journal's modification times, Unix nanoseconds); nil on a first start.
    public var previousRunLastSaved: Int64? {
        let times = [path, journalPath].compactMap { p -> Int64? in
            guard case .success(let st) = Sys.stat(p), st.size > 0 else { return nil }
            return st.mtimeNanos
        }
        return times.max()
    }

    /// Whether a checkpoint names `path` (for any file).
    public func knows(path: String) -> Bool {
        state.withLock { s in s.files.values.contains { $0.entry.path == path } }
    }

    public var entries: [CheckpointEntry] {
        state.withLock { s in s.files.values.map(\.entry) }
    }

    /// Starts tracking a file whose delivered data ends at `offset`. With `copyOf`, the file is a
    /// copy of that one (copytruncate) whose first `offset` bytes that file has emitted (before
    /// its last truncation when `originalTruncated`): its checkpoint stays at what that file has
    /// delivered of them until all of them are.
    public func track(_ id: FileIdentity, path: String, signature: FileSignature, offset: Int64,
                      copyOf twin: FileIdentity? = nil, originalTruncated: Bool = false) {
        state.withLock { s in
            defer {
                if let twin, twin != id, offset > 0, let t = s.files[twin] {
                    s.files[id]?.floor = Floor(twin: twin, resets: t.resets - (originalTruncated ? 1 : 0), upTo: offset)
                    s.copiesOf[twin, default: []].insert(id)
                    s.settle(id)
                }
            }
            let e = CheckpointEntry(dev: id.dev, inode: id.inode, sig: String(signature.hash, radix: 16), sigLen: signature.length, offset: offset, path: path)
            if var t = s.files[id] {
                // Same identity again (inode reused, or renamed away and back): keep the tracker so
                // its sequence numbers go on, and acknowledgements of the earlier file are ignored.
                t.tracker.reset(committed: offset)
                t.entry = e
                t.released = false
                if let f = t.floor {
                    s.copiesOf[f.twin]?.remove(id)
                    t.floor = nil
                }
                s.files[id] = t
            } else {
                s.files[id] = Tracked(entry: e, tracker: OrderedAckTracker(committed: offset, nextSequence: s.nextSequence))
            }
            s.dirty = true
            s.journalWrite(id)
        }
    }

    public func update(_ id: FileIdentity, path: String? = nil, signature: FileSignature? = nil) {
        state.withLock { s in
            guard var t = s.files[id] else { return }
            if let p = path { t.entry.path = p }
            if let sig = signature { t.entry.sig = String(sig.hash, radix: 16); t.entry.sigLen = sig.length }
            s.files[id] = t
            s.dirty = true
            s.journalWrite(id)
        }
    }

    /// Registers a batch that, once acknowledged, makes everything before `offset` delivered.
    public func emitted(_ id: FileIdentity, upTo offset: Int64) -> UInt64 {
        state.withLock { s in
            // Untracked: a number no tracker has or will give out, so its acknowledgement is ignored.
            let seq = s.files[id]?.tracker.emitted(upTo: offset) ?? s.nextSequence
            s.nextSequence = max(s.nextSequence, seq &+ 1)
            return seq
        }
    }

    public func acknowledged(_ id: FileIdentity, sequence: UInt64) {
        state.withLock { s in
            guard var t = s.files[id] else { return }
            let moved = t.tracker.acknowledged(sequence)
            var movedBefore = false
            for (generation, var b) in t.beforeReset {
                // Drained, it is dropped: a copy waiting on it is released then too.
                if b.acknowledged(sequence) || b.inFlight == 0 { movedBefore = true }
                t.beforeReset[generation] = b.inFlight == 0 ? nil : b
            }
            if t.released && t.drained {
                s.files[id] = nil
                s.dirty = true
                s.journal?.remove(id)
            } else {
                s.files[id] = t
                if moved { s.settle(id) }
            }
            if moved || movedBefore { s.settleCopies(of: id) }
        }
    }

    /// The file was truncated or replaced: delivered data now ends at `offset` (usually 0) and
    /// batches still in flight no longer move the checkpoint.
    public func reset(_ id: FileIdentity, offset: Int64, signature: FileSignature) {
        state.withLock { s in
            guard var t = s.files[id] else { return }
            if t.tracker.inFlight > 0 { t.beforeReset[t.resets] = t.tracker }
            t.resets += 1
            t.tracker.reset(committed: offset)
            t.entry.offset = offset
            t.entry.sig = String(signature.hash, radix: 16)
            t.entry.sigLen = signature.length
            s.files[id] = t
            s.dirty = true
            s.journalWrite(id)
        }
    }

    /// The reader let go of the file (deleted and drained, or rotated away and idle).
    public func release(_ id: FileIdentity) {
        state.withLock { s in
            guard var t = s.files[id] else { return }
            if t.drained {
                s.files[id] = nil
                s.journal?.remove(id)
                s.settleCopies(of: id)
            } else {
                t.released = true
                s.files[id] = t
            }
            s.dirty = true
        }
    }

    /// Batches of `id` not yet acknowledged.
    public func inFlight(_ id: FileIdentity) -> Int {
        state.withLock { $0.files[id]?.tracker.inFlight ?? 0 }
    }

    /// Drops entries of files that no longer exist under their identity.
    public func prune(keeping: Set<FileIdentity>) {
        state.withLock { s in
            let drop = s.files.filter { !keeping.contains($0.key) && $0.value.drained }.keys
            for id in drop {
                s.files[id] = nil
                s.journal?.remove(id)
            }
            for id in drop { s.settleCopies(of: id) }
            if !drop.isEmpty { s.dirty = true }
        }
    }

    /// Makes the positions durable: the journal is synced, and the table written if it changed
    /// since the last write (atomic: temp file, fsync, rename, fsync of the directory).
    public func persist(force: Bool = false) throws {
        let snapshot: [CheckpointEntry]? = state.withLock { s in
            s.journal?.sync()
            guard s.dirty || force else { return nil }
            s.dirty = false
            return s.files.values.map(\.entry).sorted { ($0.dev, $0.inode) < ($1.dev, $1.inode) }
        }
        guard let files = snapshot else { return }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data: Data
        do {
            data = try enc.encode(CheckpointFile(version: 1, pipeline: pipeline, files: files))
        } catch {
            state.withLock { $0.dirty = true }
            throw CheckpointError.damaged(path: path, reason: "\(error)")
        }
        if case .failure(let e) = Sys.writeAtomically(path, Array(data), durable: true) {
            state.withLock { $0.dirty = true }
            throw CheckpointError.io(path: e.path, e.errno)
        }
    }
}

extension CheckpointTable {
    /// Moves a damaged checkpoint file aside (`<file>.damaged`), keeping it for inspection.
    public static func moveAside(dataDir: String, pipeline: String) throws {
        let p = dataDir + "/checkpoints/" + fileName(for: pipeline) + ".json"
        if rename(p, p + ".damaged") != 0 && errno != ENOENT { throw CheckpointError.io(path: p, Errno(errno)) }
    }
}
