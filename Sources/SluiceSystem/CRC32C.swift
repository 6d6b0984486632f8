import CCRC32C

/// CRC-32C (Castagnoli): the disk buffer's frame checksum. No listed package computes it
/// (zlib's CRC-32 is another polynomial, reachable only through compress-nio's internal module);
/// the C target `CCRC32C` uses the CPU's `crc32` instruction (SSE 4.2) where there is one, which a
/// byte-wise table in Swift was 10x slower than and the disk buffer's largest cost.
public enum CRC32C {
    /// Continues `crc` (start with 0) over `bytes`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return sluice_crc32c_update(crc, base, bytes.count)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }

    /// Whether the hardware instruction is used on this CPU.
    public static var usesHardware: Bool { sluice_crc32c_hardware() != 0 }
}
