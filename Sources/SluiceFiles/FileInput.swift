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
    private let drainFlag = Atomic<Bool>(false)
    let waker = Waker()
    var logger: Logger { context.logger }

    // Input-thread state.
    var targets: [String: WatchTarget] = [:]
    /// New dynamic targets scanned again shortly after they appear (at 0.1, 0.4, 1 and 2 s): a
    /// directory created while its watch was being set up raises no event, and a short Job's
    /// files must not wait for the periodic rescan.
    var settleScans: [(key: String, due: Int64, step: Int)] = []
    static let settleSteps: [Int64] = [100_000_000, 300_000_000, 600_000_000, 1_000_000_000]
    let pendingTargets = Mutex<[WatchTarget]?>(nil)
    var readers: [FileIdentity: FileReader] = [:]
    var byPath: [String: FileIdentity] = [:]
    var watches: [Int32: String] = [:]
    var watchedDirs: [String: Int32] = [:]
    /// Directories not walked again because the walk had come down through them (symlink cycles).
    var directoryCyclesSkipped = 0
    var inotify: Inotify?
    var warnedPaths: [String: Int64] = [:]
    /// copytruncate detection: heads of files read and truncated lately, directories read.
    var copies = CopyDetector()
    var chunkReader: ChunkReader
    var openCount = 0
    /// Monotonic time of the last unmatched-lines warning (at most one a minute).
    var lastUnmatchedWarning: Int64 = 0

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
        chunkReader.offsetKey = options.tagKeys.offset
        if let m = options.multiline, m.isActive {
            chunkReader.multiline = m
            chunkReader.scratch = MultilineScratch(m)
        }
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

    public func requestStop() {
        stopFlag.store(true, ordering: .releasing)
        waker.wake()
    }

    /// Reads every matched file to its end (a last scan first, so a file created just now is
    /// included), emits what is held back (an unterminated last line, a pending multiline group),
    /// then stops: the sidecar's `--exit-when-file`. A stop request still ends it at once.
    public func requestDrain() {
        drainFlag.store(true, ordering: .releasing)
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

        var draining = false
        while !stopping {
            if !draining && drainFlag.load(ordering: .acquiring) {
                draining = true
                applyPendingTargets()
                var s = Set<FileIdentity>()
                scanAll(existedBefore: false, seen: &s)
                for r in readers.values { r.dirty = true }
                logger.info("Draining: reading every file to its end, then stopping.", metadata: ["input": "\(inputName)", "files": "\(readers.count)"])
            }
            let anyDirty = readers.values.contains { $0.dirty }
            let timeout: Int32 = anyDirty ? 0 : waitMillis(now: Sys.monotonicNanos())
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
            // Done when every file is read to its end; a container's files held for its metadata
            // (at most a few seconds) are waited for.
            if draining && !readers.values.contains(where: { ($0.dirty && $0.suspect == nil) || isHeld($0) }) {
                for r in readers.values {
                    if !flushHeldBack(r, sink: sink) { break }
                }
                break
            }
            housekeeping(sink: sink, now: Sys.monotonicNanos())
        }
        for r in readers.values { r.closeFD() }
        readers.removeAll()
        logger.info("Input stopped.", metadata: ["input": "\(inputName)"])
    }

    func nanos(_ s: Double) -> Int64 { Sys.nanos(seconds: s) }

    /// How long an unterminated line (a plain file's pending multiline group included) waits for
    /// more data before it is emitted; housekeeping emits, `waitMillis` wakes for it.
    var partialFlushAfter: Int64 { nanos(options.flushTimeoutSecs) }
    /// How long a runtime log's pending multiline group waits for its next record.
    var groupFlushAfter: Int64 { nanos(options.multiline?.flushTimeoutSecs ?? options.flushTimeoutSecs) }

    /// How long the loop may sleep with nothing to read: 100 ms, or less when an unterminated
    /// line or a pending multiline group comes due sooner, so it leaves at its flush timeout and
    /// not up to a tick later. A deadline already past is not waited for: housekeeping has just
    /// seen it and something else holds it (a full queue, a container's metadata), so the loop
    /// ticks as usual instead of spinning.
    func waitMillis(now: Int64) -> Int32 {
        var due = now + 100_000_000
        let flushAfter = partialFlushAfter, groupFlushAfter = self.groupFlushAfter
        for r in readers.values {
            if !r.partial.isEmpty, r.partialSince + flushAfter > now { due = min(due, r.partialSince + flushAfter) }
            if let d = r.decoder?.nextGroupDeadline(timeout: groupFlushAfter, after: now) { due = min(due, d) }
            if let d = r.decoder?.nextPartialDeadline(timeout: flushAfter, after: now) { due = min(due, d) }
        }
        // Rounded up: waking a little before the deadline would spin until it passes.
        return Int32(max(0, (due - now + 999_999) / 1_000_000))
    }

    func runSettleScans(now: Int64) {
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

    /// Logs a read, stat or watch problem with `path` at most once a minute (and counts it).
    func warnOnce(_ path: String, _ message: Logger.Message, _ e: Errno) {
        let now = Sys.monotonicNanos()
        if let last = warnedPaths[path], now - last < 60_000_000_000 { return }
        warnedPaths[path] = now
        context.pipelineMetrics.readErrors.add(1)
        logger.warning(message, metadata: ["path": "\(path)", "error": "\(e)"])
    }

    /// Number of files followed (for tests and stats).
    public var followedFileCount: Int { readers.count }
}
