#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Engine API replies, decoded with Codable: only the fields Sluice uses, all optional so that
// another API version's extra or missing fields never fail a decode.

/// `GET /version`.
public struct DockerVersion: Decodable, Sendable, Equatable {
    public var version: String?
    public var apiVersion: String?
    public var os: String?
    public var kernelVersion: String?

    enum CodingKeys: String, CodingKey {
        case version = "Version", apiVersion = "ApiVersion", os = "Os", kernelVersion = "KernelVersion"
    }
}

/// One entry of `GET /containers/json?all=1`.
public struct DockerContainerSummary: Decodable, Sendable, Equatable {
    public var id: String
    public var names: [String]?
    public var image: String?
    public var state: String?

    enum CodingKeys: String, CodingKey {
        case id = "Id", names = "Names", image = "Image", state = "State"
    }
}

/// One line of `GET /events`.
public struct DockerEvent: Decodable, Sendable, Equatable {
    public var type: String?
    public var action: String?
    public var actor: Actor?
    /// Older daemons: `id` / `status` at the top level.
    public var id: String?
    public var status: String?
    public var time: Int64?
    public var timeNano: Int64?

    public struct Actor: Decodable, Sendable, Equatable {
        public var id: String?
        public var attributes: [String: String]?
        enum CodingKeys: String, CodingKey { case id = "ID", attributes = "Attributes" }
    }

    enum CodingKeys: String, CodingKey {
        case type = "Type", action = "Action", actor = "Actor", id, status, time, timeNano
    }

    /// The container id the event is about.
    public var containerID: String? {
        if let a = actor?.id, !a.isEmpty { return a }
        if let id, !id.isEmpty { return id }
        return nil
    }

    /// `start`, `die`, ... (Docker appends details to some actions: `exec_start: sh -c ...`,
    /// `health_status: healthy`; only the verb is returned).
    public var verb: String {
        let a = action ?? status ?? ""
        if let colon = a.firstIndex(of: ":") { return String(a[..<colon]) }
        return a
    }
}

/// `GET /containers/<id>/json`.
struct DockerInspect: Decodable, Sendable {
    var id: String
    var name: String?
    var created: String?
    var image: String?
    var state: State?
    var config: Config?
    var logPath: String?
    var graphDriver: GraphDriver?
    var mounts: [Mount]?
    var networkSettings: NetworkSettings?
    var restartCount: Int?

    struct State: Decodable, Sendable {
        var status: String?
        var running: Bool?
        var pid: Int?
        var startedAt: String?
        var finishedAt: String?
        enum CodingKeys: String, CodingKey {
            case status = "Status", running = "Running", pid = "Pid", startedAt = "StartedAt", finishedAt = "FinishedAt"
        }
    }
    struct Config: Decodable, Sendable {
        var image: String?
        var labels: [String: String]?
        var env: [String]?
        enum CodingKeys: String, CodingKey { case image = "Image", labels = "Labels", env = "Env" }
    }
    struct GraphDriver: Decodable, Sendable {
        var name: String?
        var data: [String: String]?
        enum CodingKeys: String, CodingKey { case name = "Name", data = "Data" }
    }
    struct Mount: Decodable, Sendable {
        var type: String?
        var source: String?
        var destination: String?
        enum CodingKeys: String, CodingKey { case type = "Type", source = "Source", destination = "Destination" }
    }
    struct NetworkSettings: Decodable, Sendable {
        var ipAddress: String?
        var networks: [String: Network]?
        struct Network: Decodable, Sendable {
            var ipAddress: String?
            enum CodingKeys: String, CodingKey { case ipAddress = "IPAddress" }
        }
        enum CodingKeys: String, CodingKey { case ipAddress = "IPAddress", networks = "Networks" }
    }

    enum CodingKeys: String, CodingKey {
        case id = "Id", name = "Name", created = "Created", image = "Image", state = "State", config = "Config"
        case logPath = "LogPath", graphDriver = "GraphDriver", mounts = "Mounts", networkSettings = "NetworkSettings"
        case restartCount = "RestartCount"
    }
}

extension DockerInspect {
    /// The registry's model of this container.
    func containerInfo() -> ContainerInfo {
        var name = self.name ?? ""
        if name.hasPrefix("/") { name.removeFirst() }
        var info = ContainerInfo(id: id, name: name, image: config?.image ?? image ?? "",
                                 state: Self.state(state?.status, running: state?.running), runtime: .docker)
        info.pid = state?.pid ?? 0
        info.createdAt = DockerTime.unixNanos(created)
        info.startedAt = DockerTime.unixNanos(state?.startedAt)
        info.finishedAt = DockerTime.unixNanos(state?.finishedAt)
        info.ip = Self.ip(networkSettings)
        let labels = config?.labels ?? [:]
        info.labels = labels
        info.env = Self.envDictionary(config?.env ?? [])
        info.logPath = logPath ?? ""
        info.upperDir = graphDriver?.data?["UpperDir"] ?? ""
        // The merged dir exists only while the container runs (overlay mounted).
        info.mergedDir = info.state == .running ? graphDriver?.data?["MergedDir"] ?? "" : ""
        info.mounts = (mounts ?? []).compactMap { m in
            guard let d = m.destination, !d.isEmpty else { return nil }
            return ContainerMount(source: m.source ?? "", destination: d)
        }
        var (k8s, sandbox) = KubernetesNames.fromDocker(labels: labels, name: name)
        if sandbox, var pod = k8s {
            // A dockershim sandbox carries the pod's labels; other containers get them from it (DockerSource).
            pod.podLabels = KubernetesNames.podLabels(fromSandboxLabels: labels)
            if pod.containerName.isEmpty { pod.containerName = "POD" }
            k8s = pod
        }
        info.kubernetes = k8s
        info.isSandbox = sandbox
        return info
    }

    static func state(_ status: String?, running: Bool?) -> ContainerState {
        switch status {
        case "created": return .created
        case "running", "paused": return .running
        case "exited", "dead", "removing": return .exited
        case "restarting": return running == true ? .running : .exited
        default:
            if let running { return running ? .running : .exited }
            return .unknown
        }
    }

    /// `NetworkSettings.IPAddress`, else the first non-empty address among the networks (by name).
    static func ip(_ n: NetworkSettings?) -> String {
        if let ip = n?.ipAddress, !ip.isEmpty { return ip }
        for key in (n?.networks ?? [:]).keys.sorted() {
            if let ip = n?.networks?[key]?.ipAddress, !ip.isEmpty { return ip }
        }
        return ""
    }

    /// `["A=1", "B=x=y", "C"]` → `["A": "1", "B": "x=y", "C": ""]`; a later duplicate wins.
    static func envDictionary(_ env: [String]) -> [String: String] {
        var out: [String: String] = [:]
        out.reserveCapacity(env.count)
        for entry in env {
            if let eq = entry.firstIndex(of: "=") {
                let key = String(entry[..<eq])
                guard !key.isEmpty else { continue }
                out[key] = String(entry[entry.index(after: eq)...])
            } else if !entry.isEmpty {
                out[entry] = ""
            }
        }
        return out
    }
}

enum DockerJSON {
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws(DockerError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw DockerError.malformedReply(what, "\(error)", snippet: DockerError.snippet(bytes))
        }
    }
}
