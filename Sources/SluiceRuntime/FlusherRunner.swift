import Logging
import SluiceCore
import Synchronization

/// Feeds one flusher from its queue and owns its delivery: gathers batches into requests (the
/// flusher's `DeliveryOptions`), keeps up to `concurrency` requests in flight, retries what may be
/// retried with backoff (or the delay the destination asked for), rejects after a retry limit where
/// one is set, finishes every batch exactly once with its status, and counts. With concurrency 1
/// requests go out in order and the next one is built while the current one is sent.
///
/// Shutdown: when the queue is closed and drained, `run` returns once every request is finished.
/// Cancelled (the shutdown deadline), retries stop: requests not delivered are finished as
/// abandoned, so their data stays in its source and is read again on the next start.
struct FlusherRunner<F: Flusher>: Sendable {
    let flusher: F
    let queue: any BatchSource
    let context: PluginContext
    private let rejectionLog = RateLimitedLog()

    init(flusher: F, queue: any BatchSource, context: PluginContext) {
        self.flusher = flusher
        self.queue = queue
        self.context = context
    }

    var logger: Logger { context.logger }
    var metrics: ComponentMetrics { context.metrics }

    func run() async {
        // A tight mem_usage_limit makes requests smaller too (1/16 of the flushers' budget).
        let options = context.governor.map { g in
            var o = flusher.delivery
            o.maxBytes = min(o.maxBytes, max(256 << 10, g.heldBytesBudget / 16))
            return o
        } ?? flusher.delivery
        var carry: EventBatch?
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            while true {
                // Past the memory budget of all flushers together: one request in flight.
                if let g = context.governor {
                    while inFlight > 0 && g.flushersOverBudget {
                        await group.next()
                        inFlight -= 1
                    }
                }
                // Cancelled (the shutdown deadline): take nothing more. What a disk buffer still
                // holds stays there for the next start (reading it on would send the whole backlog
                // only to abandon it, and Kafka's producer would deliver it unacknowledged).
                if Task.isCancelled {
                    if let c = carry { abandon([BatchReceipt(c)], events: c.events.count) }
                    break
                }
                guard let batches = await nextRequest(options, carry: &carry) else { break }
                // Delivery needs only the batches' counts and acks: their read buffers are let
                // go once the request is encoded, so a request in flight holds its encoded body
                // and not its input too.
                let receipts = batches.map(BatchReceipt.init)
                let request: F.Request
                do {
                    request = try await flusher.makeRequest(batches)
                } catch {
                    metrics.errors.add(1)
                    reject(receipts, events: receipts.reduce(0) { $0 + $1.events }, reason: "encode_failed", message: "\(error)")
                    continue
                }
                if inFlight >= options.concurrency {
                    await group.next()
                    inFlight -= 1
                }
                group.addTask { await deliver(request, batches: receipts, options: options) }
                inFlight += 1
            }
            await group.waitForAll()
        }
    }

    /// The batches of the next request, or nil once the queue is closed and empty.
    private func nextRequest(_ o: DeliveryOptions, carry: inout EventBatch?) async -> [EventBatch]? {
        var a = RequestAssembler(o)
        if let c = carry {
            carry = nil
            _ = a.offer(c)
        } else {
            guard let first = await queue.pop() else { return nil }
            received(first)
            _ = a.offer(first)
        }
        let deadline = ContinuousClock.now.advanced(by: o.maxAge)
        while !a.isFull && !Task.isCancelled {
            var next = queue.tryPop()
            if next == nil && o.maxAge > .zero {
                let left = deadline - ContinuousClock.now
                if left <= .zero { break }
                if case .batch(let b) = await queue.pop(timeout: left) { next = b }
            }
            guard let b = next else { break }
            received(b)
            if !a.offer(b) {
                carry = b
                break
            }
        }
        return a.take()
    }

    private func received(_ b: EventBatch) {
        metrics.receivedEvents.add(b.events.count)
        metrics.receivedBytes.add(b.inputBytes)
        metrics.bufferedEvents.add(b.events.count, ordering: .relaxed)
        metrics.bufferedBytes.add(b.inputBytes, ordering: .relaxed)
        context.governor?.heldBytes.add(b.inputBytes, ordering: .relaxed)
    }

    /// Sends one request until it is delivered, rejected or abandoned.
    private func deliver(_ first: F.Request, batches: [BatchReceipt], options: DeliveryOptions) async {
        metrics.inFlight.add(1, ordering: .relaxed)
        defer { metrics.inFlight.subtract(1, ordering: .relaxed) }
        var request = first
        var failures = 0
        var anyRejected = false
        while true {
            let outcome = await flusher.send(request)
            var asked: Duration?
            switch outcome {
            case .delivered:
                metrics.requestsDelivered.add(1)
                sent(events: request.eventCount, bytes: request.byteCount)
                if failures > 0 {
                    logger.info("Delivered after retries.", metadata: ["attempts": "\(failures + 1)"])
                }
                finish(batches, anyRejected ? .rejected : .delivered)
                return
            case .rejected(let reason):
                metrics.requestsRejected.add(1)
                reject(batches, events: request.eventCount, reason: "rejected", message: reason)
                return
            case .partial(let rest, let rejected, let reason):
                metrics.requestsPartial.add(1)
                sent(events: max(0, request.eventCount - rest.eventCount - rejected), bytes: max(0, request.byteCount - rest.byteCount))
                if rejected > 0 {
                    anyRejected = true
                    metrics.discarded(rejected, reason: "rejected")
                    logRejection(events: rejected, reason: reason)
                }
                request = rest
                if rest.eventCount == 0 {
                    finish(batches, anyRejected ? .rejected : .delivered)
                    return
                }
                failures += 1
            case .retry(let after, let reason):
                metrics.requestsRetried.add(1)
                metrics.errors.add(1)
                failures += 1
                asked = after
                if failures == 1 || failures % 10 == 0 {
                    logger.warning("Send failed; retrying.", metadata: ["attempt": "\(failures)", "error": "\(reason)"])
                }
            }
            // Cancelled (the shutdown deadline): the failure may be the cancelled send itself, so
            // it neither counts against the retry limit nor rejects; the data is read again.
            if Task.isCancelled {
                abandon(batches, events: request.eventCount)
                return
            }
            if let limit = options.maxRetries, failures > limit {
                metrics.discarded(request.eventCount, reason: "retry_limit")
                logger.error("Giving up after the retry limit; the events are discarded.", metadata: ["retries": "\(limit)", "events": "\(request.eventCount)"])
                finish(batches, .rejected)
                return
            }
            do {
                try await Task.sleep(for: options.backoff.delay(afterFailures: failures, requested: asked))
            } catch {
                abandon(batches, events: request.eventCount)
                return
            }
        }
    }

    private func abandon(_ batches: [BatchReceipt], events: Int) {
        metrics.abandonedEvents.add(events)
        logger.warning("Abandoning undelivered data at the shutdown deadline; it will be read again on the next start.", metadata: ["events": "\(events)"])
        finish(batches, .abandoned)
    }

    private func sent(events: Int, bytes: Int) {
        metrics.sentEvents.add(events)
        metrics.sentBytes.add(bytes)
        context.pipelineMetrics.eventsOut.add(events)
        context.pipelineMetrics.bytesOut.add(bytes)
    }

    private func reject(_ batches: [BatchReceipt], events: Int, reason: String, message: String) {
        metrics.discarded(events, reason: reason)
        logRejection(events: events, reason: message)
        finish(batches, .rejected)
    }

    private func logRejection(events: Int, reason: String) {
        if rejectionLog.shouldLog() {
            logger.error("The destination refused events; they are discarded and counted.", metadata: ["events": "\(events)", "reason": "\(reason)"])
        }
    }

    private func finish(_ batches: [BatchReceipt], _ status: DeliveryStatus) {
        for b in batches {
            metrics.bufferedEvents.subtract(b.events, ordering: .relaxed)
            metrics.bufferedBytes.subtract(b.inputBytes, ordering: .relaxed)
            context.governor?.heldBytes.subtract(b.inputBytes, ordering: .relaxed)
            b.ack?.finish(status)
        }
    }
}

/// What delivery keeps of a batch once its request is encoded: the counts the metrics and the
/// memory budget took when it arrived, and the ack that moves its source's checkpoint.
struct BatchReceipt: Sendable {
    let events: Int
    let inputBytes: Int
    let ack: AckToken?
    init(_ b: EventBatch) {
        events = b.events.count
        inputBytes = b.inputBytes
        ack = b.ack
    }
}

/// Lets a message through at most once per interval (rejections can come by the thousand).
final class RateLimitedLog: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)
    let interval: Duration
    init(interval: Duration = .seconds(10)) { self.interval = interval }
    func shouldLog() -> Bool {
        let now = ContinuousClock.now
        return last.withLock { l in
            if let t = l, now - t < interval { return false }
            l = now
            return true
        }
    }
}
