import NIOCore
import SluiceCore
import SluiceSystem
@testable import SluiceFlushers
import Testing

@Suite struct BodyBufferPoolTests {
    func storage(_ b: ByteBuffer) -> UnsafeRawPointer? {
        b.withVeryUnsafeBytes { UnsafeRawPointer($0.baseAddress) }
    }

    @Test func aBodyIsReusedOnlyOnceNothingElseHoldsIt() throws {
        let pool = BodyBufferPool(keep: 2)
        var sent: ByteBuffer? = pool.take(capacity: 1000)
        sent!.writeString("first body")
        pool.lend(sent!)
        let first = storage(sent!)
        // Still held by the request being sent: a different buffer, the sent one untouched.
        var second = pool.take(capacity: 1000)
        #expect(storage(second) != first)
        second.writeString("second")
        #expect(sent!.readableBytesView.elementsEqual("first body".utf8))
        pool.lend(second)
        // Released: the same storage again, empty.
        sent = nil
        var again = pool.take(capacity: 1000)
        #expect(again.readableBytes == 0)
        #expect(storage(again) == first)
        // Given back and taken with more asked: room for it.
        pool.lend(again)
        again = ByteBuffer()
        #expect(pool.take(capacity: 1 << 20).capacity >= 1 << 20)
    }

    /// Whether something besides `b` (the pool) holds its storage.
    func shared(_ b: inout ByteBuffer) -> Bool { b.modifyIfUniquelyOwned { _ in true } == nil }

    @Test func thePoolKeepsAtMostItsCountAndNoHugeBodies() {
        let pool = BodyBufferPool(keep: 1)
        var a = pool.take(capacity: 100)
        a.writeString("a")
        pool.lend(a)
        var b = pool.take(capacity: 100)
        b.writeString("b")
        pool.lend(b)
        #expect(shared(&a))
        #expect(!shared(&b), "a second body is not kept by a pool of one")
        var huge = BodyBufferPool(keep: 4).take(capacity: 9 << 20)
        let pool2 = BodyBufferPool(keep: 4)
        huge.writeString("x")
        pool2.lend(huge)
        #expect(!shared(&huge), "a body over 8 MiB is not kept")
    }

    @Test func aFreeBodyTooSmallIsLetGoAndTheNewOneHasRoomToSpare() {
        let pool = BodyBufferPool(keep: 4)
        var small = pool.take(capacity: 1000)
        small.writeString("small")
        pool.lend(small)
        let smallStorage = storage(small)
        small = ByteBuffer()
        // Growing the free body would copy it to new memory: a new one.
        let bigger = pool.take(capacity: 4000)
        #expect(storage(bigger) != smallStorage)
        #expect(bigger.capacity >= 4000)
        #expect(pool.keptBytes == 0, "the small body is no longer kept")
        // Bodies made from then on are as large as the largest asked for, so each fits any request.
        #expect(pool.take(capacity: 1000).capacity >= 4000)
        #expect(BodyBufferPool(keep: 1, largest: 2000).take(capacity: 1000).capacity < 2000)
    }

    @Test func keptBodiesStayWithinTheByteBudget() {
        let pool = BodyBufferPool(keepBytes: 3000)
        var held: [ByteBuffer] = []
        for _ in 0..<4 {
            var b = pool.take(capacity: 1024)   // NIO rounds capacities up to a power of two
            b.writeString("x")
            pool.lend(b)
            held.append(b)
        }
        #expect(pool.keptBytes == 2048, "two of 1024 bytes fit in 3000, a third does not")
        #expect(!shared(&held[2]) && !shared(&held[3]))
        // Sized for what a flusher keeps in flight: concurrency + 1 requests at 4 × their input.
        #expect(BodyBufferPool(inFlight: DeliveryOptions(maxBytes: 1 << 20, concurrency: 3)).keepBytes == 16 << 20)
        #expect(BodyBufferPool(inFlight: DeliveryOptions(maxBytes: 64 << 20, concurrency: 15)).keepBytes == 256 << 20)
    }

    @Test func aBodyIdleForLongIsLetGoOneInFlightIsNot() {
        let pool = BodyBufferPool(keep: 4)
        let t0 = Sys.monotonicNanos()
        var idle = pool.take(capacity: 128, now: t0)
        idle.writeString("idle")
        pool.lend(idle, now: t0)
        var inFlight = pool.take(capacity: 128, now: t0)
        inFlight.writeString("in flight")
        pool.lend(inFlight, now: t0)
        idle = ByteBuffer()
        pool.releaseIdle(now: t0 + BodyBufferPool.idleNanos / 2)
        #expect(pool.keptBytes == 256, "not idle long enough yet")
        pool.releaseIdle(now: t0 + BodyBufferPool.idleNanos + 1)
        #expect(pool.keptBytes == 128, "the free one let go; the one still held kept")
        #expect(shared(&inFlight))
    }

    @Test func aFilledBodyHoldsWhatWasEncodedWithOrWithoutRoomForIt() {
        let pool = BodyBufferPool(keep: 2)
        // Room for it (2.5 × the input, as first assumed): written where the body's bytes are.
        var inPlace: UnsafeRawPointer?
        let small = pool.fill(forInput: 100) { out in
            out.append(String(repeating: "a", count: 200))
            inPlace = UnsafeRawPointer(out.base)
        }
        #expect(small.readableBytesView.elementsEqual(String(repeating: "a", count: 200).utf8))
        #expect(inPlace == storage(small), "encoded in the body itself")
        // Eighteen times the input: the encoder moves out and the body gets a copy, whole.
        let text = (0..<2000).map { "line \($0)\n" }.joined()
        let big = pool.fill(forInput: 1000) { out in out.append(text) }
        #expect(big.readableBytesView.elementsEqual(text.utf8))
        // The ratio is learned: the next body for as much input has room for as much output.
        let next = pool.fill(forInput: 1000) { out in
            out.append(text)
            inPlace = UnsafeRawPointer(out.base)
        }
        #expect(next.readableBytesView.elementsEqual(text.utf8))
        #expect(inPlace == storage(next), "no spill once the ratio was seen")
        // Nothing encoded: an empty body.
        #expect(pool.fill(forInput: 0) { _ in }.readableBytes == 0)
    }

    @Test func compressionThroughThePoolGivesTheSameBytes() throws {
        let pool = BodyBufferPool(keep: 2)
        let text = Array(String(repeating: "pooled bodies; ", count: 300).utf8)
        for c in BodyCompression.allCases {
            for _ in 0..<3 {
                let z = try text.withUnsafeBytes { p throws(FlushError) in try c.compress(p, reusing: pool) }
                #expect(try c.decompress(z) == text, "\(c)")
            }
        }
    }
}
