import Glibc
import Logging
import SluiceCore
import Synchronization
import SluiceSystem

/// `input_file`: finds files matching its patterns (inotify within milliseconds, periodic rescan
/// as a fallback), reads them from a dedicated thread and hands batches to the pipeline.
/// Checkpoints move only when the pipeline acknowledges a batch.
public final class FileInput: Input, @unchecked Sendable {
    // @unchecked: the mutable state below is touched only by the input's own thread;
    // `stopFlag` and `waker` are the only things other threads use.
    public let options: FileInputOptions
    let context: PluginContext
    let checkpoints: CheckpointTable
    private let stopFlag = Atomic<Bool>(false)
    private let waker = Waker()
    private var logger: Logger { context.logger }

    // Input-thread state.
    private var targets: [String: WatchTarget] = [:]
    /// New dynamic targets scanned again shortly after they appear (at 0.1, 0.4, 1 and 2 s): a
    /// directory created while its watch was being set up raises no event, and a short Job's
    /// files must not wait for the periodic rescan.
    private var settleScans: [(key: String, due: Int64, step: Int)] = []
    private static let settleSteps: [Int64] = [100_000_000, 300_000_000, 600_000_000, 1_000_000_000]
    private let pendingTargets = Mutex<[WatchTarget]?>(nil)
    private var readers: [FileIdentity: FileReader] = [:]
    private var byPath: [String: FileIdentity] = [:]
    private var watches: [Int32: String] = [:]
    private var watchedDirs: [String: Int32] = [:]
    private var inotify: Inotify?
    private var warnedPaths: [String: Int64] = [:]
    /// First bytes and delivered offset of files truncated lately (copytruncate: their copy may
    /// show up under a matching name and must not be read again).
    private var recentHeads: [(dir: String, head: [UInt8], offset: Int64, until: Int64)] = []
    /// Readers by the hash of their first 16 bytes (finding a copy's twin without scanning all).
    private var headIndex: [UInt64: Set<FileIdentity>] = [:]
    static let headKeyLength = 16
    /// Directories where a file has been read (an empty new file there may be a copy being made).
    private var directoriesRead = Set<String>()
    private var chunkReader: ChunkReader
    private var openCount = 0

    /// Plugin type named in logs.
    public var inputName = "input_file"

    public init(options: FileInputOptions, context: PluginContext, checkpoints: CheckpointTable) throws {
        self.options = options
        self.context = context
        self.checkpoints = checkpoints
        var ps: [PathPattern] = []
        for p in options.filePaths {
            do { ps.append(try PathPattern(p, maxDepth: options.maxDirSearchDepth)) } catch { throw error }
        }
        if !ps.isEmpty {
            targets[""] = WatchTarget(key: "", patterns: ps, exclusions: options.exclusions, tags: options.extraTags,
                                      format: options.containerLogFormat, existedBefore: true)
        }
        var transcoder: Transcoder?
        switch options.fileEncoding.lowercased() {
        case "utf8", "utf-8", "": transcoder = nil
        case "gbk":
            guard let t = Transcoder(from: "GBK") else { throw FileInputError.unsupportedEncoding(options.fileEncoding) }
            transcoder = t
        default: throw FileInputError.unsupportedEncoding(options.fileEncoding)
        }
        chunkReader = ChunkReader(maxReadBufferSize: options.maxReadBufferSize, transcoder: transcoder)
    }

    public enum FileInputError: Error, CustomStringConvertible {
        case unsupportedEncoding(String)
        public var description: String {
            switch self {
            case .unsupportedEncoding(let e): return "unsupported FileEncoding \"\(e)\" (supported: utf8, gbk)"
            }
        }
    }

    /// Replaces the targets other than the pipeline's own patterns (container files). Thread-safe;
    /// applied by the input thread within milliseconds. Files of a target that disappears are
    /// read to their end through the descriptors already held, then let go.
    public func setDynamicTargets(_ t: [WatchTarget]) {
        pendingTargets.withLock { $0 = t }
        waker.wake()
    }

    private func applyPendingTargets() {
        guard let next = pendingTargets.withLock({ p -> [WatchTarget]? in defer { p = nil }; return p }) else { return }
        let nextKeys = Set(next.map(\.key))
        // Targets that went away. Their files are adopted by a new target that matches the same
        // path (a container's key changed as its metadata completed), else read to their end
        // through the descriptors held, then let go. Held or not: only `discard` lets go unread.
        var removed = Set<String>()
        for (key, t) in targets where key != "" && !nextKeys.contains(key) {
            targets[key] = nil
            if !t.discard { removed.insert(key) }
        }
        for t in next {
            let old = targets[t.key]
            let isNew = old == nil
            targets[t.key] = t
            if t.discard {
                // The container's filters rejected it while its files were held: let them go unread.
                for r in readers.values where r.targetKey == t.key { release(r, "Let go of a held file unread (its container was not selected).") }
                continue
            }
            if let o = old, o.generation != t.generation {
                scanTarget(t, existedBefore: false)
                settleScans.append((t.key, Sys.monotonicNanos() + Self.settleSteps[0], 0))
            }
            if let o = old, o.hold, !t.hold {
                // Released: read what was held.
                for r in readers.values where r.targetKey == t.key { r.dirty = true }
            }
            if let o = old, o.tags != t.tags {
                // Metadata completed later (the runtime answered after the pod log dir): files
                // already followed get the new tags from their next batch on.
                for r in readers.values where r.targetKey == t.key {
                    r.tags = tags(for: r.path, target: t)
                }
            }
            if isNew {
                scanTarget(t, existedBefore: t.existedBefore)
                if t.key != "" { settleScans.append((t.key, Sys.monotonicNanos() + Self.settleSteps[0], 0)) }
            }
        }
        if !removed.isEmpty {
            let now = Sys.monotonicNanos()
            for r in readers.values where removed.contains(r.targetKey) {
                if let t = target(for: r.path) {
                    // Same path, new key: the same container's file (even if deleted meanwhile).
                    r.targetKey = t.key
                    r.tags = tags(for: r.path, target: t)
                    r.dirty = true
                } else if !r.pathGone {
                    r.pathGone = true
                    r.goneSince = now
                    r.dirty = true
                }
            }
        }
    }

