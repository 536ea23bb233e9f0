package dev.thaw.examples.ortserver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalArgumentException;
import static org.assertj.core.api.Assertions.entry;

import dev.thaw.examples.ortserver.ServerOptions.ModelControlMode;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class ServerOptionsTest {
  @Test
  void hasTritonsDefaultsButListensOnLoopbackOnly() {
    ServerOptions o = ServerOptions.parse("--model-repository=/models");

    assertThat(o.modelRepository()).isEqualTo(Path.of("/models"));
    assertThat(o.modelControlMode()).isEqualTo(ModelControlMode.NONE);
    assertThat(o.loadModels()).isEmpty();
    assertThat(o.grpcPort()).isEqualTo(8001);
    assertThat(o.httpPort()).isEqualTo(8000);
    assertThat(o.grpcAddress()).isEqualTo("127.0.0.1");
    assertThat(o.httpAddress()).isEqualTo("127.0.0.1");
    assertThat(o.warmup()).isFalse();
    assertThat(o.ortNativeDir()).isNull();
    assertThat(o.ortSessionConfig()).isEmpty();
    assertThat(o.help()).isFalse();
  }

  @Test
  void takesFlagsWithEqualsOrWithTheValueNext() {
    ServerOptions o = ServerOptions.parse("--model-repository", "/models", "--model-control-mode=EXPLICIT",
        "--load-model", "a", "--load-model=b", "--grpc-port=0", "--http-port", "9000", "--grpc-address", "0.0.0.0",
        "--http-address=::1", "--warmup", "--ort-native-dir", "/opt/ort",
        "--ort-session-config=session.disable_prepacking=1", "--ort-session-config", "a.b=c=d");

    assertThat(o.modelControlMode()).isEqualTo(ModelControlMode.EXPLICIT);
    assertThat(o.loadModels()).containsExactly("a", "b");
    assertThat(o.grpcPort()).isZero();
    assertThat(o.httpPort()).isEqualTo(9000);
    assertThat(o.grpcAddress()).isEqualTo("0.0.0.0");
    assertThat(o.httpAddress()).isEqualTo("::1");
    assertThat(o.warmup()).isTrue();
    assertThat(o.ortNativeDir()).isEqualTo(Path.of("/opt/ort"));
    assertThat(o.ortSessionConfig()).containsExactly(entry("session.disable_prepacking", "1"), entry("a.b", "c=d"));
  }

  @Test
  void takesBooleanWarmupValues() {
    assertThat(ServerOptions.parse("--model-repository=/m", "--warmup=false").warmup()).isFalse();
    assertThat(ServerOptions.parse("--model-repository=/m", "--warmup=true").warmup()).isTrue();
    assertThat(ServerOptions.parse("--warmup", "--model-repository=/m").warmup()).isTrue();
  }

  @Test
  void helpNeedsNothingElse() {
    assertThat(ServerOptions.parse("--help").help()).isTrue();
    assertThat(ServerOptions.usage()).contains("--model-repository", "--model-control-mode", "--load-model",
        "--grpc-port", "--http-port", "--grpc-address", "--http-address", "--warmup", "--ort-native-dir",
        "--ort-session-config");
  }

  @Test
  void refusesBadUsageWithOneLineNamingTheFlag() {
    assertThatIllegalArgumentException().isThrownBy(() -> ServerOptions.parse("--model-repository=/m", "--bogus"))
        .withMessage("unknown flag --bogus");
    assertThatIllegalArgumentException().isThrownBy(() -> ServerOptions.parse("--grpc-port=1"))
        .withMessage("--model-repository is required");
    assertThatIllegalArgumentException().isThrownBy(() -> ServerOptions.parse("--model-repository"))
        .withMessage("--model-repository needs a value");
    assertThatIllegalArgumentException()
        .isThrownBy(() -> ServerOptions.parse("--model-repository=/m", "--http-port=70000"))
        .withMessage("--http-port must be a port number (0-65535; 0 picks a free port), not '70000'");
    assertThatIllegalArgumentException()
        .isThrownBy(() -> ServerOptions.parse("--model-repository=/m", "--model-control-mode=poll"))
        .withMessage("--model-control-mode=poll is not supported by ort-server (none or explicit)");
    assertThatIllegalArgumentException()
        .isThrownBy(() -> ServerOptions.parse("--model-repository=/m", "--load-model=a"))
        .withMessageStartingWith("--load-model needs --model-control-mode=explicit");
    assertThatIllegalArgumentException().isThrownBy(() -> ServerOptions.parse("--model-repository=/m", "extra"))
        .withMessage("unexpected argument 'extra'");
    assertThatIllegalArgumentException()
        .isThrownBy(() -> ServerOptions.parse("--model-repository=/a", "--model-repository=/b"))
        .withMessage("ort-server serves one model repository, but --model-repository was given twice");
    assertThatIllegalArgumentException()
        .isThrownBy(() -> ServerOptions.parse("--model-repository=/m", "--ort-session-config=novalue"))
        .withMessage("--ort-session-config must be KEY=VALUE, not 'novalue'");
  }
}
