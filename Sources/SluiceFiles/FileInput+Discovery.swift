import Glibc
import Logging
import SluiceCore
import SluiceSystem

// Discovery: the directory walk, watches, which target a path belongs to, and `consider`
// (open, identity, start position, reader creation).
extension FileInput {
    // MARK: - Discovery

    /// Checkpointed files not found under their patterns at start may have been rotated (renamed)
    /// with data not yet delivered: find them by identity in their directory and read them to the end.
    func followRotatedAtStart(seen: inout Set<FileIdentity>) {
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
                r.tags = tags(for: e.path, inode: id.inode, target: own)
                checkpoints.update(id, path: e.path)
            }
            seen.insert(id)
            logger.info("Reading a rotated file to its end from its checkpoint.", metadata: ["file.path": "\(p)", "file.offset": "\(e.offset)"])
        }
    }

    /// Walks one target's patterns from their base directories.
    func scanTarget(_ t: WatchTarget, existedBefore: Bool) {
        var seen = Set<FileIdentity>()
        for p in t.patterns { scanDirectory(p.baseDirectory, rel: [], pattern: p, target: t, existedBefore: existedBefore, seen: &seen) }
    }

    /// Walks every pattern from its base directory, watching directories and finding files.
    func scanAll(existedBefore: Bool, seen: inout Set<FileIdentity>) {
        for t in targets.values {
            for p in t.patterns {
                scanDirectory(p.baseDirectory, rel: [], pattern: p, target: t, existedBefore: existedBefore && t.existedBefore, seen: &seen)
            }
        }
    }

    /// `ancestors`: the directories this walk came down through. A directory among them (reached
    /// again through a symbolic link: `loop -> ..`, `self -> .`) closes a cycle and is not walked
    /// again; without this each cycle repeated the walk below it up to the depth limit, and two
    /// cycles made that exponential in the depth (a 20-deep limit: seconds per rescan).
    func scanDirectory(_ dir: String, rel: [String], pattern p: PathPattern, target t: WatchTarget, existedBefore: Bool,
                       seen: inout Set<FileIdentity>, ancestors: [FileIdentity] = []) {
        if t.discard { return }
        guard p.directoryMayLeadToMatch(rel), !t.exclusions.excludesDirectory(dir) || rel.isEmpty else { return }
        var below = ancestors
        if case .success(let st) = Sys.stat(dir) {
            let id = FileIdentity(dev: st.dev, inode: st.inode)
            if ancestors.contains(id) {
                directoryCyclesSkipped += 1
                return
            }
            below.append(id)
        }
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
                    scanDirectory(path, rel: rel + [name], pattern: p, target: t, existedBefore: existedBefore, seen: &seen, ancestors: below)
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
    fileprivate func watchNearestAncestor(of dir: String) -> Bool {
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

    fileprivate func watch(_ dir: String) {
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
    func target(for path: String) -> WatchTarget? {
        if let own = targets[""], own.matches(path) { return own }
        for t in targets.values where t.key != "" && !t.discard && t.matches(path) { return t }
        return nil
    }

    /// A matching path was seen: make sure a reader follows the file behind it.
    @discardableResult
    func consider(path: String, existedBefore: Bool, target t: WatchTarget) -> FileIdentity? {
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
        if let r = readers[id], r.replaced || (r.path != path && !r.isOpen && isReplacement(r, path: path)) {
            // Not this reader's file renamed: its file was deleted while its descriptor was closed
            // (idle) and this new file got the same inode number. The new file is followed once
            // the housekeeping has let the old reader go.
            markReplaced(r)
            return nil
        }
        if let r = readers[id] {
            if targets[r.targetKey] == nil && !r.deleted {
                // Its target went away but another one matches it now (a container's key changed):
                // adopt it, keeping its position.
                r.targetKey = t.key
                r.pathGone = false
                r.tags = tags(for: path, inode: id.inode, target: t)
            }
            if r.path != path {
                // Renamed to a path that still matches: same file, keep reading where we are.
                if byPath[r.path] == id { byPath[r.path] = nil }
                r.path = path
                r.pathGone = false
                r.tags = tags(for: path, inode: id.inode, target: targets[r.targetKey] ?? t)
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
            context.pipelineMetrics.rotations.add(1)
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
        } else if existedBefore && checkpoints.knows(path: path) {
            // The checkpoints name this path for another file (or for this inode with other
            // content): the file here replaced it while Sluice was stopped (rotated away, or
            // deleted and created again), so all of it is new.
            how = "replaced while stopped, from the start"
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
            switch copies.newFile(head: head, path: path, id: id, now: now, among: readers) {
            case .possibleCopy(let twinHead, let twinOffset, let twinID):
                // Starts like a file we read (or read before it was truncated): possibly its copy
                // (copytruncate). Hold it until enough of it is there to tell.
                suspect = FileReader.SuspectCopy(twinHead: twinHead, twinOffset: twinOffset, since: now, lastSize: fst.size, lastChange: now, twinID: twinID)
                how = "possibly a copy of a file already read; deciding"
            case .emptyNextToRead:
                // Empty so far, next to files we read: it may be a copy being written. Held until
                // its first bytes say (no delay once they arrive, or after a quiet second).
                suspect = FileReader.SuspectCopy(twinHead: [], twinOffset: 0, since: now, lastSize: fst.size, lastChange: now)
                how = "new and empty; deciding whether it is a copy"
            case .read:
                break
            }
        }
        let r = FileReader(id: id, path: path, offset: offset, signature: sig, tags: tags(for: path, inode: id.inode, target: t), now: now)
        r.inodeGeneration = Sys.inodeGeneration(fd)
        r.targetKey = t.key
        r.lastRegistered = offset
        if let f = t.format {
            r.decoder = StreamDecoder(format: f, maxLogSize: options.maxLogSize, ignoreStdout: t.ignoreStdout, ignoreStderr: t.ignoreStderr,
                                      multiline: chunkReader.multiline, maxGroupBytes: options.maxReadBufferSize, matcher: chunkReader.scratch?.matcher)
            r.decoder?.offsetKey = chunkReader.offsetKey
        } else if let m = chunkReader.multiline {
            r.multiline = MultilineMachine(options: m, maxGroupBytes: options.maxReadBufferSize)
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
        context.pipelineMetrics.filesOpened.add(1)
        readers[id] = r
        byPath[path] = id
        checkpoints.track(id, path: path, signature: sig, offset: offset)
        logger.debug("Following file.", metadata: ["file.path": "\(path)", "file.offset": "\(offset)", "how": "\(how)"])
        return id
    }

    /// The first ≤ 1 KiB of an open file.
    func readHead(_ fd: Int32) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: FileSignature.maxLength)
        guard case .success(let n) = buf.withUnsafeMutableBytes({ Sys.preadFull(fd, $0.baseAddress!, FileSignature.maxLength, 0) }) else { return [] }
        buf.removeSubrange(n...)
        return buf
    }

    /// Sets a reader's head, keeping the copy detector's index in step.
    func setHead(_ r: FileReader, _ head: [UInt8]) {
        copies.headChanged(r.id, from: r.head, to: head)
        r.head = head
    }

    /// Decides files held as possible copies (see `CopyDetector.decide`): a copy is read after the
    /// part already delivered, a new file from the start.
    func decideSuspects(now: Int64) {
        for r in readers.values {
            guard let sc = r.suspect, r.isOpen, case .success(let st) = Sys.fstat(r.fd) else { continue }
            let head = readHead(r.fd)
            switch copies.decide(sc, head: head, size: st.size, path: r.path, id: r.id, now: now, among: readers) {
            case .wait(let sc):
                r.suspect = sc
            case .read(let off, let how, let twin, let twinTruncated):
                r.suspect = nil
                setHead(r, head)
                r.restart(at: off)
                r.lastRegistered = off
                // From 0 the signature grows from what is read (see `restart`); past 0 it is
                // that of the head the decision was made on (read once, so both agree).
                if off > 0 { r.signature = FileSignature(hash: FNV1a.hash(head), length: head.count) }
                checkpoints.track(r.id, path: r.path, signature: r.signature, offset: off, copyOf: twin, originalTruncated: twinTruncated)
                r.dirty = true
                logger.debug("Following file.", metadata: ["file.path": "\(r.path)", "file.offset": "\(off)", "how": "\(how)"])
            }
        }
    }

    /// Offset of the first newline at or after `from` (before `limit`), reading in 64 KiB steps.
    fileprivate func nextNewline(fd: Int32, from: Int64, limit: Int64) -> Int64? {
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
    func findByIdentity(_ id: FileIdentity, inDirectoryOf path: String) -> String? {
        guard let slash = path.lastIndex(of: "/") else { return nil }
        let dir = slash == path.startIndex ? "/" : String(path[..<slash])
        guard case .success(let entries) = Sys.listDirectory(dir) else { return nil }
        for (name, type) in entries where type == UInt8(DT_REG) || type == UInt8(DT_UNKNOWN) {
            let p = dir == "/" ? "/" + name : dir + "/" + name
            if case .success(let st) = Sys.stat(p), st.dev == id.dev, st.inode == id.inode { return p }
        }
        return nil
    }

    fileprivate func byteIsNewline(fd: Int32, at off: Int64) -> Bool {
        guard off >= 0 else { return true }
        var b: UInt8 = 0
        return pread(fd, &b, 1, off_t(off)) == 1 && b == 0x0A
    }

    /// Whether the file open as `fd` has `r`'s identity but is not `r`'s file: the inode number
    /// was reused (its generation differs). False where the file system keeps no generation.
    func isReplacement(_ r: FileReader, fd: Int32) -> Bool {
        guard let was = r.inodeGeneration, let now = Sys.inodeGeneration(fd) else { return false }
        return was != now
    }

    /// `isReplacement` for the file at `path`.
    func isReplacement(_ r: FileReader, path: String) -> Bool {
        guard r.inodeGeneration != nil, case .success(let fd) = Sys.openRead(path) else { return false }
        defer { close(fd) }
        return isReplacement(r, fd: fd)
    }

    func signatureMatches(fd: Int32, _ sig: FileSignature) -> Bool {
        guard case .success(let now) = FileSignature.read(fd: fd, length: sig.length) else { return false }
        return now == sig
    }

    func tags(for path: String, inode: UInt64, target t: WatchTarget) -> [EventTag] {
        var tags: [EventTag] = []
        let keys = options.tagKeys
        if let k = keys.path, !t.omitPathTag || keys.pathNamed {
            tags.append(EventTag(k, shownPath(path, target: t)))
        }
        if let k = keys.inode { tags.append(EventTag(k, String(inode))) }
        tags += context.hostTags
        for e in context.globals.envTags { tags.append(EventTag(e.name, e.value)) }
        if let pt = options.pathTags {
            // Matched on the path as `__path__` shows it (inside the container), once per file.
            let fromPath = pt.tags(for: shownPath(path, target: t))
            if !fromPath.isEmpty {
                return tags + fromPath + t.tags.filter { tag in !fromPath.contains { $0.key == tag.key } }
            }
        }
        return tags + t.tags
    }

    /// `path` as the events of target `t` report it: inside the container when the target maps one.
    func shownPath(_ path: String, target t: WatchTarget) -> String {
        var shown = path
        if let rw = t.pathRewrite, path.hasPrefix(rw.host) {
            shown = rw.container + String(path.dropFirst(rw.host.count))
            if shown.hasPrefix("//") { shown.removeFirst() }
        }
        return shown
    }
}
