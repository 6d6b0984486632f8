@testable import SluiceFiles
import Testing

/// copytruncate detection without files: heads, sizes and times handed in.
@Suite("input_file: copy detector")
struct CopyDetectorTests {
    /// A file being read, as the detector sees it.
    struct Followed: CopyDetector.File {
        var id: FileIdentity
        var path: String
        var head: [UInt8]
        var emittedOffset: Int64
        var pathGone = false
        var heldAsPossibleCopy = false
    }

    static let second: Int64 = 1_000_000_000
    static let t0: Int64 = 1_000 * second

    static func id(_ n: UInt64) -> FileIdentity { FileIdentity(dev: 1, inode: n) }
    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
    static let longHead = bytes("2024-05-01T10:00:00Z first line of the log\n")

    /// A detector and the files it knows, kept in step the way `FileInput.setHead` does.
    struct World {
        var detector = CopyDetector()
        var files: [FileIdentity: Followed] = [:]

        mutating func follow(_ f: Followed) {
            detector.headChanged(f.id, from: files[f.id]?.head ?? [], to: f.head)
            files[f.id] = f
            if f.emittedOffset > 0 { detector.firstRead(path: f.path) }
        }

        mutating func newFile(_ head: [UInt8], at path: String, id: FileIdentity, now: Int64 = t0) -> CopyDetector.NewFile {
            detector.newFile(head: head, path: path, id: id, now: now, among: files)
        }

        mutating func decide(_ held: FileReader.SuspectCopy, head: [UInt8], size: Int64, path: String, id: FileIdentity,
                             now: Int64) -> CopyDetector.Decision {
            detector.decide(held, head: head, size: size, path: path, id: id, now: now, among: files)
        }
    }

    static func held(twinHead: [UInt8] = [], twinOffset: Int64 = 0, size: Int64 = 0, at t: Int64 = t0) -> FileReader.SuspectCopy {
        FileReader.SuspectCopy(twinHead: twinHead, twinOffset: twinOffset, since: t, lastSize: size, lastChange: t)
    }

    static func readOffset(_ d: CopyDetector.Decision) -> Int64? {
        if case .read(let off, _, _, _) = d { return off }
        return nil
    }

    /// The original a decision names, and whether it was truncated since.
    static func origin(_ d: CopyDetector.Decision) -> (FileIdentity?, Bool)? {
        if case .read(_, _, let id, let truncated) = d { return (id, truncated) }
        return nil
    }

    static func waiting(_ d: CopyDetector.Decision) -> FileReader.SuspectCopy? {
        if case .wait(let sc) = d { return sc }
        return nil
    }

    // MARK: - New files

    @Test("A new empty file next to files read is held; elsewhere, or before anything was read there, it is read")
    func emptyNextToRead() {
        var w = World()
        #expect(w.newFile([], at: "/logs/app.log.1", id: Self.id(2)) == .read, "nothing read in /logs yet")
        w.follow(Followed(id: Self.id(1), path: "/logs/app.log", head: Self.longHead, emittedOffset: 100))
        #expect(w.newFile([], at: "/logs/app.log.1", id: Self.id(2)) == .emptyNextToRead)
        #expect(w.newFile([], at: "/other/app.log.1", id: Self.id(3)) == .read)
    }

    @Test("A held empty file that stays empty is read from 0 after a quiet second")
    func emptyStaysEmpty() throws {
        var w = World()
        w.follow(Followed(id: Self.id(1), path: "/logs/app.log", head: Self.longHead, emittedOffset: 100))
        let sc = Self.held()
        let early = try #require(Self.waiting(w.decide(sc, head: [], size: 0, path: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + Self.second / 2)))
        #expect(early.twinHead.isEmpty)
        #expect(Self.readOffset(w.decide(early, head: [], size: 0, path: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + Self.second)) == 0)
    }

    @Test("A held empty file whose first bytes match a file read is a copy: read after the part delivered")
    func emptyThenCopy() {
        var w = World()
        w.follow(Followed(id: Self.id(1), path: "/logs/app.log", head: Self.longHead, emittedOffset: 100))
        let d = w.decide(Self.held(), head: Self.longHead, size: 200, path: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + 10_000_000)
        #expect(Self.readOffset(d) == 100)
    }

