#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The fast path for Docker: a container read from dockerd's own state on disk the moment its
/// `create` / `start` event arrives, before (and whatever the delay of) `GET /containers/<id>/json`.
///
/// dockerd answers an inspect only after the container's lock is free, which under load (many
/// containers starting and dying at once) takes seconds: long enough for a Job to run, exit and be
/// removed. Its state files are written at create: `containers/<id>/config.v2.json` (name, image,
/// labels, env, mounts, state) and `hostconfig.json` (log driver); the json-file log is
/// `containers/<id>/<id>-json.log`, and overlay2's writable layer is `overlay2/<cache id>/diff`
/// with the cache id in `image/overlay2/layerdb/mounts/<id>/mount-id`. Those paths are dockerd's
/// layout (`DockerRootDir` from `GET /info`), read under the host root.
public struct DockerDiskState: Sendable {
    /// dockerd's root (`DockerRootDir`), as dockerd reports it.
    public var rootDir: String
    /// `Driver` (storage driver) and `LoggingDriver` (default log driver) of `GET /info`.
    public var storageDriver: String
    public var defaultLogDriver: String
    public var hostRoot: String

    public init(rootDir: String, storageDriver: String, defaultLogDriver: String, hostRoot: String) {
        self.rootDir = rootDir
        self.storageDriver = storageDriver
        self.defaultLogDriver = defaultLogDriver
        self.hostRoot = hostRoot
    }

    struct ConfigV2: Decodable {
        var ID: String?
        var Name: String?
        var Created: String?
        var Image: String?
        var LogPath: String?
        var Driver: String?
        var RestartCount: Int?
        var State: StateV2?
        var Config: DockerInspect.Config?
        var MountPoints: [String: MountPoint]?
        struct StateV2: Decodable {
            var Running: Bool?
            var Pid: Int?
            var StartedAt: String?
            var FinishedAt: String?
        }
        struct MountPoint: Decodable {
            var Source: String?
            var Destination: String?
        }
    }

    struct HostConfig: Decodable {
        struct LogConfig: Decodable { var `Type`: String? }
        var LogConfig: LogConfig?
    }

    private func path(_ p: String) -> String { CRIRootfs.join(hostRoot, p) }

    private var root: String { rootDir.hasSuffix("/") ? String(rootDir.dropLast()) : rootDir }

    /// The container as dockerd's files describe it; nil when they are not there (yet, or any more)
    /// or cannot be parsed.
    public func containerInfo(id: String) -> ContainerInfo? {
        guard !rootDir.isEmpty, !id.isEmpty, !id.contains("/"), !id.contains(".") else { return nil }
        let dir = "\(root)/containers/\(id)"
        guard let data = FileManager.default.contents(atPath: path(dir + "/config.v2.json")),
              let c = try? JSONDecoder().decode(ConfigV2.self, from: data) else { return nil }
        var logDriver = defaultLogDriver
        if let hd = FileManager.default.contents(atPath: path(dir + "/hostconfig.json")),
           let h = try? JSONDecoder().decode(HostConfig.self, from: hd), let t = h.LogConfig?.Type, !t.isEmpty {
            logDriver = t
        }
        var logPath = c.LogPath ?? ""
        if logPath.isEmpty && logDriver == "json-file" { logPath = "\(dir)/\(id)-json.log" }
        var graph: DockerInspect.GraphDriver? = nil
        let driver = c.Driver ?? storageDriver
        if driver == "overlay2",
           let m = FileManager.default.contents(atPath: path("\(root)/image/overlay2/layerdb/mounts/\(id)/mount-id")) {
            let cacheID = String(decoding: m, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !cacheID.isEmpty, !cacheID.contains("/") {
                graph = .init(name: driver, data: ["UpperDir": "\(root)/overlay2/\(cacheID)/diff", "MergedDir": "\(root)/overlay2/\(cacheID)/merged"])
            }
        }
        let running = c.State?.Running ?? false
        let started = c.State?.StartedAt.map { DockerTime.unixNanos($0) } ?? 0
        let status = running ? "running" : (started > 0 ? "exited" : "created")
        let inspect = DockerInspect(
            id: c.ID ?? id, name: c.Name, created: c.Created, image: c.Image,
            state: .init(status: status, running: running, pid: c.State?.Pid, startedAt: c.State?.StartedAt, finishedAt: c.State?.FinishedAt),
            config: c.Config, logPath: logPath, graphDriver: graph,
            mounts: (c.MountPoints ?? [:]).values.sorted { ($0.Destination ?? "") < ($1.Destination ?? "") }
                .map { .init(type: nil, source: $0.Source, destination: $0.Destination) },
            networkSettings: nil, restartCount: c.RestartCount)
        return inspect.containerInfo()
    }
}

/// `GET /info`: where dockerd keeps its state.
public struct DockerInfo: Decodable, Sendable, Equatable {
    public var dockerRootDir: String?
    public var driver: String?
    public var loggingDriver: String?
    enum CodingKeys: String, CodingKey { case dockerRootDir = "DockerRootDir", driver = "Driver", loggingDriver = "LoggingDriver" }
}