    /// Whether `r` belongs to a target that holds its files unread.
    private func isHeld(_ r: FileReader) -> Bool {
        r.targetKey != "" && targets[r.targetKey]?.hold == true
    }

    /// Stops following `r`: its descriptor closed, its checkpoint entry let go (`why` is logged).
    private func release(_ r: FileReader, _ why: Logger.Message) {
        guard readers.removeValue(forKey: r.id) != nil else { return }
        setHead(r, [])
        if r.isOpen { openCount -= 1; context.pipelineMetrics.filesClosed.add(1, ordering: .relaxed) }
        r.closeFD()
        if byPath[r.path] == r.id { byPath[r.path] = nil }
        checkpoints.release(r.id)
        logger.debug(why, metadata: ["file.path": "\(r.path)", "file.offset": "\(r.readOffset)"])
    }

    public func requestStop() {
        stopFlag.store(true, ordering: .releasing)
        waker.wake()
    }

    var stopping: Bool { stopFlag.load(ordering: .acquiring) }

    public func run(sink: any BatchSink) async throws {
        await runOnDedicatedThread(name: "in:\(context.pipelineName)") { [self] in
            self.threadMain(sink: sink)
        }
    }

    // MARK: - Thread

    private func threadMain(sink: any BatchSink) {
        if options.useInotify {
            inotify = Inotify()
            if inotify == nil { logger.warning("inotify is unavailable; new files are found by periodic scans only", metadata: ["error": "\(Errno(errno))"]) }
        }
        let now0 = Sys.monotonicNanos()
        var seen = Set<FileIdentity>()
        scanAll(existedBefore: true, seen: &seen)
        applyPendingTargets()
        for r in readers.values { seen.insert(r.id) }
        followRotatedAtStart(seen: &seen)
        checkpoints.prune(keeping: seen)
        logger.info("Input started.", metadata: ["input": "\(inputName)", "files": "\(readers.count)", "patterns": "\(options.filePaths)"])

        var nextRescan = now0 + nanos(options.rescanIntervalSec)
        var nextPoll = now0 + nanos(options.pollIntervalSec)
        var pfds = [pollfd(fd: waker.fd, events: Int16(POLLIN), revents: 0)]
        if let ino = inotify { pfds.append(pollfd(fd: ino.fd, events: Int16(POLLIN), revents: 0)) }

        while !stopping {
            let anyDirty = readers.values.contains { $0.dirty }
            let timeout: Int32 = anyDirty ? 0 : 100
            _ = poll(&pfds, nfds_t(pfds.count), timeout)
            if stopping { break }
            if pfds[0].revents != 0 { waker.drain() }
            applyPendingTargets()
            if let ino = inotify, pfds.count > 1, pfds[1].revents != 0 {
                handle(events: ino.readEvents())
            }
            let now = Sys.monotonicNanos()
            if !settleScans.isEmpty { runSettleScans(now: now) }
            if now >= nextRescan {
                var s = Set<FileIdentity>()
                scanAll(existedBefore: false, seen: &s)
                nextRescan = now + nanos(options.rescanIntervalSec)
            }
            if now >= nextPoll {
                pollReaders(now: now)
                nextPoll = now + nanos(options.pollIntervalSec)
            }
            if !readRound(sink: sink) { break }
            housekeeping(sink: sink, now: Sys.monotonicNanos())
        }
        for r in readers.values { r.closeFD() }
        readers.removeAll()
        logger.info("Input stopped.", metadata: ["input": "\(inputName)"])
    }

    private func nanos(_ s: Double) -> Int64 { Int64(s * 1_000_000_000) }

    private func runSettleScans(now: Int64) {
        var keep: [(key: String, due: Int64, step: Int)] = []
        for e in settleScans {
            guard let t = targets[e.key], !t.discard else { continue }
            if now < e.due { keep.append(e); continue }
            scanTarget(t, existedBefore: false)
            let next = e.step + 1
            if next < Self.settleSteps.count { keep.append((e.key, now + Self.settleSteps[next], next)) }
        }
        settleScans = keep
    }

    // MARK: - Discovery

