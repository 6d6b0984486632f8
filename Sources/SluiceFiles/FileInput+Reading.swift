import Glibc
import Logging
import SluiceCore
import SluiceSystem

// Read rounds, delivery with acknowledgement registration, reopening, truncation checks.
extension FileInput {
    // MARK: - Reading

    /// Reads every dirty file a little (fair to all files). Returns false when the sink refused
    /// a batch because the pipeline is stopping.
    func readRound(sink: any BatchSink) -> Bool {
        let dirty = readers.values.filter { $0.dirty && $0.suspect == nil && !isHeld($0) }
        for r in dirty {
            if stopping { return false }
            if !ensureOpen(r) { continue }
            if !checkTruncation(r) { continue }
            var chunks = 0
            while chunks < 8 {
                chunks += 1
                if let g = context.governor, g.isPaused {
                    g.waitWhilePaused(shouldStop: { self.stopping })
                    if stopping { return false }
                }
                let now = Sys.monotonicNanos()
                let arenaOffset = r.readOffset - Int64(r.partial.count)
                switch chunkReader.read(r, now: now, wallNanos: Sys.wallNanos()) {
                case .failure(let e):
                    warnOnce(r.path, "Cannot read file; will retry.", e)
                    r.dirty = false
                    chunks = Int.max
                case .success(var out):
                    if out.linesSplit > 0 { context.pipelineMetrics.linesSplit.add(out.linesSplit) }
                    if out.bytesRead > 0 {
                        context.pipelineMetrics.bytesIn.add(out.bytesRead)
                        context.rateLimiter?.acquire(out.bytesRead, shouldStop: { self.stopping })
                    }
                    if r.multiline != nil || r.decoder?.multilineActive == true { countMultiline(r) }
                    if let b = out.batch {
                        out.batch = nil  // `b` is then the batch's one reference, handed on below
                        if let dec = r.decoder {
                            // Decode first: the held offset must include what this batch left pending.
                            let decoded = dec.decode(b, baseOffset: arenaOffset)
                            countDecoded(dec)
                            let upTo = min(out.emittedUpTo, dec.holdOffset ?? .max)
                            if !deliver(consume decoded, from: r, upTo: upTo, sink: sink) { return false }
                        } else if !deliver(consume b, from: r, upTo: out.emittedUpTo, sink: sink) { return false }
                    }
                    if out.reachedEOF {
                        r.dirty = false
                        r.atEOF = true
                        chunks = Int.max
                        heldBackWrittenAt(r, now: now)
                    } else {
                        r.atEOF = false
                    }
                }
                if r.signature.length < FileSignature.maxLength && r.readOffset > Int64(r.signature.length) {
                    if r.headRead != nil {
                        // From the bytes read: a rewrite since shows as a mismatch at the next check.
                        if let s = r.grownSignature { adoptSignature(r, s, head: r.headRead) }
                    } else {
                        // Resumed past 0: from the file's head, while it still starts with the
                        // signature held (else a rewrite, which the next check sees).
                        let head = readHead(r.fd)
                        if let s = r.grownSignature(fromHead: head) { adoptSignature(r, s, head: head) }
                    }
                }
            }
        }
        return true
    }

    /// At the end of a file, what `r` holds back (an unterminated last line, a pending multiline
    /// group) waits its flush timeout from when it was written, which the file's modification
    /// time bounds, not from when it was read: the last record of a file written long ago (a
    /// backlog, a finished Job's log, a restart) is emitted at once, while a file being written
    /// still waits for its next line. Not when the file grew meanwhile (its next read decides).
    func heldBackWrittenAt(_ r: FileReader, now: Int64) {
        let held = r.decoder.map { $0.hasPendingGroup || $0.hasPendingPartial } ?? false
        guard !r.partial.isEmpty || held else { return }
        guard case .success(let st) = Sys.fstat(r.fd), st.size == r.readOffset else { return }
        let age = Sys.wallNanos() - st.mtimeNanos
        guard age > 0 else { return }
        if !r.partial.isEmpty { r.partialSince = min(r.partialSince, now - age) }
        if held { r.decoder?.heldWritten(atOrBefore: now - age) }
    }

