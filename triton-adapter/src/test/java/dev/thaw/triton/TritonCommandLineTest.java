package dev.thaw.triton;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.triton.TritonCommandLine.ControlMode;
import dev.thaw.triton.TritonCommandLine.Endpoint;
import dev.thaw.triton.TritonCommandLine.Repository;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TritonCommandLineTest {
  static TritonCommandLine parse(String... command) {
    return TritonCommandLine.parse(List.of(command), Map.of());
  }

  @Test
  void readsTritonsFlagsInBothForms() {
    TritonCommandLine c = parse("tritonserver", "--model-repository=/models", "--model-store", "/more",
        "--model-control-mode", "explicit", "--load-model=a", "--load-model", "b", "--http-port=9000",
        "--grpc-port", "9001", "--metrics-port=9002", "--grpc-address=10.0.0.1", "--allow-metrics=false",
        "--strict-readiness=false");

    assertThat(c.executable()).isEqualTo("tritonserver");
    assertThat(c.repositories()).extracting(Repository::given).containsExactly("/models", "/more");
    assertThat(c.controlMode()).isEqualTo(ControlMode.EXPLICIT);
    assertThat(c.loadModels()).containsExactly("a", "b");
    assertThat(c.strictReadiness()).isFalse();
    assertThat(c.http()).isEqualTo(new Endpoint(true, "0.0.0.0", 9000));
    assertThat(c.grpc()).isEqualTo(new Endpoint(true, "10.0.0.1", 9001));
    assertThat(c.metrics()).isEqualTo(new Endpoint(false, "0.0.0.0", 9002));
  }

  @Test
  void tritonsDefaultsHoldWhenNothingIsSaid() {
    TritonCommandLine c = parse("tritonserver", "--model-repository=/models");

    assertThat(c.controlMode()).isEqualTo(ControlMode.NONE);
    assertThat(c.strictReadiness()).isTrue();
    assertThat(c.http()).isEqualTo(new Endpoint(true, "0.0.0.0", 8000));
    assertThat(c.grpc()).isEqualTo(new Endpoint(true, "0.0.0.0", 8001));
    assertThat(c.metrics()).isEqualTo(new Endpoint(true, "0.0.0.0", 8002));
  }

  @Test
  void s3RepositoriesBecomeDirectSourcesOverTheSameObjects() {
    TritonCommandLine c = TritonCommandLine.parse(List.of("tritonserver", "--model-repository=s3://models/triton//v1/",
        "--model-repository=s3://minio.local:9000/bucket/repo", "--model-repository=s3://https://s3.internal:443/b",
        "--model-repository=s3://plain-bucket"), Map.of("AWS_DEFAULT_REGION", "eu-west-1"));

    assertThat(c.repositories()).extracting(Repository::source).containsExactly(
        "s3://models/triton/v1/?path-style=true&region=eu-west-1",
        "s3://bucket/repo/?path-style=true&endpoint=http%3A%2F%2Fminio.local%3A9000&region=eu-west-1",
        "s3://b/?path-style=true&endpoint=https%3A%2F%2Fs3.internal%3A443&region=eu-west-1",
        "s3://plain-bucket/?path-style=true&region=eu-west-1");
  }

  @Test
  void awsRegionWinsOverTritonsRegionVariable() {
    TritonCommandLine c = TritonCommandLine.parse(List.of("tritonserver", "--model-repository=s3://b/p"),
        Map.of("AWS_DEFAULT_REGION", "eu-west-1", "AWS_REGION", "us-west-2"));

    assertThat(c.repositories().getFirst().source()).isEqualTo("s3://b/p/?path-style=true");
  }

  @Test
  void localAndPushedRepositories() {
    TritonCommandLine c = parse("tritonserver", "--model-repository=/srv/models", "--model-repository=thaw://resnet:v2");

    assertThat(c.repositories()).containsExactly(new Repository("/srv/models", null),
        new Repository("thaw://resnet:v2", "resnet:v2"));
    assertThat(c.repositories().getFirst().mounted()).isFalse();
  }

  @Test
  void tritonIsStartedOnTheMountsWithExplicitControlOnLoopbackPorts() {
    TritonCommandLine c = parse("/opt/tritonserver/bin/tritonserver", "--model-repository=s3://b/models",
        "--model-repository", "/local", "--model-control-mode=explicit", "--load-model=warm", "--log-verbose=1",
        "--http-port=8000",
        "--allow-grpc=false", "--backend-config", "onnxruntime,default-max-batch-size=4");

    assertThat(c.tritonCommand(List.of(Path.of("/mnt/thaw/m1"), Path.of("/local")), 18000, 18001, 18002))
        .containsExactly("/opt/tritonserver/bin/tritonserver", "--model-repository=/mnt/thaw/m1",
            "--model-repository=/local", "--model-control-mode=explicit", "--load-model=warm",
            "--strict-readiness=true", "--http-address=127.0.0.1", "--http-port=18000", "--grpc-address=127.0.0.1",
            "--grpc-port=18001", "--metrics-address=127.0.0.1", "--metrics-port=18002", "--log-verbose=1", "--backend-config",
            "onnxruntime,default-max-batch-size=4");
  }

  @Test
  void inEveryModeModelsLoadOnTheirFirstRequestAndTheLoadModelOnesAtStart() {
    assertThat(parse("tritonserver", "--model-repository=/m").tritonCommand(List.of(Path.of("/m")), 1, 2, 3))
        .contains("--model-control-mode=explicit").noneMatch(a -> a.startsWith("--load-model"));
    assertThat(parse("tritonserver", "--model-repository=/m", "--model-control-mode=poll", "--load-model=*")
        .tritonCommand(List.of(Path.of("/m")), 1, 2, 3)).containsSubsequence("--model-control-mode=explicit",
        "--load-model=*");
  }

  @Test
  void whatCannotBeServedIsRefusedNamingTheFlag() {
    assertThatThrownBy(() -> parse("tritonserver", "--model-repository=gs://bucket/models"))
        .hasMessage("--model-repository=gs://bucket/models: Thaw mounts s3://, thaw:// and local repositories, not "
            + "gs:// (run tritonserver without thaw for Google Cloud Storage and Azure)");
    assertThatThrownBy(() -> parse("tritonserver", "--model-repository=as://account/container/models"))
        .hasMessageContaining("not as://");
    assertThatThrownBy(() -> parse("tritonserver", "--model-repository=s3://Bad_Bucket/x"))
        .hasMessageContaining("not an S3 path Triton accepts");
    assertThatThrownBy(() -> parse("tritonserver", "--model-repository=http://host/models"))
        .hasMessageContaining("not a repository Thaw knows");
    assertThatThrownBy(() -> parse("tritonserver", "--http-port=http")).hasMessage(
        "--http-port must be a port number (0-65535), not 'http'");
    assertThatThrownBy(() -> parse("tritonserver", "--model-repository=/m", "--model-control-mode=lazy"))
        .hasMessage("--model-control-mode must be none, poll or explicit, not 'lazy'");
    assertThatThrownBy(() -> parse("tritonserver", "--model-repository")).hasMessage(
        "--model-repository needs a value");
    assertThatThrownBy(() -> parse("tritonserver", "--log-verbose=1")).hasMessage(
        "no --model-repository in the Triton command");
    assertThatThrownBy(() -> TritonCommandLine.parse(List.of(), Map.of())).hasMessageStartingWith("no Triton command");
  }
}
