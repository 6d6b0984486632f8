/// The protobuf wire format's pieces an encoder that writes a message straight into bytes needs
/// (a hot path where building generated message objects per event costs more than the
/// encoding): varints, field keys, and the sizes needed to write a length before its message.
public enum ProtobufWire {
    /// Wire types 0 (varint), 1 (fixed64) and 2 (length-delimited).
    public static let varint: UInt8 = 0, fixed64: UInt8 = 1, lengthDelimited: UInt8 = 2

    /// Bytes of `v` as a varint (1 to 10).
    @inline(__always)
    public static func varintSize(_ v: UInt64) -> Int {
        // 7 bits per byte: bit length rounded up to sevens, at least one byte.
        (64 - (v | 1).leadingZeroBitCount + 6) / 7
    }

    /// Bytes of a length-delimited field with a one-byte key (field numbers 1 to 15) and a
    /// payload of `n` bytes.
    @inline(__always)
    public static func fieldSize(payload n: Int) -> Int { 1 + varintSize(UInt64(n)) + n }

    /// Bytes of a varint field with a one-byte key: nothing for 0, which proto3 leaves out.
    @inline(__always)
    public static func varintFieldSize(_ v: UInt64) -> Int { v == 0 ? 0 : 1 + varintSize(v) }
}

extension OutputBuffer {
    /// Appends `v` as a varint.
    @inline(__always)
    public func appendVarint(_ v: UInt64) {
        reserve(10)
        var x = v
        while x >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: x) | 0x80
            count += 1
            x >>= 7
        }
        base[count] = UInt8(x)
        count += 1
    }

    /// Appends a field key (field numbers 1 to 15 take one byte).
    @inline(__always)
    public func appendKey(field: Int, wireType: UInt8) {
        appendVarint(UInt64(field << 3) | UInt64(wireType))
    }

    /// Appends a length-delimited field's key and length; its `n` bytes follow.
    @inline(__always)
    public func appendLengthDelimited(field: Int, length n: Int) {
        appendKey(field: field, wireType: ProtobufWire.lengthDelimited)
        appendVarint(UInt64(n))
    }

    /// Appends a varint field, or nothing for 0 (proto3's default).
    @inline(__always)
    public func appendVarintField(_ field: Int, _ v: UInt64) {
        guard v != 0 else { return }
        appendKey(field: field, wireType: ProtobufWire.varint)
        appendVarint(v)
    }

    /// Appends a fixed64 field (little-endian), or nothing for 0 (proto3's default).
    @inline(__always)
    public func appendFixed64Field(_ field: Int, _ v: UInt64) {
        guard v != 0 else { return }
        appendKey(field: field, wireType: ProtobufWire.fixed64)
        reserve(8)
        UnsafeMutableRawPointer(base + count).storeBytes(of: v.littleEndian, as: UInt64.self)
        count += 8
    }
}
