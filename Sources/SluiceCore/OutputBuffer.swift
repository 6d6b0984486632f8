import Glibc

/// A growable byte buffer on the heap, reused across batches by encoders. Appends are plain
/// memcpys with no bounds checks beyond one capacity check, and no copy-on-write.
/// `@unchecked Sendable`: a buffer is handed from one owner to the next (encoder → writer thread →
/// pool), never used by two at once.
public final class OutputBuffer: @unchecked Sendable {
    // Written on every append of every field: without `@exclusivity(unchecked)` each access is a
    // dynamic exclusivity check (swift_beginAccess + a thread-local access set), which perf
    // showed costing more than the JSON escaping itself. The buffer is used by one encoder at a
    // time and never handed out while being appended to.
    @exclusivity(unchecked) public private(set) var base: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) public private(set) var capacity: Int
    @exclusivity(unchecked) public var count: Int = 0
    /// False while the buffer writes into memory it was lent (`init(borrowing:)`): it moves to
    /// memory of its own, with what it holds, only when it must grow.
    public private(set) var ownsMemory = true

    public init(capacity: Int = 1 << 20) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    /// Writes into `memory` (say a request body's free space) until it is full, so that what is
    /// encoded needs no copy into the body afterwards. Past `memory`'s end it grows into a heap
    /// buffer of its own, as `ownsMemory` then says. The caller keeps `memory` valid and untouched
    /// while the buffer writes to it, and reads the result from `bytes`.
    public init(borrowing memory: UnsafeMutableRawBufferPointer) {
        capacity = memory.count
        if let b = memory.baseAddress {
            base = b.assumingMemoryBound(to: UInt8.self)
            ownsMemory = false
        } else {
            base = .allocate(capacity: 1)
            capacity = 1
        }
    }

    deinit { if ownsMemory { base.deallocate() } }

    /// Makes room for `extra` more bytes.
    @inlinable @inline(__always)
    public func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    @usableFromInline @inline(never)
    func grow(_ needed: Int) {
        var c = max(capacity, 64)
        while c < needed { c *= 2 }
        let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        nb.update(from: base, count: count)
        if ownsMemory { base.deallocate() }
        ownsMemory = true
        base = nb
        capacity = c
    }

    /// Shrinks back to `capacity` bytes when a huge batch made it grow.
    public func clear(keepingCapacity limit: Int = 8 << 20) {
        count = 0
        if capacity > limit && ownsMemory {
            base.deallocate()
            capacity = limit
            base = .allocate(capacity: limit)
        }
    }

    /// Inlinable, as are `reserve`, `append(byte:)` and the short copy: the flushers' encoders
    /// (another module) append a few short pieces per event, and each was a call.
    @inlinable @inline(__always)
    public func append(_ p: UnsafePointer<UInt8>, _ n: Int) {
        reserve(n)
        if n <= 16 {
            OutputBuffer.copySmall(from: p, to: base + count, n)
        } else if n <= 64 {
            OutputBuffer.copyMedium(from: p, to: base + count, n)
        } else {
            (base + count).update(from: p, count: n)
        }
        count += n
    }

    /// Copies 17–64 bytes without a call: two overlapping 16-byte vectors up to 32 bytes, four
    /// (the first 32 and the last 32) above; all loads before the stores, as `copySmall`. A
    /// document's template pieces and an action line are this long, a memmove call each.
    @inlinable @inline(__always)
    static func copyMedium(from p: UnsafePointer<UInt8>, to d: UnsafeMutablePointer<UInt8>, _ n: Int) {
        let s = UnsafeRawPointer(p)
        let t = UnsafeMutableRawPointer(d)
        let a = s.loadUnaligned(as: SIMD16<UInt8>.self)
        let b = s.loadUnaligned(fromByteOffset: n &- 16, as: SIMD16<UInt8>.self)
        if n <= 32 {
            t.storeBytes(of: a, as: SIMD16<UInt8>.self)
            t.storeBytes(of: b, toByteOffset: n &- 16, as: SIMD16<UInt8>.self)
        } else {
            let a2 = s.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self)
            let b2 = s.loadUnaligned(fromByteOffset: n &- 32, as: SIMD16<UInt8>.self)
            t.storeBytes(of: a, as: SIMD16<UInt8>.self)
            t.storeBytes(of: a2, toByteOffset: 16, as: SIMD16<UInt8>.self)
            t.storeBytes(of: b2, toByteOffset: n &- 32, as: SIMD16<UInt8>.self)
            t.storeBytes(of: b, toByteOffset: n &- 16, as: SIMD16<UInt8>.self)
        }
    }

    /// Copies 0–16 bytes without a call: two overlapping words (8–16 bytes, 4–7 bytes) or three
    /// single bytes under 4; all loads come before the stores, so the ranges may overlap as for
    /// memmove. The encoders append many short pieces (separators, keys, an index's action line),
    /// where a call to memmove per piece was a tenth of the elasticsearch flusher's CPU.
    @inlinable @inline(__always)
    static func copySmall(from p: UnsafePointer<UInt8>, to d: UnsafeMutablePointer<UInt8>, _ n: Int) {
        let s = UnsafeRawPointer(p)
        let t = UnsafeMutableRawPointer(d)
        if n >= 8 {
            let a = s.loadUnaligned(as: UInt64.self)
            let b = s.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
            t.storeBytes(of: a, as: UInt64.self)
            t.storeBytes(of: b, toByteOffset: n &- 8, as: UInt64.self)
        } else if n >= 4 {
            let a = s.loadUnaligned(as: UInt32.self)
            let b = s.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
            t.storeBytes(of: a, as: UInt32.self)
            t.storeBytes(of: b, toByteOffset: n &- 4, as: UInt32.self)
        } else if n > 0 {
            // 1–3 bytes: the first, the middle and the last (each loaded before any is stored).
            let a = p[0], b = p[n &>> 1], c = p[n &- 1]
            d[0] = a
            d[n &>> 1] = b
            d[n &- 1] = c
        }
    }

    @inline(__always)
    public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { if let b = $0.baseAddress { append(b, $0.count) } }
    }

    @inlinable @inline(__always)
    public func append(byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    /// Appends a string literal's bytes: its length is known where it is written, so the short
    /// and medium copies above take it with no call (a `String` append is one per piece).
    @inlinable @inline(__always)
    public func append(literal s: StaticString) {
        append(s.utf8Start, s.utf8CodeUnitCount)
    }

    public func append(_ s: String) {
        var s = s
        s.withUTF8 { if let b = $0.baseAddress { append(b, $0.count) } }
    }

    /// Appends the decimal digits of `v` (see `writeDecimal`).
    public func append(decimal v: Int64) {
        reserve(20)
        count += OutputBuffer.writeDecimal(v, to: base + count)
    }

    /// Writes the decimal digits of `v` (with a `-` when negative) at `d`, which has room for 20
    /// bytes; returns how many. Two digits per division, written from the last one back after the
    /// length is counted (Loki's JSON push writes a 19-digit nanosecond time per line).
    public static func writeDecimal(_ v: Int64, to d: UnsafeMutablePointer<UInt8>) -> Int {
        var start = d
        var u: UInt64
        if v < 0 {
            d[0] = UInt8(ascii: "-")
            start += 1
            u = UInt64(bitPattern: 0 &- v)  // Int64.min gives 2^63, its magnitude
        } else {
            u = UInt64(v)
        }
        var n = 1
        var power: UInt64 = 10
        while n < 20 && u >= power {
            n += 1
            power = power &* 10
        }
        let pairs = OutputBuffer.digitPairs.utf8Start
        var p = start + n
        while u >= 100 {
            let q = u / 100
            let r = Int(truncatingIfNeeded: u &- q &* 100) &* 2
            p -= 2
            p[0] = pairs[r]
            p[1] = pairs[r &+ 1]
            u = q
        }
        if u >= 10 {
            let r = Int(truncatingIfNeeded: u) &* 2
            p[-2] = pairs[r]
            p[-1] = pairs[r &+ 1]
        } else {
            p[-1] = UInt8(truncatingIfNeeded: u) &+ 48
        }
        return start + n - d
    }

    /// "00" to "99", each pair at twice its value.
    static let digitPairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    public var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }
    public func toArray() -> [UInt8] { Array(bytes) }
}
