/// "Did you mean …?" for misspelt keys and plugin types.
public enum Suggestions {
    /// The candidate `word` was most likely meant to be, or nil.
    ///
    /// In order: a candidate equal to `word` ignoring case; the closest candidate within a
    /// Levenshtein distance of 3 (ignoring case, and at most half the length of `word`, so that
    /// short words do not get far-fetched suggestions); a candidate of which `word` is a prefix or
    /// that is a prefix of `word` (`FilePath` → `FilePaths`). Ties go to the earlier candidate.
    public static func closest(to word: String, in candidates: [String]) -> String? {
        let lowered = word.lowercased()
        if let match = candidates.first(where: { $0.lowercased() == lowered }) {
            return match
        }
        let limit = min(3, max(1, word.count / 2))
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = levenshtein(lowered, candidate.lowercased())
            if distance <= limit, distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        if let best { return best.candidate }
        if lowered.count >= 3 {
            var bestPrefix: (candidate: String, difference: Int)?
            for candidate in candidates {
                let other = candidate.lowercased()
                guard other.count >= 3, other.hasPrefix(lowered) || lowered.hasPrefix(other) else { continue }
                let difference = abs(other.count - lowered.count)
                if difference < (bestPrefix?.difference ?? .max) {
                    bestPrefix = (candidate, difference)
                }
            }
            if let bestPrefix { return bestPrefix.candidate }
        }
        return nil
    }

    /// The edit distance between two strings, counted in Characters.
    public static func levenshtein(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
