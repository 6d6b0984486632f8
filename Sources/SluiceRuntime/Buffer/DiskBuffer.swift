import Glibc
import Logging
import SluiceCore
import SluiceSystem
import Synchronization

/// A flusher's disk buffer: an append-only log of frames in segment files, each frame
/// `magic | length | sequence | wall time | CRC-32C | payload`. Appends are written and fsynced
/// together by one commit thread at most `commitIntervalMs` apart (group commit); only then is the
/// appender told (`onDurable`), which is when the source may be acknowledged. The reader hands out
/// durable frames in order; `acknowledge(seq)` marks one sent; the acknowledged prefix and the
/// frames acknowledged out of order beyond it are persisted (the `acked` file, replaced atomically
/// with the next commit), and segments whose frames are all acknowledged are deleted.
///
/// Opening recovers: frames up to the persisted prefix are skipped, an unreadable tail of the last
/// segment (a crash mid-write) is truncated and its bytes counted, a complete frame whose checksum
/// fails is skipped and counted, and the scan resynchronises on the next frame's magic. Recovery
/// never fails on damaged data and never stalls; only an unusable directory is an error.
public final class DiskBuffer: @unchecked Sendable {
    // @unchecked: mutable state is in `state` (a Mutex); the segment descriptors are written only
    // by the commit thread and read (pread) by readers, which the kernel allows concurrently.
    public let directory: String
    public let options: DiskBufferOptions
    let logger: Logger

    static let magic: UInt32 = 0x4642_4C53  // "SLBF" little-endian
    static let headerSize = 28
    static let maxFrame = 1 << 30

    struct FrameRef {
        var seq: UInt64
        var segment: UInt64
        var offset: Int64
        var length: Int
        var wallNanos: Int64
    }
    struct Segment {
        var id: UInt64
        var fd: Int32
        var size: Int64
        var lastSeq: UInt64
    }
    struct Pending {
        var seq: UInt64
        var bytes: [UInt8]
        var events: Int
        /// Called with true once the frame is fsynced, or with false when writing ended (shutdown)
        /// while the disk refused it.
        var onDurable: (@Sendable (Bool) -> Void)?
    }
    struct State {
        var segments: [Segment] = []
        /// Durable frames not yet acknowledged, in order; `head` is the first live one.
        var frames: [FrameRef] = []
        var head = 0
        /// Index (into `frames`) of the next frame to hand out.
        var nextRead = 0
        var acked = Set<UInt64>()
        var ackedUpTo: UInt64 = 0
        var ackDirty = false
        var pending: [Pending] = []
        var nextSeq: UInt64 = 1
        var bytes: Int64 = 0
        var pendingBytes = 0
        /// Events of each frame not yet acknowledged (pending ones included; a recovered frame
        /// once it is read back).
        var eventsBySeq: [UInt64: Int] = [:]
        var closed = false
        /// The last commit failed (disk full, I/O error): appends wait (or drop, with
        /// `drop_newest`) until one succeeds, so what waits is held by the sources, not in memory.
        var writeFailing = false
        var writerDone = false
        var spaceWaiters: [CheckedContinuation<Void, Never>] = []
        /// The reader waiting for a frame, with the timed wait it belongs to (0: `next`'s wait,
        /// which has no timeout).
        var readWaiter: (continuation: CheckedContinuation<Void, Never>, token: UInt64)?
        /// The last timed wait's token, and the last whose timeout has passed.
        var lastWaitToken: UInt64 = 0
        var expiredWaitToken: UInt64 = 0
        var lastError: String?
    }
    private let state = Mutex(State())
    /// Held while an acknowledgement writes the saved position after the commit thread stopped.
    private let ackPersistTurn = Mutex(())
    private let waker = Waker()
    /// Opened when the commit thread has written everything and stopped.
    private let finished = Latch()

