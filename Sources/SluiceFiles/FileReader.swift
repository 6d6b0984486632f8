import Glibc
import SluiceCore
import SluiceRegex
import SluiceSystem

/// One file being read: its identity, where reading stands and what is held back (the
/// unterminated last line). Owned and driven by one input thread; never shared.
final class FileReader {
    let id: FileIdentity
    /// Last path the file was seen under.
    var path: String
    var fd: Int32 = -1
    /// Next byte to read from the file.
    var readOffset: Int64
    /// Bytes before `readOffset` that wait for their newline (not yet emitted).
    var partial: [UInt8] = []
    /// Monotonic time the held-back bytes last grew.
    var partialSince: Int64 = 0
    var signature: FileSignature
    /// The inode's generation when the file was opened (nil where the file system has none): a
    /// file found again under this identity with another generation is a new file that reused
    /// the inode after this one was deleted while its descriptor was closed.
    var inodeGeneration: UInt64?
    /// Its file is gone and its inode holds another file (see `inodeGeneration`): let go by the
    /// housekeeping, which then looks at its path again.
    var replaced = false
    /// Discard bytes up to the first newline (started mid-file by TailSizeKB).
    var skipToNewline = false
    /// Has data to read (an event or a poll said so).
    var dirty = true
    var atEOF = false
    /// The path no longer leads to this file (renamed away or deleted).
    var pathGone = false
    /// Link count dropped to 0.
    var deleted = false
    var goneSince: Int64 = 0
    /// Monotonic time of the last read that returned data or of the last change seen.
    var lastActivity: Int64
    /// Size when last looked at (for polling closed readers).
    var lastSize: Int64 = 0
    /// The file's first ≤ 1 KiB (tells a copy of it, made by copytruncate, from a new file).
    var head: [UInt8] = []
    /// Held, unread, while it may be a copy of a file already read.
    struct SuspectCopy {
        var twinHead: [UInt8]
        var twinOffset: Int64
        var since: Int64
        var lastSize: Int64
        var lastChange: Int64
        /// The file it may be a copy of (nil until its first bytes named one).
        var twinID: FileIdentity? = nil
    }
    var suspect: SuspectCopy?
    /// Modification time when last looked at (a same-size rewrite changes only this).
    var lastMtime: Int64 = 0
    var tags: [EventTag]
    /// The current long line has been split at least once.
    var inSplitLine = false
    /// Key of the `WatchTarget` the file belongs to.
    var targetKey = ""
    /// Runtime log decoding (container logs), nil for plain lines.
    var decoder: StreamDecoder?
    /// Offset registered with the last batch handed on (acknowledgement ordering of split batches).
    var lastRegistered: Int64 = 0
    /// Multiline grouping of plain lines (nil: one line, one event). A pending group is held at
    /// the start of `partial`, so the checkpoint (`emittedOffset`) stays at its first byte.
    var multiline: MultilineMachine?
    /// Length of the pending group at the start of `partial`: its lines and the `\n` between them.
    var groupHeld = 0
    /// Bytes at the start of `partial` already split into lines (the group and its newline).
    var splitFrom = 0

    /// The bytes this reader has read from offset 0, up to `FileSignature.maxLength` (nil when it
    /// did not start at 0). The signature grows from them, not from reading the file's head again
    /// after a read: a file truncated and rewritten in between would otherwise give the new
    /// content's signature to the old content's offset, and the rewrite would go unnoticed.
    var headRead: [UInt8]?

    init(id: FileIdentity, path: String, offset: Int64, signature: FileSignature, tags: [EventTag], now: Int64) {
        self.id = id
        self.path = path
        self.readOffset = offset
        self.signature = signature
        self.tags = tags
        self.lastActivity = now
        self.headRead = offset == 0 ? [] : nil
    }

    /// Reading restarts at `offset` (a copy decided, a truncation). From 0, the signature starts
    /// empty and grows from what is then read (`headRead`), as for a new file: read from the
    /// file's head here, it could be a later rewrite's (the file changes between the check and
    /// the read), longer than what the reader then reads. Never grown to, it would make the next
    /// check call the file rewritten and read again what was just read (input_file model, seed
    /// 38654606745185/15). Past 0, the caller sets the signature of the part it skips.
    func restart(at offset: Int64) {
        readOffset = offset
        headRead = offset == 0 ? [] : nil
        if offset == 0 { signature = .empty }
    }

    /// Records the `n` bytes just read at `offset` (in `bytes`) while they extend `headRead` and
    /// the signature can still grow (a full-length one never does: nothing is kept for it).
    func noteRead(_ bytes: UnsafePointer<UInt8>, count n: Int, at offset: Int64) {
        guard signature.length < FileSignature.maxLength, let have = headRead?.count,
              have < FileSignature.maxLength, Int64(have) == offset else { return }
        // In place: a copy of the array appended to would copy what it holds on every read.
        headRead!.append(contentsOf: UnsafeBufferPointer(start: bytes, count: min(n, FileSignature.maxLength - have)))
    }

