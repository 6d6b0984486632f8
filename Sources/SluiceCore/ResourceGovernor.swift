import Glibc
import SluiceSystem
import Synchronization

/// `mem_usage_limit` and `cpu_usage_limit`: pauses every input's reading while the process is
/// close to its memory limit or above its CPU limit, so the data waits in its source files, not
/// in memory, and the node's other work keeps its CPU. The daemon feeds it a sample of RSS and CPU
/// time every 100 ms (`observe`); inputs call `waitWhilePaused` before each read.
///
/// - Memory: paused from 90 % of the limit until RSS is back under 80 % (hysteresis). While paused,
///   freed heap is handed back to the system (`malloc_trim`). If RSS stays high although nothing
///   is read for `stuckAfterNanos` (memory that is not the pipelines' data), reading goes on at a
///   trickle (one read per 100 ms) and the stall is reported once, rather than stopping collection.
/// - What the flushers hold (batches taken from their queues, being sent or retried) is budgeted
///   at 1/16 of the limit in input bytes (batches, encoded bodies and the client's copies come to
///   about 4 times that): past it, each
///   flusher keeps only one request in flight until the total is back under (and while reading is
///   paused for memory).
/// - CPU: a budget of CPU seconds accrues at the limit (at most 300 ms of it saved up, and saved
///   up at start) and pays for what the process used; reading waits while it is overdrawn.
///   Processing and sending follow reading, so the process's average holds at the limit.
/// - A pause ends only with a sample; if the sampler stops, a waiting input goes on after a
///   second (counted), rather than waiting for good.
public final class ResourceGovernor: Sendable {
    public let memoryLimitBytes: Int
    public let cpuLimitCores: Double

    /// Why reading is paused now (a bit set: 1 memory, 2 CPU).
    private let pausedBits = Atomic<Int>(0)
    /// Reading may go on at a trickle: RSS stayed high with nothing read.
    private let trickle = Atomic<Bool>(false)
    private let state = Mutex(SampleState())
    /// Input bytes every flusher holds now, and the budget for them.
    public let heldBytes = Atomic<Int>(0)
    public let heldBytesBudget: Int
    /// How often reading was paused, by reason.
    public let memoryPauses = Atomic<Int>(0)
    public let cpuPauses = Atomic<Int>(0)
    /// Samples taken (`observe`), so that a wait can tell the sampler has stopped.
    private let observations = Atomic<Int>(0)
    /// Waits let go because no sample came for `staleAfterChecks` × 10 ms: a pause nothing
    /// samples any more cannot end, and reading must not stop for good behind it.
    public let staleReleases = Atomic<Int>(0)
    public static let staleAfterChecks = 100

    struct SampleState {
        var lastCPU: Double = -1
        var lastNanos: Int64 = 0
        var averageCores: Double = 0
        var cpuBudget: Double = 0
        var memoryPausedSince: Int64 = 0
        var stuckReported = false
    }

    static let memoryPauseRatio = 0.9
    static let memoryResumeRatio = 0.8
    public static let stuckAfterNanos: Int64 = 3_000_000_000

    public init(memoryLimitBytes: Int, cpuLimitCores: Double) {
        self.memoryLimitBytes = memoryLimitBytes
        self.cpuLimitCores = cpuLimitCores
        heldBytesBudget = max(1 << 20, memoryLimitBytes / 16)
        // A fresh process starts with its budget saved up, so that its start-up does not pause it.
        state.withLock { $0.cpuBudget = cpuLimitCores * Self.savedBudgetSeconds }
    }

    /// The most CPU time saved up, in seconds per core of the limit.
    static let savedBudgetSeconds = 0.3

    /// The flushers together hold more than their budget: none should take a second request.
    /// Also while reading is paused for memory.
    public var flushersOverBudget: Bool { heldBytes.load(ordering: .relaxed) >= heldBytesBudget || isPausedForMemory }

    /// What `observe` decided, for logging.
    public enum Change: Equatable, Sendable {
        case none
        case memoryPaused, memoryResumed, memoryStuck
        case cpuPaused, cpuResumed
    }

