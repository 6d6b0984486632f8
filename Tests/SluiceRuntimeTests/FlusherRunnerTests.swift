import SluiceCore
@testable import SluiceRuntime
import SluiceTesting
import Synchronization
import Testing

/// The runner against a scripted flusher: every batch finished exactly once with the right status,
/// retries without loss or duplicates, partial results, requests in flight, the retry limit,
/// batching, and the shutdown deadline.
@Suite struct FlusherRunnerTests {
    static let fast = Backoff(initial: .milliseconds(1), maximum: .milliseconds(5), jitter: 0)

    /// Runs `flusher` over `batches` (queued up front, queue closed) and returns the context used.
    @discardableResult
    func run<F: Flusher>(_ flusher: F, _ batches: [EventBatch], cancelAfter: Duration? = nil) async -> PluginContext {
        let q = BatchQueue(highWatermark: 64 << 20)
        for b in batches { q.push(b) }
        q.close()
        let ctx = testContext(kind: .flusher, type: "flusher_scripted")
        let runner = FlusherRunner(flusher: flusher, queue: q, context: ctx)
        let task = Task { await runner.run() }
        if let c = cancelAfter {
            try? await Task.sleep(for: c)
            task.cancel()
        }
        await task.value
        return ctx
    }

    func lines(_ prefix: String, _ n: Int) -> [String] { (0..<n).map { "\(prefix)-\($0)" } }

