package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelSourceTest {
  @TempDir Path tmp;

  @Test
  void aNameOrDigestIsReadAtTheOriginGivenElsewhere() {
    ModelSource named = ModelSource.parse("llama-3-8b:v1");
    assertThat(named.isDirect()).isFalse();
    assertThat(named.origin()).isNull();
    assertThat(named.ref()).isEqualTo("llama-3-8b:v1");
    ModelSource digest = ModelSource.parse("sha256:" + "ab".repeat(32));
    assertThat(digest.origin()).isNull();
    assertThat(digest.ref()).startsWith("sha256:");
  }

  @Test
  void anOriginBeforeAHashIsTheSourcesOwn() {
    ModelSource s = ModelSource.parse("s3://models/prod?region=eu-west-1#llama:v1");
    assertThat(s.isDirect()).isFalse();
    assertThat(s.origin()).isEqualTo("s3://models/prod?region=eu-west-1");
    assertThat(s.ref()).isEqualTo("llama:v1");
  }

  @Test
  void aUriWithoutAHashIsADirectModeSourceItsOwnOrigin() {
    ModelSource s = ModelSource.parse(" file:///srv/models/llama/ ");
    assertThat(s.isDirect()).isTrue();
    assertThat(s.origin()).isEqualTo("file:///srv/models/llama/");
    assertThat(s.ref()).isNull();
  }

  @Test
  void blankSourcesAndBadDigestsAreRefusedSayingWhy() {
    assertThatThrownBy(() -> ModelSource.parse("  ")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("NAME[:TAG]");
    assertThatThrownBy(() -> ModelSource.parse("sha256:xyz")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("not a manifest digest: sha256:xyz");
    assertThatThrownBy(() -> ModelSource.parse("#tiny:v1")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("no origin before '#'");
  }

  @Test
  void resolvesANameADigestAndADirectSourceToTheirManifests() throws Exception {
    Path model = OriginTestSupport.generateModel(tmp.resolve("model"), 3);
    try (Origin origin = Origins.open(tmp.resolve("origin").toUri().toString())) {
      Pusher.Result pushed = new Pusher(origin, OriginTestSupport.CHUNK, 2, PushProgress.NONE)
          .push(model, ModelName.parse("tiny:v1"));
      ModelSource.Resolved byName = ModelSource.parse("tiny:v1").resolve(origin);
      assertThat(byName.manifest().digest()).isEqualTo(pushed.digest());
      assertThat(byName.display()).isEqualTo("tiny:v1 at " + origin.uri());
      ModelSource.Resolved byDigest = ModelSource.parse(pushed.digest()).resolve(origin);
      assertThat(byDigest.manifest().digest()).isEqualTo(pushed.digest());
    }
    String uri = model.toUri().toString();
    try (Origin direct = Origins.open(uri)) {
      ModelSource.Resolved r = ModelSource.parse(uri).resolve(direct);
      assertThat(r.manifest().isDirect()).isTrue();
      assertThat(r.display()).isEqualTo(uri + " (direct)");
    }
  }
}
