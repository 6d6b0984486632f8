import NIOCore
import SluiceCore
import SluiceSystem
import Synchronization

/// Free encode buffers, reused so that a 1 MiB buffer is not allocated per request.
final class BufferPool: Sendable {
    private let free = Mutex<[OutputBuffer]>([])
    let keep: Int
    init(keep: Int) { self.keep = keep }
    func take() -> OutputBuffer {
        if let b = free.withLock({ $0.popLast() }) {
            b.clear()
            return b
        }
        return OutputBuffer(capacity: 1 << 20)
    }
    func put(_ b: OutputBuffer) {
        free.withLock { f in if f.count < keep { f.append(b) } }
    }
}

/// Request bodies, reused once the HTTP client and the request that sent one have let go of it:
/// a body is a fresh `ByteBuffer` otherwise, and each of its pages is faulted in and cleared by
/// the kernel as it is filled. The pool keeps a reference to each body it lends, up to `keep`
/// bodies and `keepBytes` of them (`init(inFlight:)`: enough for every request a flusher keeps in
/// flight; keeping 16, the http bench found all of them still in flight at a third of its
/// batches, and the elasticsearch bench, keeping 2 stores, at most of its requests). `take`
/// returns one whose storage nothing else holds any more (`modifyIfUniquelyOwned`), so writing
/// into it never copies, or a new buffer. A kept body not taken again within `idleNanos` is let
/// go (checked every few seconds and at each `take`): a burst's bodies do not stay.
final class BodyBufferPool: Sendable {
    private struct Lent {
        var body: ByteBuffer
        var lentAt: Int64
        func idle(at now: Int64) -> Bool { now - lentAt > BodyBufferPool.idleNanos }
    }
    private struct Kept {
        var bodies: [Lent] = []
        var bytes = 0
        /// Stops keeping body `i`.
        @discardableResult mutating func remove(at i: Int) -> ByteBuffer {
            let body = bodies.remove(at: i).body
            bytes -= body.capacity
            return body
        }
    }
    private let kept = Mutex(Kept())
    /// At most this many bodies are kept, and at most this many bytes of them (their capacity).
    let keep: Int
    let keepBytes: Int
    /// Bodies larger than this (one huge event) are not kept.
    let largest: Int
    static let idleNanos: Int64 = 10_000_000_000
    private let largestAsked = Atomic<Int>(0)