    /// A longer signature than the one held, from what was read (see `headRead`); nil if none.
    var grownSignature: FileSignature? {
        guard let h = headRead, h.count > signature.length else { return nil }
        return FileSignature(hash: FNV1a.hash(h), length: h.count)
    }

    /// For a reader that did not read the file from offset 0 (`headRead` nil): the signature of
    /// `head` (the file's first bytes, read now) when it is longer than the one held and starts
    /// with it; nil otherwise. A head that does not start with the held signature is a rewrite
    /// since the last check: taken as the signature, it would match the new content, and the next
    /// check would read that from the old content's offset.
    func grownSignature(fromHead head: [UInt8]) -> FileSignature? {
        guard head.count > signature.length,
              FNV1a.hash(Array(head[0..<signature.length])) == signature.hash else { return nil }
        return FileSignature(hash: FNV1a.hash(head), length: head.count)
    }

    /// Everything before this offset has been emitted.
    var emittedOffset: Int64 { readOffset - Int64(partial.count) }

    var isOpen: Bool { fd >= 0 }

    func closeFD() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }

    deinit { closeFD() }
}

/// What one read produced.
struct ReadOutcome {
    var batch: EventBatch?
    /// Offset of the end of the emitted data after this read.
    var emittedUpTo: Int64
    var bytesRead: Int
    var reachedEOF: Bool
    var linesSplit: Int
}

/// The matcher and scratch buffer of the multiline joiner: one per input thread.
final class MultilineScratch {
    let matcher: RegexMatcher
    /// A GBK line converted to UTF-8 for matching.
    var converted: [UInt8] = []
    init(_ options: MultilineOptions) { matcher = RegexMatcher(for: options.patterns) }
}

/// The reading logic, separate from discovery: read a chunk, split it, hold back the rest.
struct ChunkReader {
    let maxReadBufferSize: Int
    let transcoder: Transcoder?
    /// Multiline options of plain lines, and the thread's matcher.
    var multiline: MultilineOptions? = nil
    var scratch: MultilineScratch? = nil
    /// `FileOffsetKey`: the field each event's file offset is added as; nil: none.
    var offsetKey: String? = nil

    /// The offset field of `r`'s plain lines; nil for a runtime log, whose decoder adds it (the
    /// raw lines read are not its events).
    func offsetKey(for r: FileReader) -> String? { r.decoder == nil ? offsetKey : nil }

