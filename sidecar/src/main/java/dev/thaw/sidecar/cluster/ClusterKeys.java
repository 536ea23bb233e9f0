package dev.thaw.sidecar.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.options.GetOption;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * One cluster's keys in etcd, all under its prefix: {@code members/NODE} (registrations), {@code demand/MODEL},
 * {@code plan}, {@code leader} (the election).
 */
final class ClusterKeys {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Client client;
  private final String prefix;

  ClusterKeys(Client client, String prefix) {
    this.client = client;
    this.prefix = prefix;
  }

  Client client() {
    return client;
  }

  /** The key {@code PREFIX + sub}. */
  ByteSequence key(String sub) {
    return bytes(prefix + sub);
  }

  /** Whether an etcd key (as a string) is one of this cluster's under {@code sub}. */
  boolean isUnder(String key, String sub) {
    return key.startsWith(prefix + sub);
  }

  static ByteSequence bytes(String s) {
    return ByteSequence.from(s, StandardCharsets.UTF_8);
  }

  /** The registered members, node to registration. */
  Map<String, Registration> members() throws Exception {
    Map<String, Registration> out = new TreeMap<>();
    for (Map.Entry<String, String> e : prefixed("/members/").entrySet()) {
      out.put(e.getKey(), Registration.fromJson(e.getValue()));
    }
    return out;
  }

  /** The demand, model to its entry. */
  Map<String, JsonNode> demand() throws Exception {
    Map<String, JsonNode> out = new TreeMap<>();
    for (Map.Entry<String, String> e : prefixed("/demand/").entrySet()) {
      out.put(e.getKey(), JSON.readTree(e.getValue()));
    }
    return out;
  }

  /** The plan as etcd holds it now, if there is one. */
  Optional<String> plan() throws Exception {
    var kvs = client.getKVClient().get(key("/plan")).get(3, TimeUnit.SECONDS).getKvs();
    return kvs.isEmpty() ? Optional.empty() : Optional.of(kvs.getFirst().getValue().toString(StandardCharsets.UTF_8));
  }

  private Map<String, String> prefixed(String sub) throws Exception {
    Map<String, String> out = new TreeMap<>();
    for (KeyValue kv : client.getKVClient().get(key(sub), GetOption.builder().isPrefix(true).build())
        .get(3, TimeUnit.SECONDS).getKvs()) {
      out.put(kv.getKey().toString(StandardCharsets.UTF_8).substring((prefix + sub).length()),
          kv.getValue().toString(StandardCharsets.UTF_8));
    }
    return out;
  }
}