    /// Checkpointed files not found under their patterns at start may have been rotated (renamed)
    /// with data not yet delivered: find them by identity in their directory and read them to the end.
    private func followRotatedAtStart(seen: inout Set<FileIdentity>) {
        guard let own = targets[""] else { return }
        for e in checkpoints.entries where !seen.contains(e.identity) {
            guard let p = findByIdentity(e.identity, inDirectoryOf: e.path),
                  case .success(let st) = Sys.stat(p), st.size > e.offset,
                  let id = consider(path: p, existedBefore: false, target: own), id == e.identity,
                  let r = readers[id] else { continue }
            if !own.matches(p) {
                if byPath[p] == id { byPath[p] = nil }
                r.pathGone = true
                r.goneSince = Sys.monotonicNanos()
                // Its lines were written as the file it was: keep that name in `__path__` and in
                // the checkpoint.
                r.tags = tags(for: e.path, target: own)
                checkpoints.update(id, path: e.path)
            }
            seen.insert(id)
            logger.info("Reading a rotated file to its end from its checkpoint.", metadata: ["file.path": "\(p)", "file.offset": "\(e.offset)"])
        }
    }

    /// Walks one target's patterns from their base directories.
    private func scanTarget(_ t: WatchTarget, existedBefore: Bool) {
        var seen = Set<FileIdentity>()
        for p in t.patterns { scanDirectory(p.baseDirectory, rel: [], pattern: p, target: t, existedBefore: existedBefore, seen: &seen) }
    }

    /// Walks every pattern from its base directory, watching directories and finding files.
    private func scanAll(existedBefore: Bool, seen: inout Set<FileIdentity>) {
        for t in targets.values {
            for p in t.patterns {
                scanDirectory(p.baseDirectory, rel: [], pattern: p, target: t, existedBefore: existedBefore && t.existedBefore, seen: &seen)
            }
        }
    }

    private func scanDirectory(_ dir: String, rel: [String], pattern p: PathPattern, target t: WatchTarget, existedBefore: Bool, seen: inout Set<FileIdentity>) {
        if t.discard { return }
        guard p.directoryMayLeadToMatch(rel), !t.exclusions.excludesDirectory(dir) || rel.isEmpty else { return }
        watch(dir)
        let entries: [(name: String, type: UInt8)]
        switch Sys.listDirectory(dir) {
        case .success(let e): entries = e
        case .failure(let e):
            if e.code != ENOENT { warnOnce(dir, "Cannot list directory; will retry.", e) }
            else if rel.isEmpty && watchNearestAncestor(of: dir) {
                // A directory on the way was created between the listing and the watch: look again.
                scanDirectory(dir, rel: rel, pattern: p, target: t, existedBefore: existedBefore, seen: &seen)
            }
            return
        }
        let filesHere = p.directoryMatches(rel)
        for (name, type) in entries {
            let path = dir == "/" ? "/" + name : dir + "/" + name
            var isDir = type == UInt8(DT_DIR)
            var isFile = type == UInt8(DT_REG)
            if type == UInt8(DT_UNKNOWN) || type == UInt8(DT_LNK) {
                if case .success(let st) = Sys.stat(path) { isDir = st.isDirectory; isFile = st.isRegular } else { continue }
            }
            if isDir {
                if rel.count < p.maxRelativeDepth {
                    scanDirectory(path, rel: rel + [name], pattern: p, target: t, existedBefore: existedBefore, seen: &seen)
                }
            } else if isFile && filesHere && PathPattern.matchComponent(p.filePattern, name) {
                if let id = consider(path: path, existedBefore: existedBefore, target: t) { seen.insert(id) }
            }
        }
    }

    /// A base directory that does not exist yet (a log dir a container creates on its first
    /// write): watch its deepest existing ancestor, so its creation is seen at once.
    /// Returns true when, once the watch is in place, the next directory towards `dir` exists:
    /// created after the caller looked and before the watch, its creation raised no event, so the
    /// caller must look again (each retry gets one level deeper, so this ends).
    private func watchNearestAncestor(of dir: String) -> Bool {
        var d = dir
        var next = dir
        while let slash = d.lastIndex(of: "/"), slash != d.startIndex {
            next = d
            d = String(d[..<slash])
            if case .success(let st) = Sys.stat(d), st.isDirectory {
                watch(d)
                if case .success(let n) = Sys.stat(next), n.isDirectory { return true }
                return false
            }
        }
        return false
    }

    private func watch(_ dir: String) {
        guard let ino = inotify, watchedDirs[dir] == nil else { return }
        switch ino.addWatch(dir) {
        case .success(let wd):
            watches[wd] = dir
            watchedDirs[dir] = wd
        case .failure(let e):
            if e.code != ENOENT { warnOnce(dir, "Cannot watch directory; relying on periodic scans.", e) }
        }
    }

    /// The target a path belongs to, if any.
    private func target(for path: String) -> WatchTarget? {
        if let own = targets[""], own.matches(path) { return own }
        for t in targets.values where t.key != "" && !t.discard && t.matches(path) { return t }
        return nil
    }

