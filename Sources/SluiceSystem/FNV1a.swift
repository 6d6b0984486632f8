/// FNV-1a 64-bit hash, used for file signatures (hash of the first ≤ 1 KiB).
public enum FNV1a {
    @inlinable
    public static func hash(_ p: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in p {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }
    public static func hash(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { hash($0) }
    }
    /// The hash of the words' bytes, in order (a key made of several numbers).
    public static func hash64(_ words: UInt64...) -> UInt64 {
        words.withUnsafeBytes { hash($0) }
    }
}