    @Test func retriesThenRecoversWithoutLossOrDuplicates() async {
        let tb = TestBatches()
        let batches = (0..<50).map { tb.batch($0, lines("b\($0)", 10)) }
        let failures = Atomic<Int>(0)
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 25, backoff: Self.fast)) { _, _ in
            // The first 7 sends fail, whatever they carry.
            failures.add(1, ordering: .relaxed).newValue <= 7 ? .retry(after: nil, reason: "down") : .delivered
        }
        let ctx = await run(f, batches)
        let expected = (0..<50).flatMap { lines("b\($0)", 10) }
        #expect(f.delivered == expected)
        for i in 0..<50 { #expect(tb.statuses(of: i) == [.delivered]) }
        #expect(ctx.metrics.requestsRetried.current == 7)
        #expect(ctx.metrics.sentEvents.current == 500)
        #expect(ctx.metrics.receivedEvents.current == 500)
        #expect(ctx.metrics.errors.current == 7)
    }

    @Test func rejectedRequestIsFinishedAndCountedAndDoesNotBlock() async {
        let tb = TestBatches()
        let batches = (0..<10).map { tb.batch($0, $0 == 3 ? ["bad"] : ["good-\($0)"]) }
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 1, backoff: Self.fast)) { _, r in
            r.lines.contains("bad") ? .rejected(reason: "400 bad document") : .delivered
        }
        let ctx = await run(f, batches)
        #expect(tb.statuses(of: 3) == [.rejected])
        for i in 0..<10 where i != 3 { #expect(tb.statuses(of: i) == [.delivered]) }
        #expect(f.delivered.count == 9)
        #expect(ctx.metrics.discardedByReason == ["rejected": 1])
        #expect(ctx.metrics.requestsRejected.current == 1)
    }

    @Test func partialRetriesTheRestAndCountsTheRejected() async {
        let tb = TestBatches()
        let b = tb.batch(0, ["ok-1", "reject-2", "retry-3", "ok-4", "retry-5"])
        let f = ScriptedFlusher(delivery: DeliveryOptions(backoff: Self.fast)) { attempt, r in
            attempt == 1 ? ScriptedFlusher.partial(r) : .delivered
        }
        let ctx = await run(f, [b])
        #expect(f.delivered == ["ok-1", "ok-4", "retry-3", "retry-5"])
        #expect(tb.statuses(of: 0) == [.rejected])
        #expect(ctx.metrics.discardedByReason == ["rejected": 1])
        #expect(ctx.metrics.sentEvents.current == 4)
        #expect(ctx.metrics.requestsPartial.current == 1)
    }

    @Test func keepsNRequestsInFlightAndFinishesOutOfOrder() async {
        let tb = TestBatches()
        let batches = (0..<40).map { tb.batch($0, ["l\($0)"]) }
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 1, concurrency: 4, backoff: Self.fast),
                                delayMs: 1...20)
        await run(f, batches)
        #expect(f.maxConcurrent == 4)
        #expect(Set(f.delivered) == Set((0..<40).map { "l\($0)" }))
        #expect(f.delivered.count == 40)
        #expect(f.delivered != (0..<40).map { "l\($0)" }, "with random delays some finish out of order")
        for i in 0..<40 { #expect(tb.statuses(of: i) == [.delivered]) }
    }

    @Test func concurrencyOneSendsInOrder() async {
        let tb = TestBatches()
        let batches = (0..<40).map { tb.batch($0, ["l\($0)"]) }
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 1, concurrency: 1, backoff: Self.fast),
                                delayMs: 0...3)
        await run(f, batches)
        #expect(f.maxConcurrent == 1)
        #expect(f.delivered == (0..<40).map { "l\($0)" })
    }

    @Test func retryLimitRejectsAndCounts() async {
        let tb = TestBatches()
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxRetries: 2, backoff: Self.fast)) { _, _ in .retry(after: nil, reason: "503") }
        let ctx = await run(f, [tb.batch(0, ["a", "b"])])
        #expect(f.sends == 3)
        #expect(tb.statuses(of: 0) == [.rejected])
        #expect(ctx.metrics.discardedByReason == ["retry_limit": 2])
    }

    @Test func retryAfterIsHonoured() async {
        let tb = TestBatches()
        let f = ScriptedFlusher(delivery: DeliveryOptions(backoff: Self.fast)) { attempt, _ in
            attempt == 1 ? .retry(after: .milliseconds(300), reason: "429") : .delivered
        }
        let t0 = ContinuousClock.now
        await run(f, [tb.batch(0, ["a"])])
        #expect(ContinuousClock.now - t0 >= .milliseconds(300))
        #expect(tb.statuses(of: 0) == [.delivered])
    }

    @Test func batchesAreGatheredUpToTheLimits() async {
        let tb = TestBatches()
        let batches = (0..<10).map { tb.batch($0, lines("b\($0)", 3)) }
        let requests = Mutex<[Int]>([])
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 7, backoff: Self.fast)) { _, r in
            requests.withLock { $0.append(r.eventCount) }
            return .delivered
        }
        await run(f, batches)
        // 3 + 3 fit in 7, the third batch would cross it and opens the next request.
        #expect(requests.withLock { $0 } == [6, 6, 6, 6, 6])
        #expect(f.delivered == (0..<10).flatMap { lines("b\($0)", 3) })
    }

    @Test func maxAgeWaitsForMoreBatches() async {
        let tb = TestBatches()
        let q = BatchQueue(highWatermark: 1 << 20)
        let requests = Mutex<[Int]>([])
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 100, maxAge: .milliseconds(400), backoff: Self.fast)) { _, r in
            requests.withLock { $0.append(r.eventCount) }
            return .delivered
        }
        let runner = FlusherRunner(flusher: f, queue: q, context: testContext(kind: .flusher, type: "flusher_scripted"))
        let task = Task { await runner.run() }
        q.push(tb.batch(0, ["a"]))
        try? await Task.sleep(for: .milliseconds(100))
        q.push(tb.batch(1, ["b"]))
        try? await Task.sleep(for: .milliseconds(600))
        q.push(tb.batch(2, ["c"]))
        q.close()
        await task.value
        #expect(requests.withLock { $0 } == [2, 1])
    }

    @Test func cancelledAtTheDeadlineAbandonsWhatIsNotDelivered() async {
        let tb = TestBatches()
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 1, backoff: Backoff(initial: .milliseconds(50), maximum: .milliseconds(50)))) { _, _ in
            .retry(after: nil, reason: "down")
        }
        let ctx = await run(f, [tb.batch(0, ["a"])], cancelAfter: .milliseconds(300))
        #expect(tb.statuses(of: 0) == [.abandoned])
        #expect(ctx.metrics.abandonedEvents.current == 1)
        #expect(f.delivered.isEmpty)
    }

    /// A send that the deadline cancels comes back as a retry: on its last allowed try (no
    /// retries at all here) it must still be abandoned (read again), not rejected (lost).
    @Test func aSendCancelledAtTheDeadlineIsAbandonedNotRejectedByTheRetryLimit() async {
        let tb = TestBatches()
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 1, maxRetries: 0, backoff: Self.fast), delayMs: 5000...5000) { _, _ in
            .retry(after: nil, reason: "cancelled")
        }
        let ctx = await run(f, [tb.batch(0, ["a"])], cancelAfter: .milliseconds(200))
        #expect(tb.statuses(of: 0) == [.abandoned])
        #expect(ctx.metrics.abandonedEvents.current == 1)
        #expect(ctx.metrics.discardedByReason.isEmpty)
    }

    /// A source that never runs dry (a disk buffer's backlog): once cancelled, the runner takes
    /// nothing more from it, and what it took is abandoned, each batch once.
    @Test func aCancelledRunnerTakesNoMoreFromItsSource() async {
        final class Endless: BatchSource {
            let tb: TestBatches
            let taken = Atomic<Int>(0)
            init(_ tb: TestBatches) { self.tb = tb }
            func next() -> EventBatch? {
                let n = taken.add(1, ordering: .relaxed).newValue
                return n > 2000 ? nil : tb.batch(n, ["l\(n)"])
            }
            func pop() async -> EventBatch? { next() }
            func tryPop() -> EventBatch? { next() }
            func pop(timeout: Duration) async -> BatchQueue.TimedPop { next().map { .batch($0) } ?? .closed }
        }
        let tb = TestBatches()
        let source = Endless(tb)
        let f = ScriptedFlusher(delivery: DeliveryOptions(maxEvents: 1, backoff: Backoff(initial: .milliseconds(50), maximum: .milliseconds(50)))) { _, _ in
            .retry(after: nil, reason: "down")
        }
        let ctx = testContext(kind: .flusher, type: "flusher_scripted")
        let task = Task { await FlusherRunner(flusher: f, queue: source, context: ctx).run() }
        try? await Task.sleep(for: .milliseconds(200))
        task.cancel()
        await task.value
        let taken = min(source.taken.load(ordering: .relaxed), 2000)
        #expect(taken < 10, "took \(taken) batches")
        for i in 1...max(1, taken) { #expect(tb.statuses(of: i) == [.abandoned], "batch \(i)") }
        #expect(f.delivered.isEmpty)
        #expect(ctx.metrics.abandonedEvents.current == taken)
    }

    @Test func encodeFailureRejectsTheBatches() async {
        final class Failing: Flusher {
            struct R: FlushRequest { var byteCount = 0; var eventCount = 0 }
            let delivery = DeliveryOptions()
            func start() async throws {}
            func makeRequest(_ batches: [EventBatch]) async throws(FlushError) -> R { throw FlushError("cannot encode") }
            func send(_ request: R) async -> SendOutcome<R> { .delivered }
            func stop() async {}
        }
        let tb = TestBatches()
        let ctx = await run(Failing(), [tb.batch(0, ["x", "y"])])
        #expect(tb.statuses(of: 0) == [.rejected])
        #expect(ctx.metrics.discardedByReason == ["encode_failed": 2])
    }
}

