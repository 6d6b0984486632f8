import Glibc
import Logging
import SluiceCore
import SluiceSystem

// inotify event dispatch, and the size poll that catches what events missed.
extension FileInput {
    // MARK: - Events

    func handle(events: [Inotify.Event]) {
        for ev in events {
            if ev.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                logger.warning("inotify queue overflowed; rescanning.")
                var s = Set<FileIdentity>()
                scanAll(existedBefore: false, seen: &s)
                for r in readers.values { r.dirty = true }
                continue
            }
            guard let dir = watches[ev.wd] else { continue }
            if ev.mask & (UInt32(IN_IGNORED) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)) != 0 && ev.name.isEmpty {
                if ev.mask & UInt32(IN_IGNORED) != 0 || ev.mask & UInt32(IN_DELETE_SELF) != 0 {
                    watches[ev.wd] = nil
                    if watchedDirs[dir] == ev.wd { watchedDirs[dir] = nil }
                }
                continue
            }
            if ev.name.isEmpty { continue }
            let path = dir == "/" ? "/" + ev.name : dir + "/" + ev.name
            let isDir = ev.mask & UInt32(IN_ISDIR) != 0
            if isDir {
                if ev.mask & (UInt32(IN_DELETE) | UInt32(IN_MOVED_FROM)) != 0 {
                    // Forget the watch now: the kernel may report the directory's own removal late
                    // (while descriptors of its files are held), and a new directory of the same
                    // name must be watched at once.
                    for (d, wd) in watchedDirs where d == path || d.hasPrefix(path + "/") {
                        watchedDirs[d] = nil
                        watches[wd] = nil
                        inotify?.removeWatch(wd)
                    }
                }
                if ev.mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0 {
                    for t in targets.values {
                        for p in t.patterns where p.baseDirectory.hasPrefix(path + "/") {
                            // On the way to a base directory that did not exist: go as deep as exists now.
                            var s = Set<FileIdentity>()
                            scanDirectory(p.baseDirectory, rel: [], pattern: p, target: t, existedBefore: false, seen: &s)
                        }
                        for p in t.patterns {
                            if let rel = p.relativeComponents(ofDirectory: path), rel.count <= p.maxRelativeDepth {
                                var s = Set<FileIdentity>()
                                scanDirectory(path, rel: rel, pattern: p, target: t, existedBefore: false, seen: &s)
                            }
                        }
                    }
                }
                continue
            }
            if ev.mask & (UInt32(IN_DELETE) | UInt32(IN_MOVED_FROM)) != 0 {
                // A stale event: the name was deleted and created again, and the new file was
                // already found (by a rescan, or by a reader whose path stopped leading to it),
                // so `byPath` names the new file. It must not be taken for gone: it would be
                // released and found again as a new file, and read again from the start.
                if let id = byPath[path], case .success(let st) = Sys.stat(path), st.dev == id.dev, st.inode == id.inode { continue }
                if let id = byPath[path], let r = readers[id] {
                    if ev.mask & UInt32(IN_MOVED_FROM) != 0 { context.pipelineMetrics.rotations.add(1) }
                    byPath[path] = nil
                    r.pathGone = true
                    r.goneSince = Sys.monotonicNanos()
                    r.dirty = true
                }
                continue
            }
            if let id = byPath[path], let r = readers[id] {
                r.dirty = true
                if ev.mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0, let t = target(for: path) {
                    // Possibly a new file under a known path.
                    consider(path: path, existedBefore: false, target: t)
                }
                continue
            }
            if ev.mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO) | UInt32(IN_MODIFY) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_ATTRIB)) != 0,
               let t = target(for: path) {
                consider(path: path, existedBefore: false, target: t)
            }
        }
    }

    /// Fallback for missed events: compare sizes of followed files.
    func pollReaders(now: Int64) {
        for r in readers.values where !r.dirty {
            if r.isOpen {
                if case .success(let st) = Sys.fstat(r.fd) {
                    if st.size != r.readOffset || st.mtimeNanos != r.lastMtime || (st.nlink == 0) != r.deleted { r.dirty = true }
                }
            } else if !r.pathGone {
                switch Sys.stat(r.path) {
                case .success(let st):
                    if st.dev != r.id.dev || st.inode != r.id.inode {
                        r.pathGone = true
                        r.goneSince = now
                        if let t = target(for: r.path) { consider(path: r.path, existedBefore: false, target: t) }
                    } else if st.size != r.lastSize || st.size != r.readOffset || st.mtimeNanos != r.lastMtime {
                        r.dirty = true
                    }
                case .failure:
                    r.pathGone = true
                    r.goneSince = now
                }
            }
        }
    }
}
