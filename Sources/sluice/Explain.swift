import Glibc
import ArgumentParser
import Foundation
import Logging
import SluiceConfig
import SluiceContainers
import SluiceSystem

/// Where the container runtimes are: shared by `run` and `explain`.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Docker Engine API endpoint (env DOCKER_HOST; default unix:///var/run/docker.sock).")
    var dockerHost: String?

    @Option(name: .long, help: "CRI socket of containerd or CRI-O (env CONTAINERD_SOCK_PATH; default: the first that exists of /run/containerd/containerd.sock, /run/k3s/containerd/containerd.sock, /var/run/crio/crio.sock).")
    var criSocket: String?

    @Option(name: .long, help: "The kubelet's pod log directory, as a host path.")
    var podLogDir: String = "/var/log/pods"

    @Option(name: .long, help: "Where the host's / is mounted (default /logtail_host if it exists, else /).")
    var hostRoot: String?

    @Option(name: .long, help: "Static container info file (env ALIYUN_LOG_STATIC_CONTAINER_INFO): serverless mode.")
    var staticContainerInfo: String?

    func discoveryOptions(environment: [String: String]) -> DiscoveryOptions {
        var o = DiscoveryOptions()
        o.dockerHost = dockerHost ?? environment["DOCKER_HOST"]
        o.criSocket = criSocket ?? environment["CONTAINERD_SOCK_PATH"]
        o.podLogDir = podLogDir
        o.hostRoot = hostRoot
        o.staticContainerInfo = staticContainerInfo ?? environment["ALIYUN_LOG_STATIC_CONTAINER_INFO"]
        if let s = environment["docker_config_update_interval"], let v = Double(s), v > 0 { o.pollIntervalSeconds = v }
        o.environment = environment
        return o
    }
}

func processEnvironment() -> [String: String] {
    ProcessInfo.processInfo.environment
}

struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the containers Sluice finds on this node, which pipelines match them, and where each pipeline is in its files.",
        discussion: "Asks the runtimes directly (Docker, containerd / CRI-O, the kubelet's pod log directory, or a static container file), then prints every container with its metadata, for each pipeline with container filters the containers it collects and why it skips the others, and for every pipeline the files it reads with their acknowledged positions (from the checkpoints under --data-dir, read without writing: safe beside a running daemon).")

    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .long, help: "Directory of pipeline config files.")
    var configDir: String?

    @Option(name: .customLong("config"), help: "A pipeline config file (repeatable).")
    var configFiles: [String] = []

    @Option(name: .long, help: "Where the daemon keeps its checkpoints (as given to sluice run).")
    var dataDir: String = "/var/lib/sluice"

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    @Option(name: .long, help: "Seconds to let the sources report before printing.")
    var wait: Double = 2

    @Option(name: .long, help: "Log level of the discovery sources (to stderr).")
    var logLevel: String = "warning"

    func run() async throws {
        let logger = makeLogger(level: logLevel)
        let env = processEnvironment()
        let discovery = ContainerDiscovery(options: runtime.discoveryOptions(environment: env), logger: logger,
                                           runtimeSources: makeRuntimeSources)
        let containers: [ContainerInfo] = await withTaskGroup(of: [ContainerInfo]?.self) { group in
            group.addTask { await discovery.run(); return nil }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
                return discovery.registry.snapshot()
            }
            var result: [ContainerInfo] = []
            while let r = await group.next() {
                if let r { result = r; group.cancelAll() }
            }
            return result
        }.sorted { ($0.kubernetes?.namespace ?? "", $0.kubernetes?.podName ?? "", $0.name, $0.id) < ($1.kubernetes?.namespace ?? "", $1.kubernetes?.podName ?? "", $1.name, $1.id) }

        var files: [String] = configFiles
        if let dir = configDir {
            switch PipelineFiles.list(directory: dir) {
            case .success(let found): files += found
            case .failure(let e): throw ValidationError("cannot read the config directory \(dir): \(e.errno)")
            }
        }
        var pipelines: [PipelineMatch] = []
        for f in files {
            pipelines.append(contentsOf: PipelineMatch.evaluate(file: f, containers: containers))
        }
        let positions = files.sorted().map { PipelinePositions.read(file: $0, dataDir: dataDir) }
        if json {
            printJSON(containers: containers, pipelines: pipelines, positions: positions, hostRoot: discovery.hostPaths.hostRoot)
        } else {
            printText(containers: containers, pipelines: pipelines, hostRoot: discovery.hostPaths.hostRoot)
            for p in positions { p.printText() }
        }
    }

    func printText(containers: [ContainerInfo], pipelines: [PipelineMatch], hostRoot: String) {
        print("Containers (\(containers.count)), host root \(hostRoot):")
        for c in containers {
            var head = "- \(c.name.isEmpty ? (c.kubernetes?.containerName ?? "(no name)") : c.name)  id=\(c.id.isEmpty ? "(not yet known)" : String(c.id.prefix(12)))  runtime=\(c.runtime.rawValue)  state=\(c.state.rawValue)"
            if c.isSandbox { head += "  [sandbox]" }
            print(head)
            if let k = c.kubernetes {
                print("    pod \(k.namespace)/\(k.podName) uid=\(k.podUID) container=\(k.containerName) restarts=\(k.restartCount)")
                if !k.podLabels.isEmpty { print("    pod labels: \(k.podLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))") }
            }
            if !c.image.isEmpty { print("    image: \(c.image)") }
            if c.pid > 0 || !c.ip.isEmpty { print("    pid: \(c.pid)  ip: \(c.ip.isEmpty ? "-" : c.ip)") }
            if !c.logPath.isEmpty { print("    stdout log: \(c.logPath)") }
            if !c.upperDir.isEmpty { print("    rootfs upper dir: \(c.upperDir)") }
            if !c.mergedDir.isEmpty { print("    rootfs merged dir: \(c.mergedDir)") }
            for m in c.mounts { print("    mount: \(m.source) -> \(m.destination)") }
            if !c.labels.isEmpty { print("    labels: \(c.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))") }
            if !c.env.isEmpty { print("    env: \(c.env.keys.sorted().joined(separator: ", "))") }
        }
        for p in pipelines {
            print("\nPipeline \(p.pipeline) (\(p.file), \(p.input)):")
            if let e = p.error { print("  cannot evaluate: \(e)"); continue }
            for m in p.matched { print("  collects \(m)") }
            for (name, why) in p.skipped { print("  skips \(name): \(why)") }
            if p.matched.isEmpty && p.skipped.isEmpty { print("  (no containers)") }
        }
    }

    func printJSON(containers: [ContainerInfo], pipelines: [PipelineMatch], positions: [PipelinePositions], hostRoot: String) {
        struct Output: Encodable {
            var hostRoot: String
            var containers: [ExplainedContainer]
            var pipelines: [PipelineMatch]
            var positions: [PipelinePositions]
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let views = containers.map { ExplainedContainer(info: $0) }
        if let data = try? enc.encode(Output(hostRoot: hostRoot, containers: views, pipelines: pipelines, positions: positions)) {
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

/// Which containers one container input of a pipeline collects.
struct PipelineMatch: Encodable {
    var pipeline: String
    var file: String
    var input: String
    var matched: [String] = []
    var skipped: [String: String] = [:]
    var error: String?

    static let containerInputTypes: Set<String> = ["input_container_stdio", "service_docker_stdout", "input_file", "file_log", "service_docker_stdout_raw"]

    static func label(_ c: ContainerInfo) -> String {
        if let k = c.kubernetes { return "\(k.namespace)/\(k.podName)/\(k.containerName)" + (c.id.isEmpty ? "" : " (\(c.id.prefix(12)))") }
        return c.name + " (\(c.id.prefix(12)))"
    }

    /// Reads the filters of each container input of the file (without requiring the rest of the
    /// pipeline to be valid) and applies them.
    static func evaluate(file: String, containers: [ContainerInfo]) -> [PipelineMatch] {
        let name = PipelineFiles.pipelineName(of: file)
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            return [PipelineMatch(pipeline: name, file: file, input: "-", error: "cannot read the file")]
        }
        let doc: ConfigObject
        do { doc = try ConfigObject.parse(yaml: text, file: file) } catch {
            return [PipelineMatch(pipeline: name, file: file, input: "-", error: "\(error)")]
        }
        var out: [PipelineMatch] = []
        for (i, input) in ((try? doc.objectList("inputs")) ?? [])?.enumerated() ?? [].enumerated() {
            let type = (try? input.string("Type")) ?? nil ?? ""
            guard containerInputTypes.contains(type) else { continue }
            if type == "input_file" || type == "file_log" {
                guard (try? input.bool("EnableContainerDiscovery")) ?? nil == true else { continue }
            }
            var m = PipelineMatch(pipeline: name, file: file, input: "inputs[\(i)] \(type)")
            do {
                // service_docker_stdout writes its filters at the top of the plugin.
                let filterObject = type == "service_docker_stdout" ? input : (try input.object("ContainerFilters"))
                let filters = try filterObject.map { try ContainerFilters.from($0) } ?? ContainerFilters.none
                for c in containers {
                    if let why = filters.explain(c) { m.skipped[label(c)] = why } else { m.matched.append(label(c)) }
                }
            } catch {
                m.error = "\(error)"
            }
            out.append(m)
        }
        return out
    }
}

/// A container as `explain --json` shows it: its fields, with `discoveredAt` as a wall-clock time
/// (RFC 3339, UTC) instead of the registry's monotonic nanoseconds.
struct ExplainedContainer: Encodable {
    var info: ContainerInfo

    enum Keys: String, CodingKey { case discoveredAt }

    func encode(to encoder: any Encoder) throws {
        try info.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        if info.discoveredAt > 0 {
            let wall = Sys.wallNanos() - (Sys.monotonicNanos() - info.discoveredAt)
            try c.encode(RFC3339.format(unixNanos: wall), forKey: .discoveredAt)
        } else {
            try c.encodeNil(forKey: .discoveredAt)
        }
    }
}