    // Counters.
    public let corruptFrames = Atomic<Int>(0)
    public let truncatedBytes = Atomic<Int>(0)
    public let droppedEvents = Atomic<Int>(0)
    public let fsyncs = Atomic<Int>(0)
    public let writeErrors = Atomic<Int>(0)

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens (creating) the buffer in `directory`, recovers what is there and starts the commit thread.
    public init(directory: String, options: DiskBufferOptions, logger: Logger) throws {
        self.directory = directory
        self.options = options
        self.logger = logger
        if case .failure(let e) = Sys.makeDirectories(directory) { throw OpenError(description: "disk buffer \(directory): \(e)") }
        try recover()
        // The thread holds the buffer only while it works: a buffer dropped without
        // `finishWriting` (a pipeline that failed to build) still lets its thread end.
        startThread(name: "buf:\(directory.split(separator: "/").suffix(2).joined(separator: "/"))") { [weak self] in
            while let me = self, me.commitStep() {}
        }
    }

    deinit {
        state.withLock { s in for seg in s.segments { close(seg.fd) } }
    }

    // MARK: - Recovery

    private func recover() throws {
        let (ackedUpTo, ackedBeyond) = readAcked()
        guard case .success(let entries) = Sys.listDirectory(directory) else { throw OpenError(description: "cannot list \(directory)") }
        let ids = entries.compactMap { e -> UInt64? in
            guard e.name.hasSuffix(".seg") else { return nil }
            return UInt64(e.name.dropLast(4))
        }.sorted()
        var s = State()
        s.ackedUpTo = ackedUpTo
        var maxSeq = ackedUpTo
        for (i, id) in ids.enumerated() {
            let path = segmentPath(id)
            let fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw OpenError(description: "disk buffer segment \(path): \(Errno(errno))") }
            var st = stat()
            fstat(fd, &st)
            let size = Int64(st.st_size)
            var (frames, end) = scan(fd: fd, size: size)
            let isLast = i == ids.count - 1
            if end < size {
                // A tail that is not a whole frame: a crash mid-write (or damage at the very end).
                truncatedBytes.add(Int(size - end), ordering: .relaxed)
                if isLast { _ = ftruncate(fd, off_t(end)) }
                logger.warning("Disk buffer: an unreadable tail was cut off.", metadata: ["segment": "\(path)", "bytes": "\(size - end)"])
            }
            frames.removeAll { $0.seq <= ackedUpTo || ackedBeyond.contains($0.seq) }
            var lastSeq: UInt64 = id > 0 ? id - 1 : 0
            for var f in frames {
                f.segment = id
                lastSeq = max(lastSeq, f.seq)
                maxSeq = max(maxSeq, f.seq)
                s.frames.append(f)
                s.bytes += Int64(Self.headerSize + f.length)
            }
            s.segments.append(Segment(id: id, fd: fd, size: isLast ? end : size, lastSeq: lastSeq))
        }
        // Frames arrive in order within a segment and segments are named by their first sequence,
        // but a resynchronised scan may yield repeats; keep each sequence once, in order.
        var seen = Set<UInt64>()
        s.frames = s.frames.sorted { $0.seq < $1.seq }.filter { seen.insert($0.seq).inserted }
        s.bytes = s.segments.reduce(0) { $0 + $1.size }
        // A frame acknowledged out of order is gone from the segments, but its sequence stays in
        // the saved set until the prefix reaches it: the next sequence starts past it, else a new
        // frame would take a number already marked delivered (and be skipped, or its segment
        // deleted, once the frames before it are acknowledged).
        s.nextSeq = max(maxSeq, ackedBeyond.max() ?? 0) + 1
        s.acked = ackedBeyond
        Self.normalizePrefix(&s)
        // Events per frame are known only after decoding; count them lazily as frames are read.
        state.withLock { $0 = s }
        // Segments already fully acknowledged go at once.
        deleteAcknowledgedSegments()
        if !s.frames.isEmpty {
            logger.info("Disk buffer: replaying what the destination has not acknowledged.", metadata: [
                "directory": "\(directory)", "frames": "\(s.frames.count)", "bytes": "\(s.bytes)"])
        }
    }

    /// The valid frames of a segment and where the readable part ends.
    private func scan(fd: Int32, size: Int64) -> ([FrameRef], Int64) {
        var frames: [FrameRef] = []
        var off: Int64 = 0
        var header = [UInt8](repeating: 0, count: Self.headerSize)
        var payload: [UInt8] = []
        var end: Int64 = 0
        while off + Int64(Self.headerSize) <= size {
            if let f = readFrame(fd: fd, at: off, size: size, header: &header, payload: &payload) {
                switch f {
                case .valid(let ref):
                    frames.append(ref)
                    off += Int64(Self.headerSize + ref.length)
                    end = off
                    continue
                case .badChecksum(let length):
                    // A whole frame whose bytes changed: skipped and counted.
                    corruptFrames.add(1, ordering: .relaxed)
                    off += Int64(Self.headerSize + length)
                    end = off
                    continue
                }
            }
            // Not a frame here: look for the next valid frame's magic.
            guard let next = resync(fd: fd, from: off + 1, size: size, header: &header, payload: &payload) else { break }
            corruptFrames.add(1, ordering: .relaxed)
            off = next
        }
        return (frames, end)
    }

    enum ScannedFrame {
        case valid(FrameRef)
        case badChecksum(Int)
    }

    private func readFrame(fd: Int32, at off: Int64, size: Int64, header: inout [UInt8], payload: inout [UInt8]) -> ScannedFrame? {
        guard pread(fd, &header, Self.headerSize, off_t(off)) == Self.headerSize else { return nil }
        let (magic, length, seq, wall, crc) = header.withUnsafeBytes { h in
            (UInt32(littleEndian: h.loadUnaligned(as: UInt32.self)), Int(UInt32(littleEndian: h.loadUnaligned(fromByteOffset: 4, as: UInt32.self))),
             UInt64(littleEndian: h.loadUnaligned(fromByteOffset: 8, as: UInt64.self)), Int64(littleEndian: h.loadUnaligned(fromByteOffset: 16, as: Int64.self)),
             UInt32(littleEndian: h.loadUnaligned(fromByteOffset: 24, as: UInt32.self)))
        }
        guard magic == Self.magic, length <= Self.maxFrame, off + Int64(Self.headerSize + length) <= size else { return nil }
        if payload.count < length { payload = [UInt8](repeating: 0, count: length) }
        guard length == 0 || pread(fd, &payload, length, off_t(off + Int64(Self.headerSize))) == length else { return nil }
        let computed = header.withUnsafeBytes { h in
            payload.withUnsafeBytes { p in
                CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: h[4..<24])), UnsafeRawBufferPointer(rebasing: p[0..<length]))
            }
        }
        guard computed == crc else { return .badChecksum(length) }
        return .valid(FrameRef(seq: seq, segment: 0, offset: off, length: length, wallNanos: wall))
    }

    private func resync(fd: Int32, from: Int64, size: Int64, header: inout [UInt8], payload: inout [UInt8]) -> Int64? {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var base = from
        let m: [UInt8] = withUnsafeBytes(of: Self.magic.littleEndian) { Array($0) }
        while base + Int64(Self.headerSize) <= size {
            let n = pread(fd, &chunk, chunk.count, off_t(base))
            guard n >= 4 else { return nil }
            for i in 0...(n - 4) where chunk[i] == m[0] && chunk[i + 1] == m[1] && chunk[i + 2] == m[2] && chunk[i + 3] == m[3] {
                if case .valid = readFrame(fd: fd, at: base + Int64(i), size: size, header: &header, payload: &payload) { return base + Int64(i) }
            }
            base += Int64(n - 3)
        }
        return nil
    }

    /// The prefix is everything before the first frame not yet acknowledged (durable or pending):
    /// gaps (frames lost to damage, or acknowledged before a restart) are covered too.
    static func normalizePrefix(_ s: inout State) {
        let nextLive = s.head < s.frames.count ? s.frames[s.head].seq : (s.pending.first?.seq ?? s.nextSeq)
        if nextLive > 0 { s.ackedUpTo = max(s.ackedUpTo, nextLive - 1) }
        s.acked = s.acked.filter { $0 > s.ackedUpTo }
    }

    // MARK: - Appending

    public enum AppendResult: Sendable, Equatable {
        /// Queued for the next commit; `onDurable` runs once it is fsynced.
        case appended
        /// Dropped and counted: `drop_newest` with the buffer full, or a batch larger than the buffer.
        case dropped
        /// Writing has finished (shutdown): not taken.
        case closed
    }

    /// Bytes appended and not yet written that one commit takes at most before appends wait.
    static let maxPendingBytes = 32 << 20

    enum Room { case yes, full, busy }

    /// Whether a frame of `size` bytes may be queued now: full when it does not fit in `maxBytes`
    /// with what is on disk and pending, or while the disk refuses writes; busy (wait, even with
    /// `drop_newest`) while the next commit already holds `maxPendingBytes` (one frame always may).
    private func room(_ s: State, _ size: Int) -> Room {
        if s.writeFailing || s.bytes + Int64(s.pendingBytes + size) > Int64(options.maxBytes) { return .full }
        return s.pendingBytes == 0 || s.pendingBytes + size <= Self.maxPendingBytes ? .yes : .busy
    }

    /// Appends one batch. It is on disk, fsynced, when `onDurable(true)` runs (on the commit
    /// thread). With `block` it waits for space, and while the disk refuses writes (until
    /// `finishWriting`); with `drop_newest` it drops then.
    public func append(_ payload: [UInt8], events: Int, onDurable: (@Sendable (Bool) -> Void)?) async -> AppendResult {
        let size = Self.headerSize + payload.count
        if size > options.maxBytes {
            droppedEvents.add(events, ordering: .relaxed)
            return .dropped
        }
        while true {
            let fits = state.withLock { s -> Room? in
                if s.closed { return nil }
                let r = room(s, size)
                if r == .yes {
                    s.pending.append(Pending(seq: s.nextSeq, bytes: payload, events: events, onDurable: onDurable))
                    s.eventsBySeq[s.nextSeq] = events
                    s.nextSeq += 1
                    s.pendingBytes += size
                }
                return r
            }
            switch fits {
            case .yes:
                waker.wake()
                return .appended
            case .none:
                return .closed
            case .full, .busy:
                if fits == .full && options.whenFull == .dropNewest {
                    droppedEvents.add(events, ordering: .relaxed)
                    return .dropped
                }
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { s -> Bool in
                        // Any change (room now, or full became busy or the reverse) is looked at again.
                        if s.closed || room(s, size) != fits { return true }
                        s.spaceWaiters.append(c)
                        return false
                    }
                    if now { c.resume() }
                }
            }
        }
    }

    /// No more appends; the commit thread writes what is pending and stops. The reader then
    /// returns nil once every durable frame has been handed out.
    public func finishWriting() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            defer { s.spaceWaiters = [] }
            return s.spaceWaiters
        }
        for w in waiters { w.resume() }
        waker.wake()
    }

    /// Waits until the commit thread has written everything and stopped.
    public func waitUntilFinished() async {
        await finished.wait()
    }

    // MARK: - Reading

    /// The next durable frame not yet handed out: its sequence and batch. Waits for one; nil when
    /// writing has finished and every frame was handed out. A frame that cannot be decoded is
    /// counted as corrupt, acknowledged and skipped.
    public func next() async -> (seq: UInt64, batch: EventBatch)? {
        while true {
            enum Step { case frame(FrameRef, Int32), wait, end }
            let step = state.withLock { s -> Step in
                if s.nextRead < s.frames.count {
                    let f = s.frames[s.nextRead]
                    s.nextRead += 1
                    let fd = s.segments.first { $0.id == f.segment }?.fd ?? -1
                    return .frame(f, fd)
                }
                return s.writerDone ? .end : .wait
            }
            switch step {
            case .end:
                return nil
            case .wait:
                await suspendForFrame(token: 0)
            case .frame(let f, let fd):
                if let b = readBack(f, fd: fd) { return (f.seq, b) }
            }
        }
    }

    /// Waits until a durable frame is unread, writing has finished, or `timeout` has passed
    /// (woken by the commit that makes a frame durable, not by polling).
    public func waitForFrame(timeout: Duration) async {
        let token = state.withLock { s in
            s.lastWaitToken += 1
            return s.lastWaitToken
        }
        // The timer is a child task: it ends the wait at the timeout, and is cancelled once the
        // wait ends first. Whoever takes the waiter out of the state resumes it, once.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // Also when the waiting task was cancelled: a timed wait never becomes an untimed
                // one. Expiring a wait that already ended is a no-op.
                try? await Task.sleep(for: timeout)
                expireReadWait(token)
            }
            await suspendForFrame(token: token)
            group.cancelAll()
        }
    }

    /// Suspends as the reader until a commit, the writer's end or (for a timed wait, `token` > 0)
    /// its expiry resumes it; at once if one of them already happened.
    private func suspendForFrame(token: UInt64) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.nextRead < s.frames.count || s.writerDone || (token > 0 && s.expiredWaitToken >= token) { return true }
                s.readWaiter = (c, token)
                return false
            }
            if now { c.resume() }
        }
    }

    private func expireReadWait(_ token: UInt64) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.expiredWaitToken = max(s.expiredWaitToken, token)
            guard let w = s.readWaiter, w.token == token else { return nil }
            s.readWaiter = nil
            return w.continuation
        }
        waiter?.resume()
    }

    /// `next` without waiting: nil when no durable frame is unread right now.
    public func tryNext() -> (seq: UInt64, batch: EventBatch)? {
        while true {
            let got = state.withLock { s -> (FrameRef, Int32)? in
                guard s.nextRead < s.frames.count else { return nil }
                let f = s.frames[s.nextRead]
                s.nextRead += 1
                return (f, s.segments.first { $0.id == f.segment }?.fd ?? -1)
            }
            guard let (f, fd) = got else { return nil }
            if let b = readBack(f, fd: fd) { return (f.seq, b) }
        }
    }

    /// A handed-out frame's batch; nil when it cannot be read back or decoded (counted as corrupt,
    /// logged, and acknowledged so it is not tried again).
    private func readBack(_ f: FrameRef, fd: Int32) -> EventBatch? {
        if let b = decode(f, fd: fd) { return b }
        corruptFrames.add(1, ordering: .relaxed)
        logger.error("Disk buffer: a frame could not be read back; it is skipped and counted.", metadata: ["seq": "\(f.seq)", "directory": "\(directory)"])
        acknowledge(f.seq)
        return nil
    }

    private func decode(_ f: FrameRef, fd: Int32) -> EventBatch? {
        guard fd >= 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: f.length)
        guard f.length == 0 || pread(fd, &bytes, f.length, off_t(f.offset + Int64(Self.headerSize))) == f.length else { return nil }
        let b = try? bytes.withUnsafeBytes { try BatchCodec.decode($0) }
        if let b { state.withLock { s in if s.eventsBySeq[f.seq] == nil { s.eventsBySeq[f.seq] = b.events.count } } }
        return b
    }

    /// Marks frame `seq` sent (delivered or rejected for good). Out of order is fine: the persisted
    /// position is the contiguous prefix.
    public func acknowledge(_ seq: UInt64) {
        let advanced = state.withLock { s -> Bool in
            guard seq > s.ackedUpTo else { return false }
            s.acked.insert(seq)
            s.eventsBySeq[seq] = nil
            while s.head < s.frames.count, s.acked.contains(s.frames[s.head].seq) {
                s.head += 1
            }
            Self.normalizePrefix(&s)
            if s.head > 4096 && s.head * 2 > s.frames.count {
                s.frames.removeFirst(s.head)
                s.nextRead = max(0, s.nextRead - s.head)
                s.head = 0
            }
            s.ackDirty = true
            return true
        }
        guard advanced else { return }
        if finished.isOpen {
            // The commit thread has stopped (writing finished): persist here. Deliveries end
            // concurrently; one at a time writes the file (they share its temporary), each with
            // the position as it is when its turn comes, so the last write is the newest.
            ackPersistTurn.withLock { _ in
                let (upTo, beyond) = state.withLock { s in (s.ackedUpTo, s.acked.sorted()) }
                persistAck(upTo, beyond)
            }
            deleteAcknowledgedSegments()
        } else {
            waker.wake()
        }
    }

    // MARK: - Commit thread

    private let lastCommit = Atomic<Int64>(0)

    /// One turn of the commit thread; false once writing has finished and everything is written.
    private func commitStep() -> Bool {
        var pfd = pollfd(fd: waker.fd, events: Int16(POLLIN), revents: 0)
        let interval = Int64(options.commitIntervalMs) * 1_000_000
        let (hasWork, closed) = state.withLock { s in (!s.pending.isEmpty || s.ackDirty, s.closed) }
        if !hasWork && closed {
            finishCommitThread()
            return false
        }
        if !hasWork {
            _ = poll(&pfd, 1, 200)
            waker.drain()
            return true
        }
        // Group commit: let appends gather for up to the interval since the last commit.
        let wait = lastCommit.load(ordering: .relaxed) + interval - Sys.monotonicNanos()
        if wait > 0 && !closed {
            _ = poll(&pfd, 1, Int32(wait / 1_000_000))
            waker.drain()
        }
        let ok = commit()
        lastCommit.store(Sys.monotonicNanos(), ordering: .relaxed)
        if !ok && closed {
            // Writing has finished and the disk still refuses: what is pending is given back to
            // its sources unwritten (they read it again on the next start).
            abandonPending()
        }
        return true
    }

    private func abandonPending() {
        let gone = state.withLock { s -> [Pending] in
            defer { s.pending = []; s.pendingBytes = 0 }
            for p in s.pending { s.eventsBySeq[p.seq] = nil }
            return s.pending
        }
        if !gone.isEmpty {
            logger.error("Disk buffer: batches the disk refused are left to their sources at shutdown.", metadata: [
                "directory": "\(directory)", "batches": "\(gone.count)"])
        }
        for p in gone { p.onDurable?(false) }
    }

    private func finishCommitThread() {
        commit()
        state.withLock { s in s.writerDone = true }
        let reader = state.withLock { s -> CheckedContinuation<Void, Never>? in
            defer { s.readWaiter = nil }
            return s.readWaiter?.continuation
        }
        reader?.resume()
        finished.open()
    }

    /// Writes the pending frames, fsyncs, persists the acknowledged position, deletes finished
    /// segments, then tells the appenders and wakes the reader. False when the pending frames
    /// could not be written (they stay pending, and appends wait until a commit succeeds).
    @discardableResult
    private func commit() -> Bool {
        let (pending, ackDirty, ackedUpTo, beyond) = state.withLock { s -> ([Pending], Bool, UInt64, [UInt64]) in
            defer { s.ackDirty = false }
            // After a failed write (disk full) one frame per try: as many as fit go in, and the
            // rest waits for space, instead of an all-or-nothing commit that never fits.
            return (s.writeFailing ? Array(s.pending.prefix(1)) : s.pending, s.ackDirty, s.ackedUpTo, s.ackDirty ? s.acked.sorted() : [])
        }
        var written: [FrameRef] = []
        var failed = false
        if !pending.isEmpty {
            var buf: [UInt8] = []
            var segment = currentSegment(firstSeq: pending[0].seq)
            for p in pending {
                let frameSize = Self.headerSize + p.bytes.count
                // Roll when this frame would take the segment past its size (a segment holds at
                // least one frame); the segment's size is what is on disk plus this commit's buffer.
                if let seg = segment, seg.size + Int64(buf.count) > 0, seg.size + Int64(buf.count + frameSize) > Int64(options.effectiveSegmentBytes) {
                    if !flush(&buf, to: seg.id) { failed = true; break }
                    segment = rollSegment(firstSeq: p.seq)
                }
                guard let seg = segment else { failed = true; break }
                let offset = seg.size + Int64(buf.count)
                appendFrame(p, to: &buf)
                written.append(FrameRef(seq: p.seq, segment: seg.id, offset: offset, length: p.bytes.count, wallNanos: Sys.wallNanos()))
            }
            if !failed, let seg = segment, !flush(&buf, to: seg.id) { failed = true }
            if failed {
                // Nothing of this commit counts: cut the segments back and try again later.
                rollBack(written)
                written = []
            }
            let recovered = state.withLock { s -> Bool in
                defer { s.writeFailing = failed }
                return s.writeFailing && !failed
            }
            if failed { usleep(100_000) }
            if recovered {
                state.withLock { $0.lastError = nil }
                logger.notice("Disk buffer: writing again.", metadata: ["directory": "\(directory)"])
            }
        }
        if ackDirty { persistAck(ackedUpTo, beyond) }
        var toNotify: [Pending] = []
        if !written.isEmpty {
            toNotify = state.withLock { s -> [Pending] in
                let done = Array(s.pending.prefix(written.count))
                s.pending.removeFirst(written.count)
                for (p, w) in zip(done, written) {
                    s.frames.append(w)
                    s.pendingBytes -= Self.headerSize + p.bytes.count
                }
                return done
            }
        }
        deleteAcknowledgedSegments()
        for p in toNotify { p.onDurable?(true) }
        if !written.isEmpty {
            let (reader, appenders) = state.withLock { s -> (CheckedContinuation<Void, Never>?, [CheckedContinuation<Void, Never>]) in
                defer { s.readWaiter = nil; s.spaceWaiters = [] }
                return (s.readWaiter?.continuation, s.spaceWaiters)
            }
            reader?.resume()
            // Room in the next commit (and the disk takes writes again).
            for w in appenders { w.resume() }
        }
        return !failed
    }

    private func appendFrame(_ p: Pending, to buf: inout [UInt8]) {
        let start = buf.count
        withUnsafeBytes(of: Self.magic.littleEndian) { buf.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(p.bytes.count).littleEndian) { buf.append(contentsOf: $0) }
        withUnsafeBytes(of: p.seq.littleEndian) { buf.append(contentsOf: $0) }
        withUnsafeBytes(of: Sys.wallNanos().littleEndian) { buf.append(contentsOf: $0) }
        let crc = buf.withUnsafeBytes { h in
            p.bytes.withUnsafeBytes { CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: h[(start + 4)..<(start + 24)])), $0) }
        }
        withUnsafeBytes(of: crc.littleEndian) { buf.append(contentsOf: $0) }
        buf.append(contentsOf: p.bytes)
    }

    /// Writes `buf` at the end of segment `id` and fsyncs it; false (logged, counted) on error.
    private func flush(_ buf: inout [UInt8], to id: UInt64) -> Bool {
        guard !buf.isEmpty else { return true }
        guard let seg = state.withLock({ s in s.segments.first { $0.id == id } }) else { return false }
        let ok = buf.withUnsafeBytes { b -> Bool in
            var done = 0
            while done < b.count {
                let n = pwrite(seg.fd, b.baseAddress! + done, b.count - done, off_t(seg.size + Int64(done)))
                if n < 0 { if errno == EINTR { continue }; report("write", Errno(errno)); return false }
                done += n
            }
            return true
        }
        guard ok else { return false }
        guard fdatasync(seg.fd) == 0 else { report("fsync", Errno(errno)); return false }
        fsyncs.add(1, ordering: .relaxed)
        let added = Int64(buf.count)
        state.withLock { s in
            if let i = s.segments.firstIndex(where: { $0.id == id }) {
                s.segments[i].size += added
                s.bytes += added
            }
        }
        buf.removeAll(keepingCapacity: true)
        return true
    }

    private func report(_ what: String, _ e: Errno) {
        writeErrors.add(1, ordering: .relaxed)
        let text = "\(what): \(e)"
        if state.withLock({ s in defer { s.lastError = text }; return s.lastError != text }) {
            logger.error("Disk buffer cannot \(what); it is retried, and meanwhile new batches wait (block) or are dropped and counted (drop_newest): nothing is acknowledged to its source before it is on disk.",
                         metadata: ["directory": "\(directory)", "error": "\(e)"])
        }
    }

    /// Cuts segments back to before the frames of a failed commit (a partial write must not stay).
    private func rollBack(_ frames: [FrameRef]) {
        state.withLock { s in
            for i in s.segments.indices {
                let id = s.segments[i].id
                if let first = frames.first(where: { $0.segment == id }) {
                    _ = ftruncate(s.segments[i].fd, off_t(first.offset))
                    s.bytes -= max(0, s.segments[i].size - first.offset)
                    s.segments[i].size = first.offset
                }
            }
        }
    }

    private func segmentPath(_ id: UInt64) -> String {
        let digits = String(id)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }

    private func currentSegment(firstSeq: UInt64) -> Segment? {
        if let last = state.withLock({ $0.segments.last }) { return last }
        return rollSegment(firstSeq: firstSeq)
    }

    /// A new segment named by its first sequence (the directory fsynced so the name is durable).
    private func rollSegment(firstSeq: UInt64) -> Segment? {
        let fd = open(segmentPath(firstSeq), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { report("create a segment", Errno(errno)); return nil }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
        let seg = Segment(id: firstSeq, fd: fd, size: 0, lastSeq: firstSeq)
        state.withLock { $0.segments.append(seg) }
        return seg
    }

    /// `acked`: the acknowledged prefix, then the sequences acknowledged beyond it, then a
    /// CRC-32C of all that; replaced atomically (write, fsync, rename).
    private func persistAck(_ upTo: UInt64, _ beyond: [UInt64]) {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: upTo.littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(beyond.count).littleEndian) { bytes.append(contentsOf: $0) }
        for s in beyond { withUnsafeBytes(of: s.littleEndian) { bytes.append(contentsOf: $0) } }
        let crc = CRC32C.checksum(bytes)
        withUnsafeBytes(of: crc.littleEndian) { bytes.append(contentsOf: $0) }
        if case .failure(let e) = Sys.writeAtomically(directory + "/acked", bytes, durable: true) {
            report("persist the acknowledged position", e.errno)
            state.withLock { $0.ackDirty = true }
        }
    }

    private func readAcked() -> (UInt64, Set<UInt64>) {
        guard case .success(let b) = Sys.readFile(directory + "/acked", limit: 64 << 20), b.count >= 16 else { return (0, []) }
        let crc = b.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: b.count - 4, as: UInt32.self)) }
        guard CRC32C.checksum(Array(b[0..<(b.count - 4)])) == crc else {
            logger.error("Disk buffer: the acknowledged position is damaged; everything in the buffer is sent again.", metadata: ["directory": "\(directory)"])
            return (0, [])
        }
        return b.withUnsafeBytes { p in
            let upTo = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
            let n = Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            guard 12 + n * 8 + 4 == b.count else { return (upTo, []) }
            return (upTo, Set((0..<n).map { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 12 + $0 * 8, as: UInt64.self)) }))
        }
    }

    /// Deletes every segment whose frames are all acknowledged: those before the next segment's
    /// first sequence, and the last one too when every durable frame is acknowledged (the next
    /// commit starts a new segment; on a full disk this is what makes room).
    private func deleteAcknowledgedSegments() {
        let (gone, waiters) = state.withLock { s -> ([Segment], [CheckedContinuation<Void, Never>]) in
            var gone: [Segment] = []
            // A segment's frames all precede the next segment's first sequence.
            while s.segments.count > 1, s.segments[1].id - 1 <= s.ackedUpTo {
                let seg = s.segments.removeFirst()
                s.bytes -= seg.size
                gone.append(seg)
            }
            // (Pending frames, if any, go to a new segment: this runs on the commit thread.)
            if s.segments.count == 1, s.head >= s.frames.count, s.segments[0].size > 0 {
                let seg = s.segments.removeFirst()
                s.bytes -= seg.size
                gone.append(seg)
            }
            if gone.isEmpty { return ([], []) }
            defer { s.spaceWaiters = [] }
            return (gone, s.spaceWaiters)
        }
        for seg in gone {
            close(seg.fd)
            unlink(segmentPath(seg.id))
        }
        for w in waiters { w.resume() }
    }

    /// Durable frames not acknowledged (handed out or not), in order.
    public var unacknowledgedSequences: [UInt64] {
        state.withLock { s in s.frames[s.head...].map(\.seq).filter { !s.acked.contains($0) } }
    }

    /// Writing has finished and every frame has been handed out.
    public var isDrained: Bool { state.withLock { $0.writerDone && $0.nextRead >= $0.frames.count } }

    // MARK: - State for metrics and tests

    public struct Usage: Sendable {
        public var bytes: Int
        public var segments: Int
        /// Frames written and not acknowledged (handed out or not).
        public var frames: Int
        public var events: Int
        /// Wall-clock nanoseconds of the oldest unacknowledged frame's append; 0 when none.
        public var oldestWallNanos: Int64
        public var ackedUpTo: UInt64
    }

    public var usage: Usage {
        state.withLock { s in
            let live = s.frames.count - s.head
            return Usage(bytes: Int(s.bytes) + s.pendingBytes, segments: s.segments.count, frames: live + s.pending.count, events: s.eventsBySeq.values.reduce(0, +) - s.pending.reduce(0) { $0 + $1.events },
                         oldestWallNanos: live > 0 ? s.frames[s.head].wallNanos : 0, ackedUpTo: s.ackedUpTo)
        }
    }
}