    /// Reads up to `maxReadBufferSize` bytes at the reader's offset and turns complete lines into
    /// a batch. Errors are returned, not thrown, and leave the reader unchanged.
    func read(_ r: FileReader, now: Int64, wallNanos: Int64) -> Result<ReadOutcome, Errno> {
        let chunk = maxReadBufferSize
        let held = r.partial.count
        var readError: Errno?
        var n = 0
        // Room past the read for what processors add to the arena (unescaped strings, numbers
        // made text, new values): appended at the end of their pass, it then fits, and the arena
        // is not moved to a larger allocation (a copy of it, and fresh pages, per batch).
        var arena = [UInt8](unsafeUninitializedCapacity: held + chunk + chunk / 8) { buf, initialized in
            let base = buf.baseAddress!
            r.partial.withUnsafeBufferPointer { p in
                if held > 0 { base.update(from: p.baseAddress!, count: held) }
            }
            var got = 0
            while got < chunk {
                let k = pread(r.fd, base + held + got, chunk - got, off_t(r.readOffset) + off_t(got))
                if k < 0 {
                    if errno == EINTR { continue }
                    readError = Errno(errno)
                    break
                }
                if k == 0 { break }
                got += k
                // A short read usually means EOF; don't spin on a growing file here.
                break
            }
            n = got
            initialized = held + got
            if got > 0 { r.noteRead(base + held, count: got, at: r.readOffset) }
        }
        if let e = readError, n == 0 { return .failure(e) }
        if n == 0 {
            return .success(ReadOutcome(batch: nil, emittedUpTo: r.emittedOffset, bytesRead: 0, reachedEOF: true, linesSplit: 0))
        }
        r.readOffset += Int64(n)
        r.lastActivity = now

        var start = r.splitFrom
        if r.skipToNewline {
            let found = arena.withUnsafeBufferPointer { LineSplitter.firstNewline($0.baseAddress!, start: 0, count: $0.count) }
            if let nl = found {
                start = nl + 1
                r.skipToNewline = false
            } else {
                r.partial = []
                return .success(ReadOutcome(batch: nil, emittedUpTo: r.readOffset, bytesRead: n, reachedEOF: n < chunk, linesSplit: 0))
            }
        }

        var events: [LogEvent] = []
        events.reserveCapacity(max(16, (arena.count - start) / 128))
        var rest = arena.withUnsafeBufferPointer { LineSplitter.split($0.baseAddress!, start: start, count: $0.count, into: &events) }
        var split = 0
        let maxLine = maxReadBufferSize
        // Finishing a line that was split: its first event is the last piece.
        if r.inSplitLine && !events.isEmpty {
            events[0].flags |= LogEvent.Flag.splitPiece
            r.inSplitLine = false
        }
        // A complete line longer than the buffer (held bytes + a full read) leaves in pieces too.
        if events.contains(where: { Int($0.content.length) > maxLine }) {
            var cut: [LogEvent] = []
            cut.reserveCapacity(events.count + 4)
            for ev in events {
                var off = Int(ev.content.offset)
                var len = Int(ev.content.length)
                if len <= maxLine { cut.append(ev); continue }
                if ev.flags & LogEvent.Flag.splitPiece == 0 { split += 1 }
                while len > 0 {
                    let n = min(len, maxLine)
                    cut.append(LogEvent(content: Span(off, n), flags: ev.flags | LogEvent.Flag.splitPiece))
                    off += n
                    len -= n
                }
            }
            events = cut
        }
        // An unterminated line longer than the buffer leaves in pieces, each flagged; counted once.
        while arena.count - rest > maxLine {
            events.append(LogEvent(content: Span(rest, maxLine), flags: LogEvent.Flag.splitPiece))
            if !r.inSplitLine { split += 1 }
            r.inSplitLine = true
            rest += maxLine
        }
        // Multiline: lines become groups; a group still open stays with the held bytes.
        var keep = rest
        if r.multiline != nil {
            keep = joinLines(r, &arena, &events, rest: rest)
        }
        let leftover = arena.count - keep
        if leftover > 0 {
            r.partialSince = now
            r.partial = Array(arena[keep...])
        } else {
            r.partial = []
        }
        r.splitFrom = rest - keep

        var batch: EventBatch? = nil
        if !events.isEmpty {
            var arenaOffset = r.readOffset - Int64(n) - Int64(held)
            let starts = FilePositionMeta.starts(of: events, base: arenaOffset, key: offsetKey(for: r))
            if let t = transcoder {
                arenaOffset = -1
                // Convert each event on its own (pieces of long lines included), keeping flags.
                var converted: [UInt8] = []
                converted.reserveCapacity(arena.count * 3 / 2)
                arena.withUnsafeBufferPointer { ab in
                    for i in events.indices {
                        let off = converted.count
                        converted += t.convert(ab.baseAddress! + Int(events[i].content.offset), Int(events[i].content.length))
                        events[i].content = Span(off, converted.count - off)
                    }
                }
                arena = converted
            } else if leftover > 0 {
                // Keep the arena's tail from being counted as queued memory forever.
                arena.removeSubrange(keep...)
            }
            batch = EventBatch(arena: arena, events: events, tags: r.tags, observedNanos: wallNanos, inputBytes: n)
            // The file's identity, fixed for its life (its signature is not: it grows to its
            // first KiB and starts again on a truncation). What was in the file at an offset
            // is told apart by the event's own bytes (Elasticsearch's `GenerateId`).
            batch?.sourceKey = FNV1a.hash64(r.id.dev, r.id.inode, r.inodeGeneration ?? 0)
            batch?.sourceOffset = arenaOffset
            if let k = offsetKey(for: r), let starts { FilePositionMeta.add(k, offsets: starts, to: &batch!) }
        }
        return .success(ReadOutcome(batch: batch, emittedUpTo: r.emittedOffset, bytesRead: n, reachedEOF: n < chunk, linesSplit: split))
    }

    /// Emits the held-back bytes as one event (flush timeout, or a deleted file being released).
    func flushPartial(_ r: FileReader, wallNanos: Int64) -> EventBatch? {
        if r.multiline != nil { return flushGroup(r, withTail: true, wallNanos: wallNanos) }
        guard !r.partial.isEmpty, !r.skipToNewline else {
            r.partial = []
            return nil
        }
        var arena = r.partial
        let start = r.emittedOffset
        var flags = LogEvent.Flag.unterminated
        if r.inSplitLine { flags |= LogEvent.Flag.splitPiece; r.inSplitLine = false }
        if let t = transcoder { arena = arena.withUnsafeBufferPointer { t.convert($0.baseAddress!, $0.count) } }
        r.partial = []
        let ev = LogEvent(content: Span(0, arena.count), flags: flags)
        var batch = EventBatch(arena: arena, events: [ev], tags: r.tags, observedNanos: wallNanos, inputBytes: 0)
        if let k = offsetKey(for: r) { FilePositionMeta.add(k, offsets: [start], to: &batch) }
        return batch
    }
}
