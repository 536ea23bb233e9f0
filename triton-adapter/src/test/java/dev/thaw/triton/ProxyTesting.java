package dev.thaw.triton;

import com.google.protobuf.ByteString;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.triton.protocol.ModelInferRequest;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.ModelStreamInferResponse;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Clients and requests shared by the proxy's tests. */
final class ProxyTesting {
  private ProxyTesting() {}

  /** A plaintext channel to a local port that takes answers up to 64 MiB. */
  static ManagedChannel channel(int port) {
    return Grpc.newChannelBuilderForAddress("127.0.0.1", port, InsecureChannelCredentials.create())
        .maxInboundMessageSize(64 << 20).build();
  }

  /** A ModelInfer request of {@code batch} rows of the spec's sample input, as raw contents. */
  static ModelInferRequest request(MlpSpec spec, String model, int batch, String id) {
    ByteBuffer input = ByteBuffer.allocate(batch * spec.inputDim() * 4).order(ByteOrder.LITTLE_ENDIAN);
    input.asFloatBuffer().put(spec.sampleInput(batch));
    return ModelInferRequest.newBuilder().setModelName(model).setId(id)
        .addInputs(ModelInferRequest.InferInputTensor.newBuilder().setName(MlpGenerator.INPUT).setDatatype("FP32")
            .addShape(batch).addShape(spec.inputDim()))
        .addRawInputContents(ByteString.copyFrom(input.array()))
        .build();
  }

  /** A method no generated stub has, its messages as bytes. */
  static MethodDescriptor<byte[], byte[]> method(String name, MethodDescriptor.MethodType type) {
    return MethodDescriptor.newBuilder(BYTES, BYTES).setFullMethodName(name).setType(type).build();
  }

  private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
    @Override
    public java.io.InputStream stream(byte[] value) {
      return new java.io.ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(java.io.InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }
  };

  /** A ModelStreamInfer call's answers as they come, and its end. */
  static final class StreamAnswers implements StreamObserver<ModelStreamInferResponse> {
    final List<ModelStreamInferResponse> answers = new CopyOnWriteArrayList<>();
    final CompletableFuture<Void> done = new CompletableFuture<>();

    /** Opens a stream on {@code channel}; what it returns takes the requests. */
    static StreamObserver<ModelInferRequest> open(ManagedChannel channel, StreamAnswers into) {
      return GRPCInferenceServiceGrpc.newStub(channel).withDeadlineAfter(Duration.ofSeconds(120))
          .modelStreamInfer(into);
    }

    @Override
    public void onNext(ModelStreamInferResponse value) {
      answers.add(value);
    }

    @Override
    public void onError(Throwable t) {
      done.completeExceptionally(t);
    }

    @Override
    public void onCompleted() {
      done.complete(null);
    }
  }
}
