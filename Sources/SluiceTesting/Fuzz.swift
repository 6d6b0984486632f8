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

    /// Runs `body` with the target's seeded source and its iteration number until the duration is
    /// up, then prints how many iterations ran.
    public static func run(_ target: String, _ body: (inout FuzzRNG, Int) throws -> Void) rethrows {
        var rng = FuzzRNG(seed: seed(target))
        let end = Date().addingTimeInterval(seconds)
        var i = 0
        while Date() < end {
            try body(&rng, i)
            i += 1
        }
        print("fuzz \(target): \(i) iterations in \(seconds) s, 0 crashes")
    }

    /// One mutation of `b`: bit flip, truncation, splice with `other`, byte insert (NUL, invalid
    /// UTF-8, a structural byte from `specials`), a run repeated up to `maxRepeat` times, a huge
    /// number (when `numbers`), a removed byte, or a random byte.
    public static func mutate(_ b: [UInt8], _ r: inout FuzzRNG, other: [UInt8], specials: [UInt8], numbers: Bool, maxRepeat: Int) -> [UInt8] {
        var b = b
        var k = r.int(numbers ? 9 : 8)
        if !numbers && k >= 6 { k += 1 }
        switch k {
        case 0 where !b.isEmpty:
            let i = r.int(b.count); b[i] ^= UInt8(1) << UInt8(r.int(8))
        case 1 where !b.isEmpty:
            b = Array(b.prefix(r.int(b.count)))
        case 2:
            b = Array(b.prefix(r.int(b.count + 1))) + Array(other.suffix(r.int(other.count + 1)))
        case 3:
            let ins: [UInt8] = [[0], [0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80]][r.int(7)]
            b.insert(contentsOf: ins, at: r.int(b.count + 1))
        case 4 where !specials.isEmpty:
            b.insert(specials[r.int(specials.count)], at: r.int(b.count + 1))
        case 5 where !b.isEmpty:
            let i = r.int(b.count), n = 1 + r.int(min(16, b.count - i))
            let run = Array(b[i..<i + n])
            var rep: [UInt8] = []
            for _ in 0..<(1 + r.int(r.chance(8) ? maxRepeat : 20)) { rep += run }
            b.insert(contentsOf: rep, at: i)
        case 6:
            let digits = (0..<(1 + r.int(r.chance(4) ? 400 : 30))).map { _ in UInt8(ascii: "0") + UInt8(r.int(10)) }
            let num = (r.chance(2) ? [UInt8(ascii: "-")] : []) + digits + (r.chance(3) ? Array("e99999".utf8) : []) + (r.chance(3) ? Array(".5".utf8) : [])
            b.insert(contentsOf: num, at: r.int(b.count + 1))
        case 7 where !b.isEmpty:
            b.remove(at: r.int(b.count))
        default:
            if !b.isEmpty { let i = r.int(b.count); b[i] = UInt8(truncatingIfNeeded: r.next()) }
        }
        return b
    }
}