    /// Adds what a runtime log's decoder counted (joins cut at MaxLogSize, lines that were not
    /// runtime records) to the metrics.
    func countDecoded(_ dec: StreamDecoder) {
        let c = dec.takeRecordCounts()
        if c.oversized > 0 { context.metrics.containerLogOversizedJoins.add(c.oversized) }
        if c.unparsed > 0 { context.metrics.containerLogUnparsedLines.add(c.unparsed) }
    }

    /// Adds what the reader's joiners counted (discarded unmatched lines, truncated groups) to
    /// the metrics and warns, at most once a minute, about unmatched lines.
    func countMultiline(_ r: FileReader) {
        var discarded = 0, unmatched = 0, truncated = 0, blank = 0
        if var ml = r.multiline {
            discarded += ml.discardedLines; unmatched += ml.unmatchedLines; truncated += ml.truncatedGroups
            blank += ml.blankLines
            ml.discardedLines = 0; ml.unmatchedLines = 0; ml.truncatedGroups = 0; ml.blankLines = 0
            r.multiline = ml
        }
        if let dec = r.decoder {
            let c = dec.takeMultilineCounts()
            discarded += c.discarded; unmatched += c.unmatched; truncated += c.truncated; blank += c.blank
        }
        if discarded > 0 { context.metrics.discarded(discarded, reason: "multiline_unmatched") }
        if blank > 0 { context.metrics.discarded(blank, reason: "multiline_blank_line") }
        if truncated > 0 { context.metrics.multilineTruncatedGroups.add(truncated) }
        if unmatched > 0, let m = chunkReader.multiline, !m.ignoringUnmatchWarning {
            let now = Sys.monotonicNanos()
            if now - lastUnmatchedWarning >= 60_000_000_000 || lastUnmatchedWarning == 0 {
                lastUnmatchedWarning = now
                logger.warning("Lines matched no multiline pattern; check the patterns.", metadata: [
                    "file.path": "\(r.path)", "lines": "\(unmatched)", "action": "\(m.unmatched.rawValue)"])
            }
        }
    }

    /// Hands on several batches from one read: all but the last keep the checkpoint where it was,
    /// so it moves only once every one of them is acknowledged.
    func deliver(_ batches: consuming [EventBatch], from r: FileReader, upTo: Int64, sink: any BatchSink) -> Bool {
        // Each batch moved out of the array, so the sink gets its only reference.
        batches.reverse()
        while let b = batches.popLast() {
            if !deliver(consume b, from: r, upTo: batches.isEmpty ? upTo : r.lastRegistered, sink: sink) { return false }
        }
        return true
    }

    func deliver(_ b: consuming EventBatch, from r: FileReader, upTo: Int64, sink: any BatchSink) -> Bool {
        if r.lastRegistered == 0 { copies.firstRead(path: r.path) }
        // Every batch of the file (lines, flushed partial lines, multiline groups, a runtime log's
        // decoded streams) continues one stream, so a processing thread takes them in order.
        b.sourceStream = FNV1a.hash64(r.id.dev, r.id.inode, 0)
        r.lastRegistered = upTo
        let seq = checkpoints.emitted(r.id, upTo: upTo)
        let id = r.id
        let table = checkpoints
        // Delivered and rejected both let the position move past the batch; abandoned (shutdown)
        // leaves it behind, so the batch is read again on the next start.
        b.ack = AckToken(expected: 0) { status in if status.isFinal { table.acknowledged(id, sequence: seq) } }
        context.pipelineMetrics.eventsIn.add(b.events.count)
        context.metrics.receivedEvents.add(b.events.count)
        context.metrics.receivedBytes.add(b.inputBytes)
        // While the batch waits for room, containers that come (and may go, their logs deleted)
        // get their files opened: a held descriptor keeps a deleted log readable.
        return sink.send(consume b, waiting: { self.followWhileWaiting() })
    }

    /// While a batch waits for room (the destination holds the input back), the input follows
    /// what comes without reading it: containers that came (their targets), files created in
    /// watched directories (inotify), the settle scans of new targets. So a Job's log that appears
    /// and is deleted before the wait ends is held open, and read afterwards.
    func followWhileWaiting() {
        applyPendingTargets()
        if let ino = inotify { handle(events: ino.readEvents()) }
        if !settleScans.isEmpty { runSettleScans(now: Sys.monotonicNanos()) }
    }

