/// The decimal digits of the last number written, kept while it repeats: an event time in
/// seconds changes rarely between the events of a batch, so formatting it per event is waste.
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

    @usableFromInline mutating func setDigits(_ v: Int64) {
        value = v
        digits = Array(String(v).utf8)
    }
}
