import NIOCore
import SluiceCore
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
/// the kernel as it is filled. The pool keeps a reference to each body it lends (at most `keep`);
/// `take` returns one whose storage nothing else holds any more (`modifyIfUniquelyOwned`), so
/// writing into it never copies, or a new buffer.
final class BodyBufferPool: Sendable {
    private let lent = Mutex<[ByteBuffer]>([])
    let keep: Int
    /// Bodies larger than this (one huge event) are not kept.
    let largest: Int
    init(keep: Int, largest: Int = 8 << 20) {
        self.keep = keep
        self.largest = largest
    }

    /// An empty buffer of at least `capacity` bytes; give it back with `lend` once it is filled.
    func take(capacity: Int) -> ByteBuffer {
        let reused: ByteBuffer? = lent.withLock { bodies in
            for i in bodies.indices {
                let free = bodies[i].modifyIfUniquelyOwned { (b: inout ByteBuffer) -> Bool in
                    b.clear()
                    return true
                } ?? false
                if free { return bodies.remove(at: i) }
            }
            return nil
        }
        if var b = reused {
            b.reserveCapacity(capacity)
            return b
        }
        return ByteBufferAllocator().buffer(capacity: capacity)
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
    func lend(_ body: ByteBuffer) {
        guard body.capacity <= largest else { return }
        lent.withLock { bodies in if bodies.count < keep { bodies.append(body) } }
    }
}
