package dev.thaw.sidecar.cluster;

import io.micronaut.context.annotation.ConfigurationProperties;
import java.time.Duration;
import java.util.List;

/**
 * Cluster mode's settings ({@code thaw.cluster.*}): on when {@code etcd} names endpoints, else standalone. The node
 * facts a member registers (zone, GPUs, bandwidths) default to what this node has (GPUs from nvidia-smi, none without
 * it) and may be set, for CPU test clusters or nodes nvidia-smi cannot see.
 */
@ConfigurationProperties("thaw.cluster")
public final class ClusterConfig {
  private List<String> etcd = List.of();
  private String nodeId;
  private String zone = "default";
  private Duration leaseTtl = Duration.ofSeconds(10);
  private Duration replanInterval = Duration.ofSeconds(30);
  private Duration debounce = Duration.ofMillis(500);
  private String prefix = "/thaw";
  private String gpuModel;
  private Integer gpuCount;
  private Long gpuMemoryBytes;
  private double diskBytesPerSecond = 2e9;
  private double peerBytesPerSecond = 1.25e9;
  private double originBytesPerSecond = 0.2e9;
  private String peerHost = "0.0.0.0";
  private int peerPort = 7071;
  private String peerUrl;
  private String token;
  private java.nio.file.Path tokenFile;
  private Duration peerTimeout = Duration.ofSeconds(5);

  /** etcd client URLs, http://host:port; empty: standalone. */
  public List<String> getEtcd() {
    return etcd;
  }

  public void setEtcd(List<String> etcd) {
    this.etcd = etcd == null ? List.of() : etcd.stream().map(String::strip).filter(s -> !s.isEmpty()).toList();
  }

  public boolean enabled() {
    return !etcd.isEmpty();
  }

  /** This member's name in the cluster; default: the host name. */
  public String getNodeId() {
    if (nodeId == null) {
      try {
        nodeId = java.net.InetAddress.getLocalHost().getHostName();
      } catch (java.net.UnknownHostException e) {
        nodeId = "node-" + ProcessHandle.current().pid();
      }
    }
    return nodeId;
  }

  public void setNodeId(String nodeId) {
    this.nodeId = nodeId;
  }

  public String getZone() {
    return zone;
  }

  public void setZone(String zone) {
    this.zone = zone;
  }

  /** How long a member's registration (and a leader's leadership) outlives its last keep-alive. */
  public Duration getLeaseTtl() {
    return leaseTtl;
  }

  public void setLeaseTtl(Duration leaseTtl) {
    if (leaseTtl.toSeconds() < 2) {
      throw new IllegalArgumentException("thaw.cluster.lease-ttl must be at least 2 s, not " + leaseTtl);
    }
    this.leaseTtl = leaseTtl;
  }

  /** The leader plans at least this often, and on every change. */
  public Duration getReplanInterval() {
    return replanInterval;
  }

  public void setReplanInterval(Duration replanInterval) {
    this.replanInterval = replanInterval;
  }

  /** Changes this close together make one plan. */
  public Duration getDebounce() {
    return debounce;
  }

  public void setDebounce(Duration debounce) {
    this.debounce = debounce;
  }

  /** The etcd key prefix every key of this cluster lives under. */
  public String getPrefix() {
    return prefix;
  }

  public void setPrefix(String prefix) {
    this.prefix = prefix.endsWith("/") ? prefix.substring(0, prefix.length() - 1) : prefix;
  }

  public String getGpuModel() {
    return gpuModel;
  }

  public void setGpuModel(String gpuModel) {
    this.gpuModel = gpuModel;
  }

  public Integer getGpuCount() {
    return gpuCount;
  }

  public void setGpuCount(Integer gpuCount) {
    this.gpuCount = gpuCount;
  }

  public Long getGpuMemoryBytes() {
    return gpuMemoryBytes;
  }

  public void setGpuMemoryBytes(Long gpuMemoryBytes) {
    this.gpuMemoryBytes = gpuMemoryBytes;
  }

  public double getDiskBytesPerSecond() {
    return diskBytesPerSecond;
  }

  public void setDiskBytesPerSecond(double v) {
    this.diskBytesPerSecond = v;
  }

  public double getPeerBytesPerSecond() {
    return peerBytesPerSecond;
  }

  public void setPeerBytesPerSecond(double v) {
    this.peerBytesPerSecond = v;
  }

  public double getOriginBytesPerSecond() {
    return originBytesPerSecond;
  }

  public void setOriginBytesPerSecond(double v) {
    this.originBytesPerSecond = v;
  }

  /** The address the peer endpoint binds: reachable from the other nodes, and guarded by the cluster token. */
  public String getPeerHost() {
    return peerHost;
  }

  public void setPeerHost(String peerHost) {
    this.peerHost = peerHost;
  }

  /** The peer endpoint's port (0: any free one). */
  public int getPeerPort() {
    return peerPort;
  }

  public void setPeerPort(int peerPort) {
    this.peerPort = peerPort;
  }

  /** How the other members reach this one's peer endpoint; default http://NODE-ID:PORT. */
  public String getPeerUrl() {
    return peerUrl;
  }

  public void setPeerUrl(String peerUrl) {
    this.peerUrl = peerUrl;
  }

  /** The cluster token, as a value ({@code THAW_CLUSTER_TOKEN}); or see {@link #getTokenFile()}. */
  public String getToken() {
    return token;
  }

  public void setToken(String token) {
    this.token = token;
  }

  /** A file holding the cluster token (a mounted Kubernetes Secret). */
  public java.nio.file.Path getTokenFile() {
    return tokenFile;
  }

  public void setTokenFile(java.nio.file.Path tokenFile) {
    this.tokenFile = tokenFile;
  }

  /** How long a peer may take to send one chunk before the origin is asked instead. */
  public Duration getPeerTimeout() {
    return peerTimeout;
  }

  public void setPeerTimeout(Duration peerTimeout) {
    this.peerTimeout = peerTimeout;
  }

  /** The token, from the file when one is named; an error naming both settings when there is none. */
  public String resolveToken() {
    String t = token;
    if (tokenFile != null) {
      try {
        t = java.nio.file.Files.readString(tokenFile).strip();
      } catch (java.io.IOException e) {
        throw new IllegalStateException("cannot read the cluster token file " + tokenFile + ": " + e.getMessage(), e);
      }
    }
    if (t == null || t.isBlank()) {
      throw new IllegalStateException("cluster mode needs the cluster token: set thaw.cluster.token-file"
          + " (THAW_CLUSTER_TOKEN_FILE, e.g. a mounted Secret) or thaw.cluster.token (THAW_CLUSTER_TOKEN)");
    }
    if (t.length() < 16) {
      throw new IllegalStateException("the cluster token must be at least 16 characters");
    }
    return t;
  }
}
