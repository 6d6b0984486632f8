import SluiceCore

/// Moves a buffered flusher's batches from the pipeline's queue into its disk buffer; each batch's
/// source is acknowledged once the batch is fsynced there. What `drop_newest` drops is counted and
/// its source moves on.
func spool(_ queue: BatchQueue, into buffer: DiskBuffer, metrics: ComponentMetrics) async {
    // Cancelled at the shutdown deadline: an append waiting for space gives up (its source is
    // read again on the next start).
    await withTaskCancellationHandler {
        while let b = await queue.pop() {
            let ack = b.ack
            let events = b.events.count
            let written: @Sendable (Bool) -> Void = { durable in
                if !durable { metrics.abandonedEvents.add(events) }
                ack?.finish(durable ? .delivered : .abandoned)
            }
            switch await buffer.append(BatchCodec.encode(b), events: events, onDurable: written) {
            case .appended: break
            case .dropped:
                metrics.discarded(b.events.count, reason: "buffer_full")
                ack?.finish(.rejected)
            case .closed:
                metrics.abandonedEvents.add(b.events.count)
                ack?.finish(.abandoned)
            }
        }
    } onCancel: {
        buffer.finishWriting()
    }
    buffer.finishWriting()
    await buffer.waitUntilFinished()
}
