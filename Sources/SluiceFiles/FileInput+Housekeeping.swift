import Glibc
import Logging
import SluiceCore
import SluiceSystem

// Partial-line flush, draining and releasing files whose path is gone, idle close, the
// descriptor cap; and the dynamic targets (applied, held, released).
extension FileInput {
    // MARK: - Housekeeping

    func housekeeping(sink: any BatchSink, now: Int64) {
        if readers.values.contains(where: { $0.suspect != nil }) { decideSuspects(now: now) }
        let idleClose = nanos(options.closeUnusedReaderIntervalSec)
        var toRemove: [FileIdentity] = []
        for r in readers.values {
            // Held unread until its container is known: nothing to flush, drain or close yet.
            if isHeld(r) { continue }
            // Unterminated last line: emit after the flush timeout.
            if !r.partial.isEmpty && !r.dirty && now - r.partialSince >= partialFlushAfter {
                let start = r.emittedOffset
                if let b = chunkReader.flushPartial(r, wallNanos: Sys.wallNanos()) {
                    if let dec = r.decoder {
                        let decoded = dec.decode(b, baseOffset: start)
                        let upTo = min(r.emittedOffset, dec.holdOffset ?? .max)
                        if !deliver(decoded, from: r, upTo: upTo, sink: sink) { return }
                    } else if !deliver(b, from: r, upTo: r.emittedOffset, sink: sink) { return }
                }
                if r.multiline != nil { countMultiline(r) }
            }
            // A runtime log's partial record that waited long enough for its next piece.
            if let dec = r.decoder, dec.hasPendingPartial, !r.dirty {
                let batches = dec.flushPartials(olderThan: partialFlushAfter, now: now, tags: r.tags, observedNanos: Sys.wallNanos())
                if !batches.isEmpty {
                    if !deliver(batches, from: r, upTo: min(r.emittedOffset, dec.holdOffset ?? .max), sink: sink) { return }
                }
            }
            // A runtime log's multiline group that waited long enough for its next record.
            if let dec = r.decoder, dec.hasPendingGroup, !r.dirty {
                let batches = dec.flushGroups(olderThan: groupFlushAfter, now: now, tags: r.tags, observedNanos: Sys.wallNanos())
                if !batches.isEmpty {
                    countMultiline(r)
                    if !deliver(batches, from: r, upTo: min(r.emittedOffset, dec.holdOffset ?? .max), sink: sink) { return }
                }
            }
            if r.pathGone || r.deleted {
                var drained = r.atEOF && !r.dirty
                // Drained by the file's size, not only by what the last read saw: a write whose
                // event was missed (a full inotify queue, a directory removed with the pod) would
                // otherwise be let go with the file, its last lines lost.
                if drained, r.isOpen, case .success(let st) = Sys.fstat(r.fd), st.size > r.readOffset {
                    r.dirty = true
                    drained = false
                }
                let force = options.forceReleaseDeletedFileFdTimeoutSec >= 0 && r.deleted
                    && now - r.goneSince >= Int64(options.forceReleaseDeletedFileFdTimeoutSec) * 1_000_000_000
                if !r.isOpen && !force && reopenMoved(r) { continue }
                if (drained && now - r.lastActivity >= nanos(options.releaseDrainedAfterSec) && now - r.goneSince >= nanos(options.releaseDrainedAfterSec)) || force || !r.isOpen {
                    if !flushHeldBack(r, sink: sink) { return }
                    toRemove.append(r.id)
                }
                continue
            }
            if r.isOpen && r.atEOF && !r.dirty && r.partial.isEmpty && now - r.lastActivity >= idleClose {
                r.closeFD()
                openCount -= 1
                context.pipelineMetrics.filesClosed.add(1)
            }
        }
        for id in toRemove {
            guard let r = readers[id] else { continue }
            release(r, "Released file.")
            // Its inode holds another file now, maybe at the same path: follow that one as new.
            if r.replaced, let t = target(for: r.path) { consider(path: r.path, existedBefore: false, target: t) }
        }
        // Too many descriptors: close the idle ones that have been quiet longest.
        if openCount > options.maxOpenFiles {
            let idle = readers.values.filter { $0.isOpen && $0.atEOF && !$0.dirty && $0.partial.isEmpty && !$0.pathGone && !$0.deleted }
                .sorted { $0.lastActivity < $1.lastActivity }
            for r in idle.prefix(openCount - options.maxOpenFiles) {
                r.closeFD()
                openCount -= 1
                context.pipelineMetrics.filesClosed.add(1)
            }
        }
    }

    /// Emits what `r` holds back (an unterminated last line, a pending multiline group, a
    /// runtime log's unfinished record) as if its flush timeout had passed: for a file that is
    /// let go, and for a drain. False when the sink refused (the pipeline is stopping).
    func flushHeldBack(_ r: FileReader, sink: any BatchSink) -> Bool {
        let start = r.emittedOffset
        if !r.partial.isEmpty, let b = chunkReader.flushPartial(r, wallNanos: Sys.wallNanos()) {
            if let dec = r.decoder {
                if !deliver(dec.decode(b, baseOffset: start), from: r, upTo: r.readOffset, sink: sink) { return false }
            } else if !deliver(b, from: r, upTo: r.emittedOffset, sink: sink) { return false }
        }
        if let dec = r.decoder, dec.holdOffset != nil {
            if !deliver(dec.flushPending(tags: r.tags, observedNanos: Sys.wallNanos()), from: r, upTo: r.readOffset, sink: sink) { return false }
        }
        countMultiline(r)
        return true
    }

    // MARK: - Dynamic targets

    func applyPendingTargets() {
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
                    r.tags = tags(for: r.path, inode: r.id.inode, target: t)
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
                    r.tags = tags(for: r.path, inode: r.id.inode, target: t)
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
    func isHeld(_ r: FileReader) -> Bool {
        r.targetKey != "" && targets[r.targetKey]?.hold == true
    }

    /// Stops following `r`: its descriptor closed, its checkpoint entry let go (`why` is logged).
    func release(_ r: FileReader, _ why: Logger.Message) {
        guard readers.removeValue(forKey: r.id) != nil else { return }
        setHead(r, [])
        if r.isOpen { openCount -= 1; context.pipelineMetrics.filesClosed.add(1) }
        r.closeFD()
        if byPath[r.path] == r.id { byPath[r.path] = nil }
        checkpoints.release(r.id)
        logger.debug(why, metadata: ["file.path": "\(r.path)", "file.offset": "\(r.readOffset)"])
    }
}