    fileprivate func ensureOpen(_ r: FileReader) -> Bool {
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
        if isReplacement(r, fd: fd) {
            // The file at its path has its identity but is a new file: its own was deleted while
            // its descriptor was closed (idle) and the inode number reused.
            close(fd)
            markReplaced(r)
            return false
        }
        r.fd = fd
        openCount += 1
        return true
    }

    /// Reopens a file whose descriptor was closed (idle) after its path stopped leading to it:
    /// looks for it by identity in its directory, so what was written before or after a rename is
    /// still read. Returns true if the reader holds a descriptor again.
    func reopenMoved(_ r: FileReader) -> Bool {
        guard !r.isOpen, !r.deleted, let p = findByIdentity(r.id, inDirectoryOf: r.path),
              case .success(let fd) = Sys.openRead(p) else { return false }
        // Same identity under another name. A changed signature means its content was replaced
        // (truncated and rewritten, then renamed, while its descriptor was closed): it is still
        // this reader's file, and the truncation check restarts it at 0. Refusing it would lose
        // the new content.
        guard case .success(let st) = Sys.fstat(fd), st.dev == r.id.dev, st.inode == r.id.inode else {
            close(fd)
            return false
        }
        if isReplacement(r, fd: fd) {
            // Another file that got its inode number after it was deleted while closed.
            close(fd)
            markReplaced(r)
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
                r.tags = tags(for: p, inode: r.id.inode, target: t)
                checkpoints.update(r.id, path: p)
            }
        }
        return true
    }

    /// `r`'s file was deleted while its descriptor was closed, and its inode number now holds
    /// another file: `r` is let go by the housekeeping (what it holds back emitted first), which
    /// then looks at its path again; the new file is followed as new, from its start.
    func markReplaced(_ r: FileReader) {
        r.deleted = true
        r.pathGone = true
        r.replaced = true
        r.dirty = false
        if r.goneSince == 0 { r.goneSince = Sys.monotonicNanos() }
    }

    /// The reader's file now has signature `s` (grown, or replaced before anything was read):
    /// kept with the file's head and in the checkpoint.
    private func adoptSignature(_ r: FileReader, _ s: FileSignature, head: [UInt8]? = nil) {
        r.signature = s
        setHead(r, head ?? readHead(r.fd))
        checkpoints.update(r.id, signature: s)
    }

    /// Detects truncation (size below our offset) and replacement of the content (signature
    /// changed): reading restarts at 0. Returns false if the file cannot be checked now.
    fileprivate func checkTruncation(_ r: FileReader) -> Bool {
        guard case .success(let st) = Sys.fstat(r.fd) else { return false }
        r.lastSize = st.size
        r.lastMtime = st.mtimeNanos
        if st.nlink == 0 && !r.deleted {
            r.deleted = true
            r.pathGone = true
            if r.goneSince == 0 { r.goneSince = Sys.monotonicNanos() }
        }
        var truncated = st.size < r.readOffset
        if !truncated && r.signature.length > 0 && !signatureMatches(fd: r.fd, r.signature) {
            if r.readOffset > 0 {
                truncated = true
            } else {
                // Replaced (truncated and rewritten) before any of it was read: nothing was
                // emitted, only the signature is stale. Left as it was, it would call the file
                // rewritten once its new content has been read, and read that again. Emptied, it
                // grows from what is read (see below).
                adoptSignature(r, .empty)
            }
        }
        if truncated {
            context.pipelineMetrics.truncations.add(1)
            logger.info("File was truncated or rewritten; reading it again from the start.", metadata: ["file.path": "\(r.path)", "file.offset": "\(r.readOffset)", "file.size": "\(st.size)"])
            copies.truncated(path: r.path, head: r.head, delivered: r.emittedOffset, now: Sys.monotonicNanos(), id: r.id)
            r.restart(at: 0)
            r.lastRegistered = 0
            r.partial = []
            r.skipToNewline = false
            r.inSplitLine = false
            r.decoder?.reset()
            r.multiline?.reset()
            r.groupHeld = 0
            r.splitFrom = 0
            setHead(r, readHead(r.fd))
            checkpoints.reset(r.id, offset: 0, signature: .empty)
        }
        return true
    }
}
