import Glibc
@testable import SluiceFiles
import SluiceSystem
import SluiceTesting
import Testing

/// Positions written in place on every acknowledgement: what a `kill -9` (no persist) leaves is
/// what the next start resumes from; a damaged slot falls back to the JSON checkpoint.
@Suite("PositionJournal") struct PositionJournalTests {
    let a = FileIdentity(dev: 2049, inode: 100)
    let b = FileIdentity(dev: 2049, inode: 7)
    let sig = FileSignature(hash: 0xABCDEF, length: 64)

    @Test func acknowledgedPositionsSurviveWithoutPersist() throws {
        let tmp = TempDir("sluice-journal")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        t.track(a, path: "/logs/a.log", signature: sig, offset: 0)
        t.track(b, path: "/logs/b.log", signature: sig, offset: 10)
        try t.persist(force: true)
        let s1 = t.emitted(a, upTo: 100), s2 = t.emitted(a, upTo: 250), s3 = t.emitted(b, upTo: 40)
        t.acknowledged(a, sequence: s1)
        t.acknowledged(b, sequence: s3)
        t.acknowledged(a, sequence: s2)
        // No persist: the process "dies" here. A new table reads what the journal holds.
        let after = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        #expect(after.lookup(a)?.offset == 250)
        #expect(after.lookup(b)?.offset == 40)
        #expect(after.lookup(a)?.signature == sig)
        #expect(after.lookup(a)?.path == "/logs/a.log")
    }

    @Test func aFileFirstTrackedAfterTheLastPersistIsKnownToo() throws {
        let tmp = TempDir("sluice-journal")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        t.track(a, path: "/logs/new.log", signature: sig, offset: 0)
        t.acknowledged(a, sequence: t.emitted(a, upTo: 77))
        let after = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        #expect(after.lookup(a)?.offset == 77)
        #expect(after.lookup(a)?.path == "/logs/new.log")
    }

    @Test func aReleasedFileIsForgotten() throws {
        let tmp = TempDir("sluice-journal")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        t.track(a, path: "/logs/a.log", signature: sig, offset: 5)
        t.track(b, path: "/logs/b.log", signature: sig, offset: 6)
        t.release(a)
        let after = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        #expect(after.lookup(a) == nil)
        #expect(after.lookup(b)?.offset == 6)
    }

    @Test func aTruncationLowersThePosition() throws {
        let tmp = TempDir("sluice-journal")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        t.track(a, path: "/logs/a.log", signature: sig, offset: 0)
        t.acknowledged(a, sequence: t.emitted(a, upTo: 500))
        t.reset(a, offset: 0, signature: .empty)
        let after = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        #expect(after.lookup(a)?.offset == 0)
        #expect(after.lookup(a)?.signature == .empty)
    }

    @Test func aDamagedSlotFallsBackToTheJSONCheckpoint() throws {
        let tmp = TempDir("sluice-journal")
        defer { tmp.remove() }
        let t = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        t.track(a, path: "/logs/a.log", signature: sig, offset: 0)
        t.acknowledged(a, sequence: t.emitted(a, upTo: 300))
        try t.persist(force: true)
        t.acknowledged(a, sequence: t.emitted(a, upTo: 900))
        // A power loss tore the slot: flip one byte of its offset.
        var bytes = readFileBytes(t.journalPath)
        try #require(bytes.count >= PositionJournal.slotSize)
        bytes[25] ^= 0x40
        writeFile(t.journalPath, bytes)
        let after = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        #expect(after.lookup(a)?.offset == 300, "the slot fails its checksum; the JSON position is used")
    }

    @Test func slotsRoundTripAndLongPathsAreLeftOut() {
        var buf = [UInt8](repeating: 0, count: PositionJournal.slotSize)
        let s = PositionJournal.Slot(identity: a, offset: 123_456_789_012, signature: sig, path: "/var/log/app.log", generation: 42)
        PositionJournal.encode(s, into: &buf)
        #expect(PositionJournal.decode(buf) == s)
        let long = PositionJournal.Slot(identity: b, offset: 1, signature: sig, path: String(repeating: "x", count: 600), generation: 1)
        PositionJournal.encode(long, into: &buf)
        #expect(PositionJournal.decode(buf)?.path == "")
        #expect(PositionJournal.decode(buf)?.offset == 1)
        buf[0] = 0
        #expect(PositionJournal.decode(buf) == nil)
    }
}

@Suite struct PreviousRunTests {
    @Test func lastSavedIsNilOnAFirstStartThenTheNewestSave() throws {
        let tmp = TempDir("sluice-prevrun")
        defer { tmp.remove() }
        let first = try CheckpointTable(dataDir: tmp.path, pipeline: "p")
        #expect(first.previousRunLastSaved == nil, "a first start (the journal just created is empty)")
        first.track(FileIdentity(dev: 1, inode: 2), path: "/a.log", signature: FileSignature(hash: 1, length: 1), offset: 10)
        try first.persist(force: true)
        let before = Sys.wallNanos()
        let saved = try #require(try CheckpointTable(dataDir: tmp.path, pipeline: "p").previousRunLastSaved)
        #expect(saved <= before && before - saved < 60_000_000_000)
    }
}
