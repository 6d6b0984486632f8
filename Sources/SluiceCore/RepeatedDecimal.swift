/// The decimal digits of the last number written, kept while it repeats: an event time in
/// seconds changes rarely between the events of a batch, so formatting it per event is waste.
/// Numbers that climb by small steps (nanosecond times one apart) are stepped up in place.
public struct RepeatedDecimal: Sendable {
    @usableFromInline var value: Int64 = 0
    @usableFromInline var digits: [UInt8] = []

    public init() {}

    /// Calls `body` with the digits of `v`, formatted only when `v` is not the last number.
    @inlinable
    public mutating func withDigits<R>(of v: Int64, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if digits.isEmpty || v != value { setDigits(v) }
        return digits.withUnsafeBufferPointer(body)
    }

    /// Appends the digits of `v` to `out`. A number a little above the last one (the next entries'
    /// nanosecond times, one apart within a batch) is made by adding the difference to the last
    /// digits in place, carrying as far as it goes, instead of formatting all nineteen again.
    public mutating func append(_ v: Int64, to out: OutputBuffer) {
        if digits.isEmpty || !advance(to: v) { setDigits(v) }
        digits.withUnsafeBufferPointer { out.append($0.baseAddress!, $0.count) }
    }

    /// Moves the digits up from `value` to `v` when `v` is at most 1000 above it and has as many
    /// digits; false (digits to be formatted again) otherwise.
    @inline(__always)
    mutating func advance(to v: Int64) -> Bool {
        if v == value { return true }
        guard v > value, value >= 0, v &- value <= 1000 else { return false }
        var carry = Int(truncatingIfNeeded: v &- value)
        digits.withUnsafeMutableBufferPointer { d in
            var k = d.count - 1
            while carry > 0 && k >= 0 {
                let sum = Int(d[k] &- 0x30) &+ carry
                d[k] = UInt8(truncatingIfNeeded: 0x30 &+ sum % 10)
                carry = sum / 10
                k -= 1
            }
        }
        // A carry out of the first digit: `v` has one more digit.
        if carry > 0 { return false }
        value = v
        return true
    }

    @usableFromInline mutating func setDigits(_ v: Int64) {
        value = v
        // Formatted by `OutputBuffer.writeDecimal` into the array's reused storage.
        digits.removeAll(keepingCapacity: true)
        digits.append(contentsOf: repeatElement(0, count: 20))
        let n = digits.withUnsafeMutableBufferPointer { OutputBuffer.writeDecimal(v, to: $0.baseAddress!) }
        digits.removeLast(20 - n)
    }
}
