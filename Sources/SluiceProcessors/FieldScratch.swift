import SluiceCore

/// The fields one parse produces, reused from event to event of a pass. A parser appends a dozen
/// per event: an `Array` checks its buffer's uniqueness out of line on every append (measured:
/// the capture loop of `processor_parse_regex_native` spilled its registers around that call);
/// this appends with a capacity check alone. `EventField` is plain data: nothing to deinitialize.
final class FieldScratch {
    private(set) var base: UnsafeMutablePointer<EventField>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 8)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    @inline(__always) func append(_ f: EventField) {
        if count == capacity { grow() }
        (base + count).initialize(to: f)
        count &+= 1
    }

    private func grow() {
        let bigger = capacity * 2
        let nb = UnsafeMutablePointer<EventField>.allocate(capacity: bigger)
        nb.moveInitialize(from: base, count: count)
        base.deallocate()
        base = nb
        capacity = bigger
    }

    /// Forgets the fields (the storage is kept).
    @inline(__always) func removeAll() { count = 0 }

    /// The fields appended since the last `removeAll`, valid until the next append.
    var fields: UnsafeBufferPointer<EventField> { UnsafeBufferPointer(start: base, count: count) }
}