    /// Takes a sample (RSS in bytes, process CPU seconds, monotonic nanoseconds) and updates the
    /// pause. Returns what changed.
    @discardableResult
    public func observe(rss: Int, cpuSeconds: Double, nowNanos: Int64) -> [Change] {
        var changes: [Change] = []
        let bits = pausedBits.load(ordering: .acquiring)
        var next = bits
        state.withLock { s in
            // Memory, with hysteresis.
            let limit = Double(memoryLimitBytes)
            if bits & 1 == 0 && Double(rss) >= limit * Self.memoryPauseRatio {
                next |= 1
                s.memoryPausedSince = nowNanos
                changes.append(.memoryPaused)
            } else if bits & 1 != 0 && Double(rss) < limit * Self.memoryResumeRatio {
                next &= ~1
                s.stuckReported = false
                changes.append(.memoryResumed)
            } else if bits & 1 != 0 && nowNanos - s.memoryPausedSince >= Self.stuckAfterNanos && !s.stuckReported {
                s.stuckReported = true
                changes.append(.memoryStuck)
            }
            // CPU: a budget of CPU seconds that accrues at the limit (at most 300 ms of it saved
            // up) and pays for what was used; reading waits while it is overdrawn, so over any
            // stretch of time the process uses no more than the limit, plus what it does without
            // reading.
            if s.lastCPU >= 0 && nowNanos > s.lastNanos {
                let seconds = Double(nowNanos - s.lastNanos) / 1e9
                let used = max(0, cpuSeconds - s.lastCPU)
                s.averageCores = s.averageCores * 0.5 + used / seconds * 0.5
                s.cpuBudget = min(cpuLimitCores * Self.savedBudgetSeconds, s.cpuBudget + cpuLimitCores * seconds - used)
                if bits & 2 == 0 && s.cpuBudget < 0 {
                    next |= 2
                    changes.append(.cpuPaused)
                } else if bits & 2 != 0 && s.cpuBudget >= 0 {
                    next &= ~2
                    changes.append(.cpuResumed)
                }
            }
            s.lastCPU = cpuSeconds
            s.lastNanos = nowNanos
        }
        if changes.contains(.memoryPaused) { memoryPauses.add(1, ordering: .relaxed) }
        if changes.contains(.cpuPaused) { cpuPauses.add(1, ordering: .relaxed) }
        if changes.contains(.memoryPaused) || changes.contains(.memoryStuck) { ProcessUsage.releaseFreeMemory() }
        trickle.store(next & 1 != 0 && state.withLock { $0.stuckReported }, ordering: .releasing)
        pausedBits.store(next, ordering: .releasing)
        observations.add(1, ordering: .releasing)
        return changes
    }

    /// Whether reading is paused now (for memory or CPU).
    public var isPaused: Bool { pausedBits.load(ordering: .acquiring) != 0 }
    public var isPausedForMemory: Bool { pausedBits.load(ordering: .acquiring) & 1 != 0 }
    public var isPausedForCPU: Bool { pausedBits.load(ordering: .acquiring) & 2 != 0 }
    /// The averaged CPU use in cores, as last computed.
    public var averageCores: Double { state.withLock { $0.averageCores } }

    /// Blocks the calling input thread while reading is paused (in 10 ms steps, honouring
    /// `shouldStop`). With the trickle on, it lets one read through per 100 ms. Only a new sample
    /// ends a pause: when none has come for a second (the sampling task is not running), the
    /// wait ends anyway and is counted in `staleReleases`.
    public func waitWhilePaused(shouldStop: () -> Bool) {
        var waited = 0
        var seen = observations.load(ordering: .acquiring)
        var sinceSample = 0
        while isPaused && !shouldStop() {
            if trickle.load(ordering: .acquiring) && !isPausedForCPU && waited >= 10 { return }
            let now = observations.load(ordering: .acquiring)
            if now != seen {
                seen = now
                sinceSample = 0
            } else if sinceSample >= Self.staleAfterChecks {
                staleReleases.add(1, ordering: .relaxed)
                return
            }
            usleep(10_000)
            waited += 1
            sinceSample += 1
        }
    }
}