    /// A matching path was seen: make sure a reader follows the file behind it.
    @discardableResult
    private func consider(path: String, existedBefore: Bool, target t: WatchTarget) -> FileIdentity? {
        guard !t.exclusions.excludesFile(path) else { return nil }
        let st: Sys.FileStat
        switch Sys.stat(path) {
        case .success(let s): st = s
        case .failure(let e):
            if e.code != ENOENT { warnOnce(path, "Cannot stat file; will retry.", e) }
            return nil
        }
        guard st.isRegular else { return nil }
        let id = FileIdentity(dev: st.dev, inode: st.inode)
        if let r = readers[id] {
            if targets[r.targetKey] == nil && !r.deleted {
                // Its target went away but another one matches it now (a container's key changed):
                // adopt it, keeping its position.
                r.targetKey = t.key
                r.pathGone = false
                r.tags = tags(for: path, target: t)
            }
            if r.path != path {
                // Renamed to a path that still matches: same file, keep reading where we are.
                if byPath[r.path] == id { byPath[r.path] = nil }
                r.path = path
                r.pathGone = false
                r.tags = tags(for: path, target: targets[r.targetKey] ?? t)
                checkpoints.update(id, path: path)
            }
            byPath[path] = id
            if st.size != r.readOffset { r.dirty = true }
            return id
        }
        if let old = byPath[path], old != id, let r = readers[old] {
            // Another file now lives at this path (rotation by rename or re-creation).
            r.pathGone = true
            r.goneSince = Sys.monotonicNanos()
            r.dirty = true
            context.pipelineMetrics.rotations.add(1, ordering: .relaxed)
        }
        // Open and identify.
        let fd: Int32
        switch Sys.openRead(path) {
        case .success(let f): fd = f
        case .failure(let e):
            warnOnce(path, "Cannot open file; will retry.", e)
            return nil
        }
        guard case .success(let fst) = Sys.fstat(fd), fst.dev == st.dev, fst.inode == st.inode else {
            close(fd)
            return nil
        }
        let sig: FileSignature
        switch FileSignature.read(fd: fd) {
        case .success(let s): sig = s
        case .failure(let e):
            close(fd)
            warnOnce(path, "Cannot read file; will retry.", e)
            return nil
        }
        warnedPaths[path] = nil
        var offset: Int64 = 0
        var skip = false
        var how = "new file, from the start"
        if let cp = checkpoints.lookup(id), signatureMatches(fd: fd, cp.signature), cp.offset <= fst.size {
            offset = cp.offset
            how = "resumed from checkpoint"
        } else if existedBefore, fst.size > Int64(options.tailSizeKB) * 1024 {
            // Start at the first line that begins inside the tail window, so the recorded offset is
            // a line start (a restart before any acknowledgement resumes cleanly).
            let cut = fst.size - Int64(options.tailSizeKB) * 1024
            if byteIsNewline(fd: fd, at: cut - 1) {
                offset = cut
            } else if let nl = nextNewline(fd: fd, from: cut, limit: fst.size) {
                offset = nl + 1
            } else {
                offset = fst.size
                skip = true
            }
            how = "existed before start, last TailSizeKB"
        }
        let now = Sys.monotonicNanos()
        var suspect: FileReader.SuspectCopy? = nil
        let head = readHead(fd)
        if !existedBefore && offset == 0 {
            if !head.isEmpty, let twin = copyTwin(of: head, inDirectoryOf: path, excluding: id) {
                // Starts like a file we read (or read before it was truncated): possibly its copy
                // (copytruncate). Hold it until enough of it is there to tell.
                suspect = FileReader.SuspectCopy(twinHead: twin.head, twinOffset: twin.offset, since: now, lastSize: fst.size, lastChange: now)
                how = "possibly a copy of a file already read; deciding"
            } else if head.isEmpty && directoriesRead.contains(FileInput.directory(of: path)) {
                // Empty so far, next to files we read: it may be a copy being written. Held until
                // its first bytes say (no delay once they arrive, or after a quiet second).
                suspect = FileReader.SuspectCopy(twinHead: [], twinOffset: 0, since: now, lastSize: fst.size, lastChange: now)
                how = "new and empty; deciding whether it is a copy"
            }
        }
        let r = FileReader(id: id, path: path, offset: offset, signature: sig, tags: tags(for: path, target: t), now: now)
        r.targetKey = t.key
        r.lastRegistered = offset
        if let f = t.format {
            r.decoder = StreamDecoder(format: f, maxLogSize: options.maxLogSize, ignoreStdout: t.ignoreStdout, ignoreStderr: t.ignoreStderr)
        }
        r.fd = fd
        r.skipToNewline = skip
        r.lastSize = fst.size
        r.lastMtime = fst.mtimeNanos
        setHead(r, head)
        if let sc = suspect {
            r.suspect = sc
            r.dirty = false
        }
        openCount += 1
        context.pipelineMetrics.filesOpened.add(1, ordering: .relaxed)
        readers[id] = r
        byPath[path] = id
        checkpoints.track(id, path: path, signature: sig, offset: offset)
        logger.debug("Following file.", metadata: ["file.path": "\(path)", "file.offset": "\(offset)", "how": "\(how)"])
        return id
    }

