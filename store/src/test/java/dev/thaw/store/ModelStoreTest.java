package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.store.FaultyHttpServer.Fault;
import dev.thaw.store.FaultyHttpServer.Rule;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Tags and manifests damaged on the way are read again, as chunks are; damaged for good, they fail clearly. */
class ModelStoreTest {
  private static final ModelName NAME = ModelName.parse("tagged:v1");

  @TempDir Path tmp;
  private Path originDir;
  private String digest;

  @BeforeEach
  void pushAModel() throws Exception {
    originDir = tmp.resolve("origin");
    try (Origin files = Origins.open(originDir.toString())) {
      digest = new Pusher(files, OriginTestSupport.CHUNK, 2, PushProgress.NONE)
          .push(OriginTestSupport.generateModel(tmp.resolve("model"), 3), NAME).digest();
    }
  }

  @Test
  void aManifestCorruptedInTransitOnceIsReadAgain() throws Exception {
    try (FaultyHttpServer server = new FaultyHttpServer(originDir);
        Origin origin = Origins.open(server.url(), OriginTestSupport.FAST_RETRY, 4)) {
      server.inject(Rule.of(Fault.CORRUPT, 1).onPathsContaining("manifests/").times(1));
      assertThat(new ModelStore(origin).resolve(NAME).digest()).isEqualTo(digest);
      assertThat(server.faultsInjected()).isEqualTo(1);
    }
  }

  @Test
  void aTagCorruptedInTransitOnceIsReadAgain() throws Exception {
    try (FaultyHttpServer server = new FaultyHttpServer(originDir);
        Origin origin = Origins.open(server.url(), OriginTestSupport.FAST_RETRY, 4)) {
      server.inject(Rule.of(Fault.CORRUPT, 1).onPathsContaining("tags/").times(1));
      assertThat(new ModelStore(origin).resolve(NAME).digest()).isEqualTo(digest);
      assertThat(server.faultsInjected()).isEqualTo(1);
    }
  }

  @Test
  void aTagDamagedIntoAnotherValidLookingDigestIsReadAgainWhenItsManifestIsMissing() throws Exception {
    String wrong = "sha256:" + "0".repeat(64) + "\n";
    AtomicInteger tagReads = new AtomicInteger();
    try (Origin files = Origins.open(originDir.toString())) {
      Origin flaky = new AccessProfileTest.ReadOnlyOrigin(files) {
        @Override
        public byte[] readAll(String key) throws OriginException {
          if (key.equals(NAME.tagKey()) && tagReads.incrementAndGet() == 1) {
            return wrong.getBytes(StandardCharsets.UTF_8);
          }
          return super.readAll(key);
        }
      };
      assertThat(new ModelStore(flaky).resolve(NAME).digest()).isEqualTo(digest);
      assertThat(tagReads).hasValue(2);
    }
  }

  @Test
  void aTagThatStaysDamagedFailsNamingTheTagAndWhatItHolds() throws Exception {
    Files.writeString(originDir.resolve("tags/tagged/v1"), "sha256:not-a-digest\n");
    try (Origin origin = Origins.open(originDir.toString())) {
      assertThatThrownBy(() -> new ModelStore(origin).resolve(NAME))
          .isInstanceOf(ManifestException.class)
          .hasMessageContaining(origin.urlOf("tags/tagged/v1"))
          .hasMessageContaining("holds 'sha256:not-a-digest'")
          .hasMessageContaining("3 reads in a row");
    }
  }

  @Test
  void aTagNamingAManifestThatIsNotThereFailsNamingBoth() throws Exception {
    String missing = "sha256:" + "1".repeat(64);
    Files.writeString(originDir.resolve("tags/tagged/v1"), missing + "\n");
    try (Origin origin = Origins.open(originDir.toString())) {
      assertThatThrownBy(() -> new ModelStore(origin).resolve(NAME))
          .isInstanceOf(OriginException.class)
          .hasMessageContaining("names manifest " + missing + ", which is not at the origin");
    }
  }
}