    @Test("A file that starts like one being read (same directory) may be its copy")
    func twinBeingRead() {
        var w = World()
        w.follow(Followed(id: Self.id(1), path: "/logs/app.log", head: Self.longHead, emittedOffset: 300))
        #expect(w.newFile(Self.longHead, at: "/logs/app.log.1", id: Self.id(2))
            == .possibleCopy(twinHead: Self.longHead, twinOffset: 300, twinID: Self.id(1)))
        // Not itself, not another directory's file.
        #expect(w.newFile(Self.longHead, at: "/logs/app.log", id: Self.id(1)) == .read)
        #expect(w.newFile(Self.longHead, at: "/elsewhere/app.log", id: Self.id(3)) == .read)
    }

    @Test("Files gone from their path, held themselves, or with nothing delivered are no twins")
    func notTwins() {
        var w = World()
        w.follow(Followed(id: Self.id(1), path: "/logs/a.log", head: Self.longHead, emittedOffset: 300, pathGone: true))
        w.follow(Followed(id: Self.id(2), path: "/logs/b.log", head: Self.longHead, emittedOffset: 300, heldAsPossibleCopy: true))
        w.follow(Followed(id: Self.id(3), path: "/logs/c.log", head: Self.longHead, emittedOffset: 0))
        #expect(w.newFile(Self.longHead, at: "/logs/d.log", id: Self.id(4)) == .read)
    }

    @Test("Short heads are compared as far as both go, indexed or not")
    func shortHeads() {
        var w = World()
        let short = Self.bytes("ab\n")
        w.follow(Followed(id: Self.id(1), path: "/logs/a.log", head: short, emittedOffset: 3))
        // A long new head finds the short twin by the scan of short heads.
        #expect(w.newFile(Self.bytes("ab\ncdefghijklmnopqrstuvwxyz\n"), at: "/logs/a.log.1", id: Self.id(2))
            == .possibleCopy(twinHead: short, twinOffset: 3, twinID: Self.id(1)))
        // A short new head finds a long twin by the scan of all.
        w = World()
        w.follow(Followed(id: Self.id(1), path: "/logs/a.log", head: Self.longHead, emittedOffset: 50))
        #expect(w.newFile(Array(Self.longHead.prefix(4)), at: "/logs/a.log.1", id: Self.id(2))
            == .possibleCopy(twinHead: Self.longHead, twinOffset: 50, twinID: Self.id(1)))
    }

    @Test("The head index follows head changes")
    func headIndex() {
        var w = World()
        w.follow(Followed(id: Self.id(1), path: "/logs/a.log", head: Self.longHead, emittedOffset: 50))
        #expect(w.detector.headIndex.count == 1)
        w.follow(Followed(id: Self.id(1), path: "/logs/a.log", head: [], emittedOffset: 50))
        #expect(w.detector.headIndex.isEmpty)
        #expect(w.newFile(Self.longHead, at: "/logs/a.log.1", id: Self.id(2)) == .read)
    }

    // MARK: - Truncated files

    @Test("A file whose head matches one truncated lately is a copy; it skips the part delivered")
    func copyOfTruncated() throws {
        var w = World()
        w.detector.truncated(path: "/logs/app.log", head: Self.longHead, delivered: 500, now: Self.t0, id: Self.id(1))
        let verdict = w.newFile(Self.longHead, at: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + Self.second)
        #expect(verdict == .possibleCopy(twinHead: Self.longHead, twinOffset: 500, twinID: Self.id(1)))
        let sc = Self.held(twinHead: Self.longHead, twinOffset: 500, size: 200, at: Self.t0 + Self.second)
        // Still being copied (shorter than the part delivered), and not quiet: wait.
        let later = try #require(Self.waiting(w.decide(sc, head: Self.longHead, size: 300, path: "/logs/app.log.1", id: Self.id(2),
                                                       now: Self.t0 + Self.second + 100_000_000)))
        #expect(later.lastSize == 300)
        // Copied as far as the part delivered: read after it.
        #expect(Self.readOffset(w.decide(later, head: Self.longHead, size: 800, path: "/logs/app.log.1", id: Self.id(2),
                                         now: Self.t0 + Self.second + 200_000_000)) == 500)
        // Stopped short of it for a second: read after what there is.
        #expect(Self.readOffset(w.decide(later, head: Self.longHead, size: 300, path: "/logs/app.log.1", id: Self.id(2),
                                         now: Self.t0 + 3 * Self.second)) == 300)
    }

    /// logrotate's copytruncate copies, then truncates; meanwhile the application appends and
    /// the original's reader reads on. What it emitted after the copy was first seen is in the
    /// copy too: the copy is read after all the original emitted, not after what it had then.
    @Test("A copy skips what its original emitted while it was being made, before and after the truncation")
    func originalReadOnDuringTheCopy() throws {
        var w = World()
        w.follow(Followed(id: Self.id(1), path: "/logs/app.log", head: Self.longHead, emittedOffset: 1000))
        guard case .possibleCopy(let head, let off, let tid) = w.newFile(Self.longHead, at: "/logs/app.log.1", id: Self.id(2)) else {
            Issue.record("not held as a possible copy")
            return
        }
        #expect(off == 1000)
        var sc = FileReader.SuspectCopy(twinHead: head, twinOffset: off, since: Self.t0, lastSize: 600, lastChange: Self.t0, twinID: tid)
        // The copy is still being written, and the original's reader reads 100 bytes more.
        w.follow(Followed(id: Self.id(1), path: "/logs/app.log", head: Self.longHead, emittedOffset: 1100))
        sc = try #require(Self.waiting(w.decide(sc, head: Self.longHead, size: 900, path: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + 10_000_000)))
        #expect(sc.twinOffset == 1100)
        // Copied: read after the 1100 bytes, not after 1000; the original is named, not truncated yet.
        let before = w.decide(sc, head: Self.longHead, size: 1100, path: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + 20_000_000)
        #expect(Self.readOffset(before) == 1100)
        #expect(Self.origin(before)?.0 == Self.id(1) && Self.origin(before)?.1 == false)
        // The same with the truncation seen first: the original had emitted 1150 when cut.
        w.detector.truncated(path: "/logs/app.log", head: Self.longHead, delivered: 1150, now: Self.t0 + 30_000_000, id: Self.id(1))
        w.follow(Followed(id: Self.id(1), path: "/logs/app.log", head: Self.bytes("2024-05-01T10:09"), emittedOffset: 16))
        let after = w.decide(sc, head: Self.longHead, size: 1150, path: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + 40_000_000)
        #expect(Self.readOffset(after) == 1150)
        #expect(Self.origin(after)?.0 == Self.id(1) && Self.origin(after)?.1 == true, "the original has been truncated since")
        // Another file's truncation with the same head does not count.
        var other = World()
        other.follow(Followed(id: Self.id(1), path: "/logs/app.log", head: Self.longHead, emittedOffset: 1000))
        other.detector.truncated(path: "/logs/b.log", head: Self.longHead, delivered: 5000, now: Self.t0, id: Self.id(7))
        #expect(Self.readOffset(other.decide(sc, head: Self.longHead, size: 1200, path: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + 20_000_000)) == 1100)
    }

    @Test("A truncated file without a head or without anything delivered is not remembered")
    func truncatedNothing() {
        var w = World()
        w.detector.truncated(path: "/logs/app.log", head: [], delivered: 500, now: Self.t0, id: Self.id(1))
        w.detector.truncated(path: "/logs/app.log", head: Self.longHead, delivered: 0, now: Self.t0, id: Self.id(1))
        #expect(w.detector.recentHeads.isEmpty)
    }

    @Test("An unrelated file is read from 0")
    func unrelated() {
        var w = World()
        w.detector.truncated(path: "/logs/app.log", head: Self.longHead, delivered: 500, now: Self.t0, id: Self.id(1))
        w.follow(Followed(id: Self.id(1), path: "/logs/b.log", head: Self.longHead, emittedOffset: 70))
        #expect(w.newFile(Self.bytes("something else entirely, line one\n"), at: "/logs/c.log", id: Self.id(3)) == .read)
        // Held, its bytes then disagree with its twin's: from the start.
        let sc = Self.held(twinHead: Self.longHead, twinOffset: 500)
        #expect(Self.readOffset(w.decide(sc, head: Self.bytes("2024-05-01T10:00:00Z another\n"), size: 29, path: "/logs/c.log",
                                         id: Self.id(3), now: Self.t0)) == 0)
    }

    @Test("A held file too short to be told from its twin is read from 0 after a quiet second")
    func tooShort() throws {
        var w = World()
        let sc = Self.held(twinHead: Self.longHead, twinOffset: 500, size: 5)
        let prefix = Array(Self.longHead.prefix(5))
        _ = try #require(Self.waiting(w.decide(sc, head: prefix, size: 5, path: "/logs/a.log.1", id: Self.id(2), now: Self.t0 + 10)))
        #expect(Self.readOffset(w.decide(sc, head: prefix, size: 5, path: "/logs/a.log.1", id: Self.id(2), now: Self.t0 + Self.second)) == 0)
    }

    @Test("Truncated heads expire after a minute")
    func expiry() {
        var w = World()
        w.detector.truncated(path: "/logs/app.log", head: Self.longHead, delivered: 500, now: Self.t0, id: Self.id(1))
        #expect(w.newFile(Self.longHead, at: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + 60 * Self.second)
            == .possibleCopy(twinHead: Self.longHead, twinOffset: 500, twinID: Self.id(1)))
        #expect(w.newFile(Self.longHead, at: "/logs/app.log.1", id: Self.id(2), now: Self.t0 + 60 * Self.second + 1) == .read)
        #expect(w.detector.recentHeads.isEmpty)
    }

    @Test("A truncated head counts only in its own directory")
    func truncatedOtherDirectory() {
        var w = World()
        w.detector.truncated(path: "/logs/app.log", head: Self.longHead, delivered: 500, now: Self.t0, id: Self.id(1))
        #expect(w.newFile(Self.longHead, at: "/other/app.log.1", id: Self.id(2)) == .read)
    }

    @Test("Directory of a path")
    func directoryOf() {
        #expect(CopyDetector.directory(of: "/a/b.log") == "/a")
        #expect(CopyDetector.directory(of: "/b.log") == "/")
        #expect(CopyDetector.directory(of: "b.log") == ".")
    }
}