    /// The first ≤ 1 KiB of an open file.
    private func readHead(_ fd: Int32) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: FileSignature.maxLength)
        guard case .success(let n) = buf.withUnsafeMutableBytes({ Sys.preadFull(fd, $0.baseAddress!, FileSignature.maxLength, 0) }) else { return [] }
        buf.removeSubrange(n...)
        return buf
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// A file in the same directory (being read, or truncated lately) whose first bytes agree with
    /// `head` as far as both go: the new file may be its copy.
    private func copyTwin(of head: [UInt8], inDirectoryOf path: String, excluding id: FileIdentity) -> (head: [UInt8], offset: Int64)? {
        let dir = FileInput.directory(of: path)
        func agrees(_ other: [UInt8]) -> Bool {
            let n = min(other.count, head.count)
            return n > 0 && other[0..<n] == head[0..<n]
        }
        let now = Sys.monotonicNanos()
        recentHeads.removeAll { $0.until < now }
        for h in recentHeads where h.dir == dir && agrees(h.head) { return (h.head, h.offset) }
        func candidate(_ r: FileReader) -> Bool {
            r.id != id && !r.pathGone && r.suspect == nil && r.emittedOffset > 0 && agrees(r.head) && FileInput.directory(of: r.path) == dir
        }
        if head.count >= FileInput.headKeyLength {
            for cid in headIndex[FileInput.headKey(head)] ?? [] {
                if let r = readers[cid], candidate(r) { return (r.head, r.emittedOffset) }
            }
            // Twins shorter than the key length.
            for r in readers.values where !r.head.isEmpty && r.head.count < FileInput.headKeyLength && candidate(r) { return (r.head, r.emittedOffset) }
        } else {
            for r in readers.values where candidate(r) { return (r.head, r.emittedOffset) }
        }
        return nil
    }

    static func headKey(_ head: [UInt8]) -> UInt64 {
        head.withUnsafeBytes { FNV1a.hash(UnsafeRawBufferPointer(rebasing: $0[0..<headKeyLength])) }
    }

    /// Sets a reader's head, keeping the index in step.
    private func setHead(_ r: FileReader, _ head: [UInt8]) {
        if r.head.count >= FileInput.headKeyLength {
            let k = FileInput.headKey(r.head)
            headIndex[k]?.remove(r.id)
            if headIndex[k]?.isEmpty == true { headIndex[k] = nil }
        }
        r.head = head
        if head.count >= FileInput.headKeyLength { headIndex[FileInput.headKey(head), default: []].insert(r.id) }
    }

    /// Decides files held as possible copies: once as many bytes as the twin's head agree, it is a
    /// copy and is read after the part already delivered; if they disagree, or it stays too short
    /// for a second, it is a new file read from the start.
    private func decideSuspects(now: Int64) {
        for r in readers.values {
            guard var sc = r.suspect, r.isOpen, case .success(let st) = Sys.fstat(r.fd) else { continue }
            let head = readHead(r.fd)
            if st.size != sc.lastSize { sc.lastSize = st.size; sc.lastChange = now }
            if sc.twinHead.isEmpty {
                // Was empty: find its possible twin now that bytes arrived.
                if head.isEmpty {
                    if now - sc.lastChange < 1_000_000_000 { r.suspect = sc; continue }
                } else if let twin = copyTwin(of: head, inDirectoryOf: r.path, excluding: r.id) {
                    sc.twinHead = twin.head
                    sc.twinOffset = twin.offset
                }
            }
            let n = min(head.count, sc.twinHead.count)
            let agree = n > 0 && head[0..<n] == sc.twinHead[0..<n]
            if head.isEmpty {
                // Stayed empty for a second: an ordinary new file.
                sc.twinHead = []
            }
            let fullyCompared = head.count >= min(FileSignature.maxLength, sc.twinHead.count)
            let quiet = now - sc.lastChange >= 1_000_000_000
            var decided: Int64? = nil
            var how = ""
            if !agree {
                decided = 0
                how = "not a copy; from the start"
            } else if fullyCompared && (st.size >= sc.twinOffset || quiet) {
                decided = min(sc.twinOffset, st.size)
                how = "copy of a file already read; after the part already delivered"
            } else if quiet && !fullyCompared {
                decided = 0
                how = "too short to be told from its twin; from the start"
            }
            if let off = decided {
                r.suspect = nil
                setHead(r, head)
                r.readOffset = off
                r.lastRegistered = off
                if case .success(let sig) = FileSignature.read(fd: r.fd) { r.signature = sig }
                checkpoints.track(r.id, path: r.path, signature: r.signature, offset: off)
                r.dirty = true
                logger.debug("Following file.", metadata: ["file.path": "\(r.path)", "file.offset": "\(off)", "how": "\(how)"])
            } else {
                r.suspect = sc
            }
        }
    }

    /// Offset of the first newline at or after `from` (before `limit`), reading in 64 KiB steps.
    private func nextNewline(fd: Int32, from: Int64, limit: Int64) -> Int64? {
        var buf = [UInt8](repeating: 0, count: 65536)
        var pos = from
        while pos < limit {
            let want = Int(min(Int64(buf.count), limit - pos))
            guard case .success(let n) = buf.withUnsafeMutableBytes({ Sys.preadFull(fd, $0.baseAddress!, want, pos) }), n > 0 else { return nil }
            if let i = buf[0..<n].firstIndex(of: 0x0A) { return pos + Int64(i) }
            pos += Int64(n)
        }
        return nil
    }

    /// Where a file with identity `id` lives now in `dir` (after a rename), if it is still there.
    private func findByIdentity(_ id: FileIdentity, inDirectoryOf path: String) -> String? {
        guard let slash = path.lastIndex(of: "/") else { return nil }
        let dir = slash == path.startIndex ? "/" : String(path[..<slash])
        guard case .success(let entries) = Sys.listDirectory(dir) else { return nil }
        for (name, type) in entries where type == UInt8(DT_REG) || type == UInt8(DT_UNKNOWN) {
            let p = dir == "/" ? "/" + name : dir + "/" + name
            if case .success(let st) = Sys.stat(p), st.dev == id.dev, st.inode == id.inode { return p }
        }
        return nil
    }

    /// Reopens a file whose descriptor was closed (idle) after its path stopped leading to it:
    /// looks for it by identity in its directory, so what was written before or after a rename is
    /// still read. Returns true if the reader holds a descriptor again.
    private func reopenMoved(_ r: FileReader) -> Bool {
        guard !r.isOpen, !r.deleted, let p = findByIdentity(r.id, inDirectoryOf: r.path),
              case .success(let fd) = Sys.openRead(p) else { return false }
        guard case .success(let st) = Sys.fstat(fd), st.dev == r.id.dev, st.inode == r.id.inode,
              signatureMatches(fd: fd, r.signature) else {
            close(fd)
            return false
        }
        r.fd = fd
        openCount += 1
        r.dirty = true
        r.atEOF = false
        r.lastActivity = Sys.monotonicNanos()
        if p != r.path {
            if byPath[r.path] == r.id { byPath[r.path] = nil }
            r.path = p
            // Still matching under its new name: it is followed as before, not let go. Otherwise
            // (rotated away) its lines keep the name they were written under, in tags and checkpoint.
            if let t = target(for: p), t.key == r.targetKey {
                r.pathGone = false
                byPath[p] = r.id
                r.tags = tags(for: p, target: t)
                checkpoints.update(r.id, path: p)
            }
        }
        return true
    }

    private func byteIsNewline(fd: Int32, at off: Int64) -> Bool {
        guard off >= 0 else { return true }
        var b: UInt8 = 0
        return pread(fd, &b, 1, off_t(off)) == 1 && b == 0x0A
    }

    private func signatureMatches(fd: Int32, _ sig: FileSignature) -> Bool {
        guard case .success(let now) = FileSignature.read(fd: fd, length: sig.length) else { return false }
        return now == sig
    }

    private func tags(for path: String, target t: WatchTarget) -> [EventTag] {
        var tags: [EventTag] = []
        if !t.omitPathTag {
            var shown = path
            if let rw = t.pathRewrite, path.hasPrefix(rw.host) {
                shown = rw.container + String(path.dropFirst(rw.host.count))
                if shown.hasPrefix("//") { shown.removeFirst() }
            }
            tags.append(EventTag("__path__", shown))
        }
        tags.append(EventTag("__hostname__", context.hostname))
        return tags + t.tags
    }

    private func warnOnce(_ path: String, _ message: Logger.Message, _ e: Errno) {
        let now = Sys.monotonicNanos()
        if let last = warnedPaths[path], now - last < 60_000_000_000 { return }
        warnedPaths[path] = now
        context.pipelineMetrics.readErrors.add(1, ordering: .relaxed)
        logger.warning(message, metadata: ["path": "\(path)", "error": "\(e)"])
    }

    private func handle(events: [Inotify.Event]) {
        for ev in events {
            if ev.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                logger.warning("inotify queue overflowed; rescanning.")
                var s = Set<FileIdentity>()
                scanAll(existedBefore: false, seen: &s)
                for r in readers.values { r.dirty = true }
                continue
            }
            guard let dir = watches[ev.wd] else { continue }
            if ev.mask & (UInt32(IN_IGNORED) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)) != 0 && ev.name.isEmpty {
                if ev.mask & UInt32(IN_IGNORED) != 0 || ev.mask & UInt32(IN_DELETE_SELF) != 0 {
                    watches[ev.wd] = nil
                    if watchedDirs[dir] == ev.wd { watchedDirs[dir] = nil }
                }
                continue
            }
            if ev.name.isEmpty { continue }
            let path = dir == "/" ? "/" + ev.name : dir + "/" + ev.name
            let isDir = ev.mask & UInt32(IN_ISDIR) != 0
            if isDir {
                if ev.mask & (UInt32(IN_DELETE) | UInt32(IN_MOVED_FROM)) != 0 {
                    // Forget the watch now: the kernel may report the directory's own removal late
                    // (while descriptors of its files are held), and a new directory of the same
                    // name must be watched at once.
                    for (d, wd) in watchedDirs where d == path || d.hasPrefix(path + "/") {
                        watchedDirs[d] = nil
                        watches[wd] = nil
                        inotify?.removeWatch(wd)
                    }
                }
                if ev.mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0 {
                    for t in targets.values {
                        for p in t.patterns where p.baseDirectory.hasPrefix(path + "/") {
                            // On the way to a base directory that did not exist: go as deep as exists now.
                            var s = Set<FileIdentity>()
                            scanDirectory(p.baseDirectory, rel: [], pattern: p, target: t, existedBefore: false, seen: &s)
                        }
                        for p in t.patterns {
                            if let rel = p.relativeComponents(ofDirectory: path), rel.count <= p.maxRelativeDepth {
                                var s = Set<FileIdentity>()
                                scanDirectory(path, rel: rel, pattern: p, target: t, existedBefore: false, seen: &s)
                            }
                        }
                    }
                }
                continue
            }
            if ev.mask & (UInt32(IN_DELETE) | UInt32(IN_MOVED_FROM)) != 0 {
                if let id = byPath[path], let r = readers[id] {
                    if ev.mask & UInt32(IN_MOVED_FROM) != 0 { context.pipelineMetrics.rotations.add(1, ordering: .relaxed) }
                    byPath[path] = nil
                    r.pathGone = true
                    r.goneSince = Sys.monotonicNanos()
                    r.dirty = true
                }
                continue
            }
            if let id = byPath[path], let r = readers[id] {
                r.dirty = true
                if ev.mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0, let t = target(for: path) {
                    // Possibly a new file under a known path.
                    consider(path: path, existedBefore: false, target: t)
                }
                continue
            }
            if ev.mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO) | UInt32(IN_MODIFY) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_ATTRIB)) != 0,
               let t = target(for: path) {
                consider(path: path, existedBefore: false, target: t)
            }
        }
    }

    /// Fallback for missed events: compare sizes of followed files.
    private func pollReaders(now: Int64) {
        for r in readers.values where !r.dirty {
            if r.isOpen {
                if case .success(let st) = Sys.fstat(r.fd) {
                    if st.size != r.readOffset || st.mtimeNanos != r.lastMtime || (st.nlink == 0) != r.deleted { r.dirty = true }
                }
            } else if !r.pathGone {
                switch Sys.stat(r.path) {
                case .success(let st):
                    if st.dev != r.id.dev || st.inode != r.id.inode {
                        r.pathGone = true
                        r.goneSince = now
                        if let t = target(for: r.path) { consider(path: r.path, existedBefore: false, target: t) }
                    } else if st.size != r.lastSize || st.size != r.readOffset || st.mtimeNanos != r.lastMtime {
                        r.dirty = true
                    }
                case .failure:
                    r.pathGone = true
                    r.goneSince = now
                }
            }
        }
    }

    // MARK: - Reading

    /// Reads every dirty file a little (fair to all files). Returns false when the sink refused
    /// a batch because the pipeline is stopping.
    private func readRound(sink: any BatchSink) -> Bool {
        let dirty = readers.values.filter { $0.dirty && $0.suspect == nil && !isHeld($0) }
        for r in dirty {
            if stopping { return false }
            if !ensureOpen(r) { continue }
            if !checkTruncation(r) { continue }
            var chunks = 0
            while chunks < 8 {
                chunks += 1
                let now = Sys.monotonicNanos()
                let arenaOffset = r.readOffset - Int64(r.partial.count)
                switch chunkReader.read(r, now: now, wallSeconds: Sys.wallSeconds()) {
                case .failure(let e):
                    warnOnce(r.path, "Cannot read file; will retry.", e)
                    r.dirty = false
                    chunks = Int.max
                case .success(let out):
                    if out.linesSplit > 0 { context.pipelineMetrics.linesSplit.add(out.linesSplit, ordering: .relaxed) }
                    if out.bytesRead > 0 {
                        context.pipelineMetrics.bytesIn.add(out.bytesRead, ordering: .relaxed)
                        context.rateLimiter?.acquire(out.bytesRead, shouldStop: { self.stopping })
                    }
                    if let b = out.batch {
                        if let dec = r.decoder {
                            let upTo = min(out.emittedUpTo, dec.holdOffset ?? .max)
                            if !deliver(dec.decode(b, baseOffset: arenaOffset), from: r, upTo: upTo, sink: sink) { return false }
                        } else if !deliver(b, from: r, upTo: out.emittedUpTo, sink: sink) { return false }
                    }
                    if out.reachedEOF {
                        r.dirty = false
                        r.atEOF = true
                        chunks = Int.max
                    } else {
                        r.atEOF = false
                    }
                }
                if r.signature.length < FileSignature.maxLength && r.readOffset > Int64(r.signature.length) {
                    if case .success(let s) = FileSignature.read(fd: r.fd) , s.length > r.signature.length {
                        r.signature = s
                        setHead(r, readHead(r.fd))
                        checkpoints.update(r.id, signature: s)
                    }
                }
            }
        }
        return true
    }

    /// Hands on several batches from one read: all but the last keep the checkpoint where it was,
    /// so it moves only once every one of them is acknowledged.
    private func deliver(_ batches: [EventBatch], from r: FileReader, upTo: Int64, sink: any BatchSink) -> Bool {
        for (i, b) in batches.enumerated() {
            if !deliver(b, from: r, upTo: i == batches.count - 1 ? upTo : r.lastRegistered, sink: sink) { return false }
        }
        return true
    }

    private func deliver(_ batch: EventBatch, from r: FileReader, upTo: Int64, sink: any BatchSink) -> Bool {
        if r.lastRegistered == 0 { directoriesRead.insert(FileInput.directory(of: r.path)) }
        var b = batch
        r.lastRegistered = upTo
        let seq = checkpoints.emitted(r.id, upTo: upTo)
        let id = r.id
        let table = checkpoints
        // Delivered and rejected both let the position move past the batch; abandoned (shutdown)
        // leaves it behind, so the batch is read again on the next start.
        b.ack = AckToken(expected: 0) { status in if status.isFinal { table.acknowledged(id, sequence: seq) } }
        context.pipelineMetrics.eventsIn.add(b.events.count, ordering: .relaxed)
        context.metrics.receivedEvents.add(b.events.count)
        context.metrics.receivedBytes.add(b.inputBytes)
        return sink.send(b)
    }

    private func ensureOpen(_ r: FileReader) -> Bool {
        if r.isOpen { return true }
        if r.pathGone { return reopenMoved(r) }
        guard case .success(let fd) = Sys.openRead(r.path) else {
            r.pathGone = true
            r.goneSince = Sys.monotonicNanos()
            r.dirty = false
            return reopenMoved(r)
        }
        guard case .success(let st) = Sys.fstat(fd), st.dev == r.id.dev, st.inode == r.id.inode else {
            close(fd)
            r.pathGone = true
            r.goneSince = Sys.monotonicNanos()
            r.dirty = false
            let moved = reopenMoved(r)
            if let t = target(for: r.path) { consider(path: r.path, existedBefore: false, target: t) }
            return moved
        }
        r.fd = fd
        openCount += 1
        return true
    }

    /// Detects truncation (size below our offset) and replacement of the content (signature
    /// changed): reading restarts at 0. Returns false if the file cannot be checked now.
    private func checkTruncation(_ r: FileReader) -> Bool {
        guard case .success(let st) = Sys.fstat(r.fd) else { return false }
        r.lastSize = st.size
        r.lastMtime = st.mtimeNanos
        if st.nlink == 0 && !r.deleted {
            r.deleted = true
            r.pathGone = true
            if r.goneSince == 0 { r.goneSince = Sys.monotonicNanos() }
        }
        var truncated = st.size < r.readOffset
        if !truncated && r.signature.length > 0 && r.readOffset > 0 {
            truncated = !signatureMatches(fd: r.fd, r.signature)
        }
        if truncated {
            context.pipelineMetrics.truncations.add(1, ordering: .relaxed)
            logger.info("File was truncated or rewritten; reading it again from the start.", metadata: ["file.path": "\(r.path)", "file.offset": "\(r.readOffset)", "file.size": "\(st.size)"])
            if !r.head.isEmpty && r.emittedOffset > 0 {
                recentHeads.append((FileInput.directory(of: r.path), r.head, r.emittedOffset, Sys.monotonicNanos() + 60_000_000_000))
            }
            r.readOffset = 0
            r.lastRegistered = 0
            r.partial = []
            r.skipToNewline = false
            r.inSplitLine = false
            r.decoder?.reset()
            let sig = (try? FileSignature.read(fd: r.fd).get()) ?? .empty
            r.signature = sig
            setHead(r, readHead(r.fd))
            checkpoints.reset(r.id, offset: 0, signature: sig)
        }
        return true
    }

    // MARK: - Housekeeping

    private func housekeeping(sink: any BatchSink, now: Int64) {
        if readers.values.contains(where: { $0.suspect != nil }) { decideSuspects(now: now) }
        let flushAfter = nanos(options.flushTimeoutSecs)
        let idleClose = nanos(options.closeUnusedReaderIntervalSec)
        var toRemove: [FileIdentity] = []
        for r in readers.values {
            // Held unread until its container is known: nothing to flush, drain or close yet.
            if isHeld(r) { continue }
            // Unterminated last line: emit after the flush timeout.
            if !r.partial.isEmpty && !r.dirty && now - r.partialSince >= flushAfter {
                let start = r.emittedOffset
                if let b = chunkReader.flushPartial(r, wallSeconds: Sys.wallSeconds()) {
                    if let dec = r.decoder {
                        let upTo = min(r.emittedOffset, dec.holdOffset ?? .max)
                        if !deliver(dec.decode(b, baseOffset: start), from: r, upTo: upTo, sink: sink) { return }
                    } else if !deliver(b, from: r, upTo: r.emittedOffset, sink: sink) { return }
                }
            }
            if r.pathGone || r.deleted {
                let drained = r.atEOF && !r.dirty
                let force = options.forceReleaseDeletedFileFdTimeoutSec >= 0 && r.deleted
                    && now - r.goneSince >= Int64(options.forceReleaseDeletedFileFdTimeoutSec) * 1_000_000_000
                if !r.isOpen && !force && reopenMoved(r) { continue }
                if (drained && now - r.lastActivity >= nanos(options.releaseDrainedAfterSec) && now - r.goneSince >= nanos(options.releaseDrainedAfterSec)) || force || !r.isOpen {
                    let start = r.emittedOffset
                    if !r.partial.isEmpty, let b = chunkReader.flushPartial(r, wallSeconds: Sys.wallSeconds()) {
                        if let dec = r.decoder {
                            if !deliver(dec.decode(b, baseOffset: start), from: r, upTo: r.readOffset, sink: sink) { return }
                        } else if !deliver(b, from: r, upTo: r.emittedOffset, sink: sink) { return }
                    }
                    if let dec = r.decoder, dec.holdOffset != nil {
                        if !deliver(dec.flushPending(tags: r.tags, timeSeconds: Sys.wallSeconds()), from: r, upTo: r.readOffset, sink: sink) { return }
                    }
                    toRemove.append(r.id)
                }
                continue
            }
            if r.isOpen && r.atEOF && !r.dirty && r.partial.isEmpty && now - r.lastActivity >= idleClose {
                r.closeFD()
                openCount -= 1
                context.pipelineMetrics.filesClosed.add(1, ordering: .relaxed)
            }
        }
        for id in toRemove {
            if let r = readers[id] { release(r, "Released file.") }
        }
        // Too many descriptors: close the idle ones that have been quiet longest.
        if openCount > options.maxOpenFiles {
            let idle = readers.values.filter { $0.isOpen && $0.atEOF && !$0.dirty && $0.partial.isEmpty && !$0.pathGone && !$0.deleted }
                .sorted { $0.lastActivity < $1.lastActivity }
            for r in idle.prefix(openCount - options.maxOpenFiles) {
                r.closeFD()
                openCount -= 1
                context.pipelineMetrics.filesClosed.add(1, ordering: .relaxed)
            }
        }
    }

    /// Number of files followed (for tests and stats).
    public var followedFileCount: Int { readers.count }
}
