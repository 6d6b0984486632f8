import SluiceSystem

/// copytruncate detection, without I/O: tells a copy of a file already read (made by
/// copytruncate, or by `cp` before a truncation) from a new file, so the part already delivered
/// is not read again. Owned by the input thread; `FileInput` reads the files' first bytes and
/// sizes and hands them in with the time.
struct CopyDetector {
    /// A file being read, as the detector sees it (a possible original of a copy).
    protocol File {
        var id: FileIdentity { get }
        /// Last path the file was seen under.
        var path: String { get }
        /// The file's first ≤ 1 KiB.
        var head: [UInt8] { get }
        /// Everything before this offset has been emitted.
        var emittedOffset: Int64 { get }
        /// The path no longer leads to this file (renamed away or deleted).
        var pathGone: Bool { get }
        /// Held, unread, while it may itself be a copy.
        var heldAsPossibleCopy: Bool { get }
    }

    /// What to do with a file new since the start that would be read from its start.
    enum NewFile: Equatable {
        /// An ordinary new file: read it from the start.
        case read
        /// Starts like a file read (or read before it was truncated): possibly its copy. Hold it
        /// until enough of it is there to tell; `twinHead`/`twinOffset` are the original's head and
        /// the part of it already delivered.
        case possibleCopy(twinHead: [UInt8], twinOffset: Int64, twinID: FileIdentity)
        /// Empty so far, next to files read: it may be a copy being written. Hold it until its
        /// first bytes say.
        case emptyNextToRead
    }

    /// What to do with a file held as a possible copy.
    enum Decision {
        /// Not decided yet: keep holding it, with what was learned now.
        case wait(FileReader.SuspectCopy)
        /// Decided: read it from `offset` (0: not a copy; else after the part `copyOf` emitted,
        /// `originalTruncated` when that file has been truncated since).
        case read(from: Int64, how: String, copyOf: FileIdentity? = nil, originalTruncated: Bool = false)
    }

    /// Heads shorter than this are not indexed (found by a scan of all files instead).
    static let headKeyLength = 16
    /// How long a truncated file's head is remembered.
    static let truncatedHeadLifetime: Int64 = 60_000_000_000
    /// How long a possible copy that does not change (or stays empty) is held.
    static let quietPeriod: Int64 = 1_000_000_000

    /// First bytes and delivered offset of files truncated lately (copytruncate: their copy may
    /// show up under a matching name and must not be read again).
    private(set) var recentHeads: [(dir: String, head: [UInt8], offset: Int64, until: Int64, id: FileIdentity)] = []
    /// Readers by the hash of their first 16 bytes (finding a copy's twin without scanning all).
    private(set) var headIndex: [UInt64: Set<FileIdentity>] = [:]
    /// Directories where a file has been read (an empty new file there may be a copy being made).
    private(set) var directoriesRead = Set<String>()

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Whether two heads have the same bytes as far as both go (and are not empty).
    static func agree(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let n = min(a.count, b.count)
        return n > 0 && a[0..<n] == b[0..<n]
    }

    static func headKey(_ head: [UInt8]) -> UInt64 {
        head.withUnsafeBytes { FNV1a.hash(UnsafeRawBufferPointer(rebasing: $0[0..<headKeyLength])) }
    }

    /// A file's head changes from `old` to `new`: keeps the index in step.
    mutating func headChanged(_ id: FileIdentity, from old: [UInt8], to new: [UInt8]) {
        if old.count >= Self.headKeyLength {
            let k = Self.headKey(old)
            headIndex[k]?.remove(id)
            if headIndex[k]?.isEmpty == true { headIndex[k] = nil }
        }
        if new.count >= Self.headKeyLength { headIndex[Self.headKey(new), default: []].insert(id) }
    }

    /// A file is read for the first time: its directory is one where files are read.
    mutating func firstRead(path: String) {
        directoriesRead.insert(Self.directory(of: path))
    }

    /// A file was truncated after `delivered` bytes were emitted: its copy may show up for a while.
    mutating func truncated(path: String, head: [UInt8], delivered: Int64, now: Int64, id: FileIdentity) {
        if !head.isEmpty && delivered > 0 {
            recentHeads.append((Self.directory(of: path), head, delivered, now + Self.truncatedHeadLifetime, id))
        }
    }

    /// A file new since the start, about to be read from its start, begins with `head`.
    mutating func newFile<F: File>(head: [UInt8], path: String, id: FileIdentity, now: Int64, among files: [FileIdentity: F]) -> NewFile {
        if !head.isEmpty, let twin = twin(of: head, inDirectoryOf: path, excluding: id, now: now, among: files) {
            return .possibleCopy(twinHead: twin.head, twinOffset: twin.offset, twinID: twin.id)
        } else if head.isEmpty && directoriesRead.contains(Self.directory(of: path)) {
            return .emptyNextToRead
        }
        return .read
    }

