import Dispatch
import Glibc
import SluiceCore
import Synchronization
import Testing

/// The decisions of `mem_usage_limit` / `cpu_usage_limit` from samples, without a process.
@Suite struct ResourceGovernorTests {
    static let mb = 1 << 20
    static let step: Int64 = 100_000_000

    @Test func memoryPausesAtNinetyPercentAndResumesUnderEighty() {
        let g = ResourceGovernor(memoryLimitBytes: 100 * Self.mb, cpuLimitCores: 8)
        #expect(g.observe(rss: 89 * Self.mb, cpuSeconds: 0, nowNanos: 0) == [])
        #expect(!g.isPaused)
        #expect(g.observe(rss: 90 * Self.mb, cpuSeconds: 0, nowNanos: Self.step) == [.memoryPaused])
        #expect(g.isPausedForMemory && g.flushersOverBudget)
        // Between 80 and 90 %: stays paused (hysteresis).
        #expect(g.observe(rss: 85 * Self.mb, cpuSeconds: 0, nowNanos: 2 * Self.step) == [])
        #expect(g.isPaused)
        #expect(g.observe(rss: 79 * Self.mb, cpuSeconds: 0, nowNanos: 3 * Self.step) == [.memoryResumed])
        #expect(!g.isPaused && !g.flushersOverBudget)
        #expect(g.memoryPauses.load(ordering: .relaxed) == 1)
    }

    @Test func memoryThatStaysHighWithNothingReadLetsReadingTrickle() {
        let g = ResourceGovernor(memoryLimitBytes: 100 * Self.mb, cpuLimitCores: 8)
        g.observe(rss: 95 * Self.mb, cpuSeconds: 0, nowNanos: 0)
        #expect(g.observe(rss: 95 * Self.mb, cpuSeconds: 0, nowNanos: ResourceGovernor.stuckAfterNanos - 1) == [])
        #expect(g.observe(rss: 95 * Self.mb, cpuSeconds: 0, nowNanos: ResourceGovernor.stuckAfterNanos) == [.memoryStuck])
        // Reported once; a reader is let through after ~100 ms instead of waiting forever.
        #expect(g.observe(rss: 95 * Self.mb, cpuSeconds: 0, nowNanos: 2 * ResourceGovernor.stuckAfterNanos) == [])
        var waited = 0
        g.waitWhilePaused(shouldStop: { waited += 1; return waited > 100 })
        #expect(waited <= 20, "the trickle let the read through (\(waited) checks)")
    }

    @Test func waitingEndsWhenTheInputStops() {
        let g = ResourceGovernor(memoryLimitBytes: 100 * Self.mb, cpuLimitCores: 8)
        g.observe(rss: 95 * Self.mb, cpuSeconds: 0, nowNanos: 0)
        var checks = 0
        g.waitWhilePaused(shouldStop: { checks += 1; return checks >= 3 })
        #expect(checks == 3)
    }

    @Test func cpuBudgetHoldsTheAverageAtTheLimit() {
        // A reader that uses one core while it may read, nothing while paused: over 100 s of
        // 100 ms samples the process's average must be the limit.
        let limit = 0.4
        let g = ResourceGovernor(memoryLimitBytes: 1 << 40, cpuLimitCores: limit)
        var cpu = 0.0
        var paused = 0
        for i in 0...1000 {
            if i > 0 { cpu += g.isPaused ? 0.0 : 0.1 }
            g.observe(rss: 0, cpuSeconds: cpu, nowNanos: Int64(i) * Self.step)
            if g.isPausedForCPU { paused += 1 }
        }
        let average = cpu / 100
        #expect(abs(average - limit) < 0.02, "average \(average) cores with a limit of \(limit)")
        #expect(paused > 500 && paused < 700)
        #expect(g.cpuPauses.load(ordering: .relaxed) > 10)
    }

    /// Pauses `g` for CPU: one core used in 100 ms against a limit of half a core, past the
    /// budget saved up at start.
    func pauseForCPU(_ g: ResourceGovernor, at start: Int64 = 0) {
        g.observe(rss: 0, cpuSeconds: 0, nowNanos: start)
        g.observe(rss: 0, cpuSeconds: 1, nowNanos: start + Self.step)
        #expect(g.isPausedForCPU)
    }

    @Test func aPauseNoSampleEndsLetsTheReaderGoAfterASecond() {
        // The sampler stopped (its task starved): the pause can never end, so the wait does.
        let g = ResourceGovernor(memoryLimitBytes: 1 << 40, cpuLimitCores: 0.5)
        pauseForCPU(g)
        let t0 = ContinuousClock.now
        var checks = 0
        g.waitWhilePaused(shouldStop: { checks += 1; return checks > 1000 })
        let waited = ContinuousClock.now - t0
        #expect(waited >= .milliseconds(900) && waited < .seconds(5), "waited \(waited)")
        #expect(g.staleReleases.load(ordering: .relaxed) == 1)
        #expect(g.isPausedForCPU, "the pause itself stands until a sample ends it")
    }

    @Test func samplesKeepAPauseGoing() {
        // While samples come (every 50 ms, still over the limit), the wait goes on: it ends here
        // only when the input stops, after 1.5 s.
        let g = ResourceGovernor(memoryLimitBytes: 1 << 40, cpuLimitCores: 0.5)
        pauseForCPU(g)
        final class Flag: Sendable { let done = Atomic<Bool>(false) }
        let flag = Flag()
        DispatchQueue.global().async {
            var i: Int64 = 2
            while !flag.done.load(ordering: .acquiring) {
                g.observe(rss: 0, cpuSeconds: Double(i), nowNanos: i * Self.step)
                i += 1
                usleep(50_000)
            }
        }
        let t0 = ContinuousClock.now
        g.waitWhilePaused(shouldStop: { ContinuousClock.now - t0 > .milliseconds(1500) })
        flag.done.store(true, ordering: .releasing)
        #expect(ContinuousClock.now - t0 >= .milliseconds(1500))
        #expect(g.staleReleases.load(ordering: .relaxed) == 0)
    }

    @Test func aFreshProcessStartsWithItsBudgetSavedUp() {
        // Its start-up (here 0.25 s of CPU in 100 ms on a 2-core limit: 0.05 s over) is paid
        // from the 0.6 s saved up, not a pause.
        let g = ResourceGovernor(memoryLimitBytes: 1 << 40, cpuLimitCores: 2)
        g.observe(rss: 0, cpuSeconds: 0, nowNanos: 0)
        g.observe(rss: 0, cpuSeconds: 0.25, nowNanos: Self.step)
        #expect(!g.isPaused)
    }

    @Test func cpuUnderTheLimitNeverPauses() {
        let g = ResourceGovernor(memoryLimitBytes: 1 << 40, cpuLimitCores: 2)
        for i in 0...100 {
            g.observe(rss: 0, cpuSeconds: Double(i) * 0.15, nowNanos: Int64(i) * Self.step)
            #expect(!g.isPaused)
        }
    }

    @Test func flushersBudgetIsASixteenthOfTheLimit() {
        let g = ResourceGovernor(memoryLimitBytes: 160 * Self.mb, cpuLimitCores: 1)
        #expect(g.heldBytesBudget == 10 * Self.mb)
        g.heldBytes.add(10 * Self.mb - 1, ordering: .relaxed)
        #expect(!g.flushersOverBudget)
        g.heldBytes.add(1, ordering: .relaxed)
        #expect(g.flushersOverBudget)
    }
}
