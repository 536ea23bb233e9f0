package dev.thaw.triton;

import com.google.protobuf.ByteString;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import dev.thaw.triton.protocol.ModelInferRequest;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
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
    return MethodDescriptor.newBuilder(RawBytes.INSTANCE, RawBytes.INSTANCE).setFullMethodName(name).setType(type)
        .build();
  }

  private enum RawBytes implements MethodDescriptor.Marshaller<byte[]> {
    INSTANCE;

    @Override
    public InputStream stream(byte[] value) {
      return new ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }
}