    init(keep: Int = .max, keepBytes: Int = .max, largest: Int = 8 << 20) {
        self.keep = keep
        self.keepBytes = keepBytes
        self.largest = largest
        Task.detached(priority: .background) { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(5))
                guard let self else { return }
                self.releaseIdle(now: Sys.monotonicNanos())
            }
        }
    }

    /// A pool for a flusher that keeps up to `delivery.concurrency` requests of up to
    /// `delivery.maxBytes` input bytes in flight, while one more is encoded: room for all of their
    /// bodies at four times the input's size (`fill`'s first guess is 2.5×, and NIO rounds a
    /// buffer's capacity up to a power of two), at most 256 MiB. Only bodies that were in flight at
    /// once are ever kept.
    convenience init(inFlight delivery: DeliveryOptions, largest: Int = 8 << 20) {
        let perRequest = min(delivery.maxBytes, 64 << 20)
        self.init(keepBytes: min(256 << 20, (delivery.concurrency + 1) * perRequest * 4), largest: largest)
    }

    /// Bytes of the bodies kept (in flight or free).
    var keptBytes: Int { kept.withLock { $0.bytes } }

    /// An empty buffer of at least `capacity` bytes; give it back with `lend` once it is filled.
    func take(capacity: Int, now: Int64 = Sys.monotonicNanos()) -> ByteBuffer {
        let reused: ByteBuffer? = kept.withLock { k in
            var found: ByteBuffer?
            // Newest first: the body most likely free. A free one too small is dropped (growing it
            // would copy it to fresh memory), and so is one idle for long.
            for i in k.bodies.indices.reversed() where BodyBufferPool.isFree(&k.bodies[i].body) {
                let fits = k.bodies[i].body.capacity >= capacity
                if fits && found == nil {
                    found = k.remove(at: i)
                } else if !fits || k.bodies[i].idle(at: now) {
                    k.remove(at: i)
                }
            }
            return found
        }
        if let reused { return reused }
        // As large as the largest asked for so far (up to `largest`): every body made then fits
        // every later request, instead of one a little larger dropping it. Pages never written are
        // never faulted in.
        let asked = largestAsked.load(ordering: .relaxed)
        if capacity > asked { largestAsked.store(capacity, ordering: .relaxed) }
        return ByteBufferAllocator().buffer(capacity: max(capacity, min(largest, asked)))
    }

    /// Lets go of every free body lent more than `idleNanos` before `now`.
    func releaseIdle(now: Int64) {
        kept.withLock { k in
            for i in k.bodies.indices.reversed() where k.bodies[i].idle(at: now) && BodyBufferPool.isFree(&k.bodies[i].body) {
                k.remove(at: i)
            }
        }
    }

    /// Whether nothing but the pool holds `body`'s storage; if so it is cleared for reuse.
    private static func isFree(_ body: inout ByteBuffer) -> Bool {
        body.modifyIfUniquelyOwned { (b: inout ByteBuffer) -> Bool in
            b.clear()
            return true
        } ?? false
    }

    /// Output bytes per input byte, in sixteenths, that `fill` makes a body for: the largest seen.
    private let expansion = Atomic<Int>(40)

    /// A body that `encode` writes straight into, with no copy out of an encode buffer: it gets an
    /// ``OutputBuffer`` over the free space of a body sized for `input` bytes of events (by the
    /// largest output / input ratio seen). Only when it writes more than that (the buffer then
    /// moved to memory of its own) are its bytes copied in. The body is lent (see `lend`).
    func fill(forInput input: Int, _ encode: (OutputBuffer) -> Void) -> ByteBuffer {
        let ratio = expansion.load(ordering: .relaxed)
        var body = take(capacity: input * ratio / 16 + 4096)
        var spilled: OutputBuffer?
        let written = body.withUnsafeMutableWritableBytes { free -> Int in
            let out = OutputBuffer(borrowing: free)
            encode(out)
            if out.ownsMemory {
                spilled = out
                return 0
            }
            return out.count
        }
        if let spilled {
            body.writeBytes(UnsafeRawBufferPointer(spilled.bytes))
        } else {
            body.moveWriterIndex(forwardBy: written)
        }
        if input > 0 {
            let seen = (body.readableBytes * 16 + input - 1) / input + 1
            if seen > ratio { expansion.store(min(seen, 1 << 10), ordering: .relaxed) }
        }
        lend(body)
        return body
    }

    /// A request body of what `encode` writes, with `compression`: uncompressed, written straight
    /// into a pooled body (`fill`); else written into `scratch` and compressed into one.
    func body(_ compression: BodyCompression, forInput input: Int, scratch: OutputBuffer,
              _ encode: (OutputBuffer) -> Void) throws(FlushError) -> ByteBuffer {
        if compression == .none { return fill(forInput: input, encode) }
        scratch.clear()
        encode(scratch)
        return try compression.compress(UnsafeRawBufferPointer(scratch.bytes), reusing: self)
    }

    /// Keeps a reference to `body` (now being sent) so that it can be taken again when done.
    func lend(_ body: ByteBuffer, now: Int64 = Sys.monotonicNanos()) {
        guard body.capacity <= largest else { return }
        kept.withLock { k in
            guard k.bodies.count < keep && k.bytes + body.capacity <= keepBytes else { return }
            k.bodies.append(Lent(body: body, lentAt: now))
            k.bytes += body.capacity
        }
    }
}
