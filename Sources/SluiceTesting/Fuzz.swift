import Foundation

/// SplitMix64: the seeded random source of the randomized robustness (fuzz) tests, so a failing
/// run replays exactly from its printed seed.
public struct FuzzRNG: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A number in `0..<n` (0 when `n` ≤ 1).
    public mutating func int(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
    /// True one time in `inN`.
    public mutating func chance(_ inN: Int) -> Bool { int(inN) == 0 }
}

/// What every fuzz target shares: its duration and seed from the environment, and random input.
public enum FuzzInput {
    /// `SLUICE_FUZZ_SECONDS` per target (default 2).
    public static var seconds: Double { Double(ProcessInfo.processInfo.environment["SLUICE_FUZZ_SECONDS"] ?? "") ?? 2 }

    /// `SLUICE_FUZZ_SEED`, or a random one; printed so that the run can be replayed.
    public static func seed(_ target: String) -> UInt64 {
        let s = UInt64(ProcessInfo.processInfo.environment["SLUICE_FUZZ_SEED"] ?? "") ?? UInt64(UInt32.random(in: 0...UInt32.max))
        print("fuzz \(target): seed \(s) (SLUICE_FUZZ_SEED=\(s) replays), \(seconds) s")
        return s
    }

    /// Up to `max` random bytes, from `alphabet` when given.
    public static func randomBytes(_ r: inout FuzzRNG, max: Int = 64, alphabet: [UInt8]? = nil) -> [UInt8] {
        let n = r.int(max + 1)
        return (0..<n).map { _ in alphabet.map { $0[r.int($0.count)] } ?? UInt8(truncatingIfNeeded: r.next()) }
    }
}