    /// A file in the same directory (being read, or truncated lately) whose first bytes agree with
    /// `head` as far as both go: the new file may be its copy.
    mutating func twin<F: File>(of head: [UInt8], inDirectoryOf path: String, excluding id: FileIdentity, now: Int64,
                                among files: [FileIdentity: F]) -> (head: [UInt8], offset: Int64, id: FileIdentity)? {
        let dir = Self.directory(of: path)
        func agrees(_ other: [UInt8]) -> Bool { Self.agree(other, head) }
        recentHeads.removeAll { $0.until < now }
        for h in recentHeads where h.dir == dir && agrees(h.head) { return (h.head, h.offset, h.id) }
        func candidate(_ r: F) -> Bool {
            r.id != id && !r.pathGone && !r.heldAsPossibleCopy && r.emittedOffset > 0 && agrees(r.head) && Self.directory(of: r.path) == dir
        }
        if head.count >= Self.headKeyLength {
            for cid in headIndex[Self.headKey(head)] ?? [] {
                if let r = files[cid], candidate(r) { return (r.head, r.emittedOffset, r.id) }
            }
            // Twins shorter than the key length.
            for r in files.values where !r.head.isEmpty && r.head.count < Self.headKeyLength && candidate(r) { return (r.head, r.emittedOffset, r.id) }
        } else {
            for r in files.values where candidate(r) { return (r.head, r.emittedOffset, r.id) }
        }
        return nil
    }

    /// How far the twin `id` has emitted: while it still starts with `head` (not truncated yet),
    /// its reader's offset; once truncated, what it had emitted then.
    func delivered<F: File>(by id: FileIdentity, head: [UInt8], among files: [FileIdentity: F]) -> Int64 {
        var offset: Int64 = 0
        if let r = files[id], Self.agree(r.head, head) { offset = r.emittedOffset }
        for h in recentHeads where h.id == id && Self.agree(h.head, head) { offset = max(offset, h.offset) }
        return offset
    }

    /// Decides a file held as a possible copy, now `head` and `size`: once as many bytes as the
    /// twin's head agree, it is a copy and is read after the part already delivered; if they
    /// disagree, or it stays too short for a second, it is a new file read from the start.
    mutating func decide<F: File>(_ held: FileReader.SuspectCopy, head: [UInt8], size: Int64, path: String, id: FileIdentity,
                                  now: Int64, among files: [FileIdentity: F]) -> Decision {
        var sc = held
        if size != sc.lastSize { sc.lastSize = size; sc.lastChange = now }
        if sc.twinHead.isEmpty {
            // Was empty: find its possible twin now that bytes arrived.
            if head.isEmpty {
                if now - sc.lastChange < Self.quietPeriod { return .wait(sc) }
            } else if let twin = twin(of: head, inDirectoryOf: path, excluding: id, now: now, among: files) {
                sc.twinHead = twin.head
                sc.twinOffset = twin.offset
                sc.twinID = twin.id
            }
        }
        // The original read on while its copy was made (logrotate copies, then truncates): what
        // it emitted since is in the copy too, and is skipped there.
        if let tid = sc.twinID { sc.twinOffset = max(sc.twinOffset, delivered(by: tid, head: sc.twinHead, among: files)) }
        let agree = Self.agree(head, sc.twinHead)
        if head.isEmpty {
            // Stayed empty for a second: an ordinary new file.
            sc.twinHead = []
        }
        let fullyCompared = head.count >= min(FileSignature.maxLength, sc.twinHead.count)
        let quiet = now - sc.lastChange >= Self.quietPeriod
        if !agree {
            return .read(from: 0, how: "not a copy; from the start")
        } else if fullyCompared && (size >= sc.twinOffset || quiet) {
            // The original still starts as the copy does: not truncated yet (logrotate copies first).
            let truncated = sc.twinID.map { tid in !(files[tid].map { Self.agree($0.head, sc.twinHead) } ?? false) } ?? false
            return .read(from: min(sc.twinOffset, size), how: "copy of a file already read; after the part already delivered",
                         copyOf: sc.twinID, originalTruncated: truncated)
        } else if quiet && !fullyCompared {
            return .read(from: 0, how: "too short to be told from its twin; from the start")
        }
        return .wait(sc)
    }
}

extension FileReader: CopyDetector.File {
    var heldAsPossibleCopy: Bool { suspect != nil }
}
