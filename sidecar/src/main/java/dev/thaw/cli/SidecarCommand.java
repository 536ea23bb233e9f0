package dev.thaw.cli;

import dev.thaw.sidecar.Sidecar;
import dev.thaw.sidecar.cluster.ClusterConfig;
import io.micronaut.context.ApplicationContext;
import io.micronaut.runtime.server.EmbeddedServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "sidecar", mixinStandardHelpOptions = true,
    description = {
      "Run the sidecar: Thaw's REST API beside an inference server (docs/api.md).",
      "Standalone: one chunk cache, the configured origin, no etcd. Settings come from application.yml's defaults, "
          + "then THAW_* environment variables (THAW_ORIGIN, THAW_CACHE_DIR, THAW_MOUNT_ROOT, THAW_API_HOST, "
          + "THAW_API_PORT, ...), then these flags, then --config FILE. Runs in the foreground until SIGTERM or "
          + "Ctrl-C, which unmount everything it mounted.",
      "Every API call but /healthz, /readyz and /metrics carries 'Authorization: Bearer TOKEN': the token in "
          + "--api-token-file (made at the first start, owner-only), or THAW_API_TOKEN."
    })
final class SidecarCommand implements Callable<Integer> {
  @Option(names = "--api-host", paramLabel = "ADDR",
      description = "Address the control API listens on. Default: 127.0.0.1 (loopback only).")
  String apiHost;

  @Option(names = "--api-port", paramLabel = "PORT", description = "Port of the control API (0: any free one). Default: 7070.")
  Integer apiPort;

  @Option(names = "--origin", paramLabel = "URI",
      description = "Where NAME[:TAG] models are read from: file:///dir, http(s)://..., s3://bucket/prefix. Default: ~/.thaw/origin.")
  String origin;

  @Option(names = "--cache", paramLabel = "DIR", description = "Chunk cache directory. Default: ~/.cache/thaw.")
  Path cache;

  @Option(names = "--cache-size", paramLabel = "SIZE", converter = Units.SizeConverter.class,
      description = "Most bytes the cache may hold (e.g. 50g). Default: 80%% of its file system's free space.")
  Long cacheSize;

  @Option(names = "--mount-root", paramLabel = "DIR",
      description = "Directory every mount goes under (the volume shared with the server). Default: ~/.thaw/mounts.")
  Path mountRoot;

  @Option(names = "--etcd", paramLabel = "URL[,URL...]", split = ",",
      description = "etcd endpoints (http://host:2379): cluster mode. Default: none, standalone.")
  java.util.List<String> etcd;

  @Option(names = "--node-id", paramLabel = "NAME", description = "This member's name in the cluster. Default: the host name.")
  String nodeId;

  @Option(names = "--zone", paramLabel = "ZONE", description = "This node's zone, for spreading replicas. Default: default.")
  String zone;

  @Option(names = "--peer-port", paramLabel = "PORT",
      description = "Cluster mode: the port of the peer endpoint other members fetch chunks from. Default: 7071.")
  Integer peerPort;

  @Option(names = "--token-file", paramLabel = "FILE",
      description = "Cluster mode: the file holding the cluster token (a mounted Secret); or $THAW_CLUSTER_TOKEN.")
  Path tokenFile;

  @Option(names = "--api-token-file", paramLabel = "FILE",
      description = "The control API's token: read from FILE, made there (owner-only) when missing. Default: ~/.thaw/api-token.")
  Path apiTokenFile;

  @Option(names = "--config", paramLabel = "FILE", description = "A YAML file of settings (the keys of docs/api.md).")
  Path config;

  /** The flags given, as the properties they set; those not given leave the lower layers' values. */
  Map<String, Object> properties() {
    Map<String, Object> p = new LinkedHashMap<>();
    if (apiHost != null) {
      p.put("thaw.api.host", apiHost);
    }
    if (apiPort != null) {
      if (apiPort < 0 || apiPort > 65535) {
        throw new CommandLine.ParameterException(new CommandLine(this), "--api-port must be 0 to 65535, not " + apiPort);
      }
      p.put("thaw.api.port", apiPort == 0 ? -1 : apiPort); // Micronaut's "any free port"
    }
    if (apiTokenFile != null) {
      p.put("thaw.api.token-file", apiTokenFile.toAbsolutePath().toString());
    }
    if (origin != null) {
      p.put("thaw.origin", origin);
    }
    if (cache != null) {
      p.put("thaw.cache-dir", cache.toAbsolutePath().toString());
    }
    if (cacheSize != null) {
      p.put("thaw.cache-max-bytes", cacheSize);
    }
    if (mountRoot != null) {
      p.put("thaw.mount-root", mountRoot.toAbsolutePath().toString());
    }
    if (etcd != null && !etcd.isEmpty()) {
      p.put("thaw.cluster.etcd", String.join(",", etcd));
    }
    if (nodeId != null) {
      p.put("thaw.cluster.node-id", nodeId);
    }
    if (zone != null) {
      p.put("thaw.cluster.zone", zone);
    }
    if (peerPort != null) {
      p.put("thaw.cluster.peer-port", peerPort);
    }
    if (tokenFile != null) {
      p.put("thaw.cluster.token-file", tokenFile.toAbsolutePath().toString());
    }
    return p;
  }

  @Override
  public Integer call() throws Exception {
    Map<String, Object> props = properties();
    if (config != null) {
      if (!Files.isRegularFile(config)) {
        throw new CommandLine.ParameterException(new CommandLine(this), "--config " + config + " is not a file");
      }
      System.setProperty("micronaut.config.files", config.toAbsolutePath().toString());
    }
    ApplicationContext context = Sidecar.start(props);
    // SIGTERM and Ctrl-C stop the service the way closing it does: unmount everything, leave the cluster
    Runtime.getRuntime().addShutdownHook(new Thread(context::close, "thaw-sidecar-stop"));
    EmbeddedServer server = context.getBean(EmbeddedServer.class);
    ClusterConfig cluster = context.getBean(ClusterConfig.class);
    System.err.println("thaw sidecar: listening on " + server.getURL() + (cluster.enabled()
        ? " (cluster mode: node " + cluster.getNodeId() + ", etcd " + String.join(",", cluster.getEtcd()) + ")"
        : " (standalone)"));
    dev.thaw.sidecar.ApiToken token = context.getBean(dev.thaw.sidecar.ApiToken.class);
    System.err.println("thaw sidecar: API calls carry 'Authorization: Bearer TOKEN', the token "
        + (token.file() == null ? "given in THAW_API_TOKEN" : "in " + token.file())
        + "; the status page is " + server.getURL() + "/#token=TOKEN");
    System.err.flush();
    while (context.isRunning()) {
      Thread.sleep(200);
    }
    return 0;
  }
}
