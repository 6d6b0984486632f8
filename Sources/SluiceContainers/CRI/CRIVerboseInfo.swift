#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JSON that a CRI runtime puts in `info["info"]` of a verbose `ContainerStatus`.
/// containerd: `sandboxID`, `pid`, `snapshotter`, `snapshotKey`, `runtimeSpec`, `config`, ...;
/// CRI-O: `sandboxID`, `pid`, `runtimeSpec`. Every field is optional: a runtime that leaves one
/// out, or sends something else, costs that field only.
public struct CRIVerboseContainerInfo: Sendable, Equatable, Decodable {
    public var sandboxID: String?
    public var pid: Int?
    public var snapshotter: String?
    public var snapshotKey: String?
    public var runtimeSpec: OCISpec?

    public init(sandboxID: String? = nil, pid: Int? = nil, snapshotter: String? = nil, snapshotKey: String? = nil, runtimeSpec: OCISpec? = nil) {
        self.sandboxID = sandboxID
        self.pid = pid
        self.snapshotter = snapshotter
        self.snapshotKey = snapshotKey
        self.runtimeSpec = runtimeSpec
    }

    enum CodingKeys: String, CodingKey {
        case sandboxID, pid, snapshotter, snapshotKey, runtimeSpec
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sandboxID = try? c.decodeIfPresent(String.self, forKey: .sandboxID)
        pid = try? c.decodeIfPresent(Int.self, forKey: .pid)
        snapshotter = try? c.decodeIfPresent(String.self, forKey: .snapshotter)
        snapshotKey = try? c.decodeIfPresent(String.self, forKey: .snapshotKey)
        runtimeSpec = try? c.decodeIfPresent(OCISpec.self, forKey: .runtimeSpec)
    }

    /// Parses `info["info"]`; nil when absent or not a JSON object.
    public static func parse(_ info: [String: String]) -> CRIVerboseContainerInfo? {
        guard let text = info["info"], !text.isEmpty else { return nil }
        return try? JSONDecoder().decode(CRIVerboseContainerInfo.self, from: Data(text.utf8))
    }
}

/// The JSON in `info["info"]` of a verbose `PodSandboxStatus` (containerd: `pid`, `image`,
/// `config` = the PodSandboxConfig the kubelet sent, with `log_directory`; `runtimeSpec`).
public struct CRIVerboseSandboxInfo: Sendable, Equatable, Decodable {
    public var pid: Int?
    public var image: String?
    public var logDirectory: String?
    public var runtimeSpec: OCISpec?

    enum CodingKeys: String, CodingKey {
        case pid, image, config, runtimeSpec
    }

    struct Config: Decodable {
        var logDirectory: String?
        enum CodingKeys: String, CodingKey {
            case logDirectory = "log_directory"
            case logDirectoryCamel = "logDirectory"
        }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            logDirectory = (try? c.decodeIfPresent(String.self, forKey: .logDirectory))
                ?? (try? c.decodeIfPresent(String.self, forKey: .logDirectoryCamel))
        }
    }

    public init(pid: Int? = nil, image: String? = nil, logDirectory: String? = nil, runtimeSpec: OCISpec? = nil) {
        self.pid = pid
        self.image = image
        self.logDirectory = logDirectory
        self.runtimeSpec = runtimeSpec
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pid = try? c.decodeIfPresent(Int.self, forKey: .pid)
        image = try? c.decodeIfPresent(String.self, forKey: .image)
        logDirectory = (try? c.decodeIfPresent(Config.self, forKey: .config))?.logDirectory
        runtimeSpec = try? c.decodeIfPresent(OCISpec.self, forKey: .runtimeSpec)
    }

    public static func parse(_ info: [String: String]) -> CRIVerboseSandboxInfo? {
        guard let text = info["info"], !text.isEmpty else { return nil }
        return try? JSONDecoder().decode(CRIVerboseSandboxInfo.self, from: Data(text.utf8))
    }
}

/// The parts of an OCI runtime spec that Sluice reads.
public struct OCISpec: Sendable, Equatable, Decodable {
    public struct Process: Sendable, Equatable, Decodable {
        public var env: [String]?
        public init(env: [String]? = nil) { self.env = env }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            env = try? c.decodeIfPresent([String].self, forKey: .env)
        }
        enum CodingKeys: String, CodingKey { case env }
    }

    public struct Mount: Sendable, Equatable, Decodable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?
        public init(destination: String, type: String? = nil, source: String? = nil, options: [String]? = nil) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
        }
    }

    public struct Root: Sendable, Equatable, Decodable {
        public var path: String?
    }

    public var process: Process?
    public var mounts: [Mount]?
    public var root: Root?
    public var annotations: [String: String]?

    public init(process: Process? = nil, mounts: [Mount]? = nil, root: Root? = nil, annotations: [String: String]? = nil) {
        self.process = process
        self.mounts = mounts
        self.root = root
        self.annotations = annotations
    }

    enum CodingKeys: String, CodingKey { case process, mounts, root, annotations }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        process = try? c.decodeIfPresent(Process.self, forKey: .process)
        // One malformed mount entry must not cost the others.
        if var list = try? c.nestedUnkeyedContainer(forKey: .mounts) {
            var out: [Mount] = []
            while !list.isAtEnd {
                if let m = try? list.decode(Mount.self) {
                    out.append(m)
                } else {
                    _ = try? list.decode(Skip.self)
                }
            }
            mounts = out
        } else {
            mounts = nil
        }
        root = try? c.decodeIfPresent(Root.self, forKey: .root)
        annotations = try? c.decodeIfPresent([String: String].self, forKey: .annotations)
    }

    /// Consumes one JSON value of any shape.
    private struct Skip: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    /// `process.env` as a map (`K=V`; a bare `K` maps to ""; the last duplicate wins, as execve does).
    public var environment: [String: String] {
        CRIVerboseContainerInfo.environment(process?.env ?? [])
    }

    /// Bind mounts with a host path source, in spec order.
    public var bindMounts: [ContainerMount] {
        (mounts ?? []).compactMap { m in
            guard let src = m.source, src.hasPrefix("/") else { return nil }
            let isBind = m.type == "bind" || (m.options ?? []).contains { $0 == "bind" || $0 == "rbind" }
            return isBind ? ContainerMount(source: src, destination: m.destination) : nil
        }
    }
}

extension CRIVerboseContainerInfo {
    public static func environment(_ list: [String]) -> [String: String] {
        var env: [String: String] = [:]
        for item in list {
            if let eq = item.firstIndex(of: "=") {
                env[String(item[..<eq])] = String(item[item.index(after: eq)...])
            } else if !item.isEmpty {
                env[item] = ""
            }
        }
        return env
    }
}