@Suite struct DeliveryPrimitivesTests {
    @Test func backoffGrowsCapsAndHonoursTheRequestedDelay() {
        let b = Backoff(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2, jitter: 0.5)
        #expect(b.delay(afterFailures: 1, unit: 0) == .milliseconds(100))
        #expect(b.delay(afterFailures: 3, unit: 0) == .milliseconds(400))
        #expect(b.delay(afterFailures: 3, unit: 1) == .milliseconds(200))
        #expect(b.delay(afterFailures: 30, unit: 0) == .seconds(2))
        #expect(b.delay(afterFailures: 1, requested: .seconds(1), unit: 0.9) == .seconds(1))
        #expect(b.delay(afterFailures: 1, requested: .seconds(60), unit: 0) == .seconds(60), "Retry-After is not capped by the backoff's maximum")
        #expect(b.delay(afterFailures: 1, requested: .seconds(3600), unit: 0) == .seconds(300), "but by maximumRequested")
        // A requested delay never shortens the backoff: `Retry-After: 0` (or a date already past)
        // waits as an unanswered failure would.
        #expect(b.delay(afterFailures: 1, requested: .seconds(-5), unit: 0) == .milliseconds(100))
        #expect(b.delay(afterFailures: 1, requested: .zero, unit: 0) == .milliseconds(100))
        #expect(b.delay(afterFailures: 3, requested: .milliseconds(50), unit: 0) == .milliseconds(400))
        #expect(b.delay(afterFailures: 30, requested: .zero, unit: 1) == .seconds(1))
    }

    @Test func assemblerTakesTheFirstBatchAlwaysAndLeavesWhatWouldCrossALimit() {
        let tb = TestBatches()
        var a = RequestAssembler(maxEvents: 4, maxBytes: 1 << 20)
        var taken: [Bool] = []
        taken.append(a.offer(tb.batch(0, ["1", "2", "3", "4", "5", "6"])))
        #expect(a.isFull)
        taken.append(a.offer(tb.batch(1, ["x"])))
        #expect(a.take().count == 1)
        #expect(a.isEmpty)
        taken.append(a.offer(tb.batch(2, ["a", "b"])))
        taken.append(a.offer(tb.batch(3, ["c", "d"])))
        taken.append(a.offer(tb.batch(4, ["e"])))
        #expect(taken == [true, false, true, true, false])
        var bytes = RequestAssembler(maxEvents: 100, maxBytes: 10)
        let first = bytes.offer(tb.batch(5, ["12345"]))
        let second = bytes.offer(tb.batch(6, ["123456"]))
        #expect(first && !second, "6 + 7 bytes cross the 10-byte limit")
    }
}

/// The pipeline's sink lets the input work while a batch waits for room in a full queue.
@Suite struct SinkWaitingTests {
    @Test func waitingIsCalledWhileTheQueueIsFullAndNotOtherwise() async {
        let q = BatchQueue(highWatermark: 10)
        let sink = PipelineSink(processorSets: [], queues: [q])
        let tb = TestBatches()
        var calls = 0
        #expect(sink.send(tb.batch(0, ["fills the queue"]), waiting: { calls += 1 }))
        #expect(calls == 0, "room at once: no wait")
        let popper = Task.detached {
            try? await Task.sleep(for: .milliseconds(700))
            _ = q.tryPop()
        }
        #expect(sink.send(tb.batch(1, ["waits"]), waiting: { calls += 1 }))
        #expect(calls >= 2, "about every 200 ms while full: \(calls)")
        await popper.value
    }
}
