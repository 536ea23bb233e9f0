package dev.thaw.triton.protocol;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import io.grpc.MethodDescriptor;
import io.grpc.ServiceDescriptor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Checks that the hand-written Triton protos generate usable Java and keep Triton's wire contract:
 * proto package, service and method names, and the field numbers that clients put on the wire.
 */
class TritonProtocolTest {

  private static ByteString floatsLittleEndian(float... values) {
    ByteBuffer buf = ByteBuffer.allocate(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      buf.putFloat(v);
    }
    return ByteString.copyFrom(buf.array());
  }

  private static ModelInferRequest sampleRequest() {
    return ModelInferRequest.newBuilder()
        .setModelName("mlp")
        .setModelVersion("1")
        .setId("req-7")
        .putParameters("priority", InferParameter.newBuilder().setInt64Param(2).build())
        .addInputs(ModelInferRequest.InferInputTensor.newBuilder()
            .setName("INPUT0")
            .setDatatype("FP32")
            .addShape(1)
            .addShape(4))
        .addOutputs(ModelInferRequest.InferRequestedOutputTensor.newBuilder().setName("OUTPUT0"))
        .addRawInputContents(floatsLittleEndian(1f, 2f, 3f, 4f))
        .build();
  }

  /** Field numbers and wire types of the top-level fields of an encoded message, in order. */
  private static List<int[]> topLevelTags(byte[] encoded) throws Exception {
    CodedInputStream in = CodedInputStream.newInstance(encoded);
    List<int[]> tags = new ArrayList<>();
    int tag;
    while ((tag = in.readTag()) != 0) {
      tags.add(new int[] {WireFormat.getTagFieldNumber(tag), WireFormat.getTagWireType(tag)});
      in.skipField(tag);
    }
    return tags;
  }

  @Test
  void inferRequestWithRawContentsRoundTrips() throws Exception {
    ModelInferRequest request = sampleRequest();

    ModelInferRequest parsed = ModelInferRequest.parseFrom(request.toByteArray());

    assertThat(parsed).isEqualTo(request);
    assertThat(parsed.getRawInputContentsCount()).isEqualTo(1);
    ByteBuffer raw = parsed.getRawInputContents(0).asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    assertThat(raw.remaining()).isEqualTo(16);
    assertThat(raw.getFloat(12)).isEqualTo(4f);
    assertThat(parsed.getInputs(0).getShapeList()).containsExactly(1L, 4L);
    assertThat(parsed.getParametersMap().get("priority").getInt64Param()).isEqualTo(2L);
  }

  @Test
  void inferRequestUsesTritonFieldNumbers() throws Exception {
    byte[] encoded = sampleRequest().toByteArray();

    // model_name is field 1, length-delimited: tag (1 << 3) | 2 = 0x0a.
    assertThat(encoded[0]).isEqualTo((byte) 0x0a);
    assertThat(topLevelTags(encoded))
        .extracting(t -> t[0])
        // model_name, model_version, id, parameters, inputs, outputs, raw_input_contents
        .containsExactly(1, 2, 3, 4, 5, 6, 7);

    // raw_input_contents alone: field 7, length-delimited -> 0x3a, then length 16.
    byte[] rawOnly = ModelInferRequest.newBuilder()
        .addRawInputContents(floatsLittleEndian(1f, 2f, 3f, 4f))
        .build()
        .toByteArray();
    assertThat(rawOnly[0]).isEqualTo((byte) 0x3a);
    assertThat(rawOnly[1]).isEqualTo((byte) 16);

    // InferInputTensor: name 1, datatype 2, shape 3 (packed), contents 5.
    byte[] input = ModelInferRequest.InferInputTensor.newBuilder()
        .setName("x")
        .setDatatype("INT32")
        .addShape(3)
        .setContents(InferTensorContents.newBuilder().addIntContents(1))
        .build()
        .toByteArray();
    assertThat(topLevelTags(input)).extracting(t -> t[0]).containsExactly(1, 2, 3, 5);
  }

  @Test
  void inferResponseUsesTritonFieldNumbers() throws Exception {
    ModelInferResponse response = ModelInferResponse.newBuilder()
        .setModelName("mlp")
        .addOutputs(ModelInferResponse.InferOutputTensor.newBuilder()
            .setName("OUTPUT0").setDatatype("FP32").addShape(1).addShape(2))
        .addRawOutputContents(floatsLittleEndian(0.5f, -0.5f))
        .build();
    byte[] encoded = response.toByteArray();

    assertThat(ModelInferResponse.parseFrom(encoded)).isEqualTo(response);
    // model_name 1, outputs 5, raw_output_contents 6.
    assertThat(topLevelTags(encoded)).extracting(t -> t[0]).containsExactly(1, 5, 6);

    ModelStreamInferResponse streamed = ModelStreamInferResponse.newBuilder()
        .setInferResponse(response).build();
    // infer_response is field 2, length-delimited: 0x12.
    assertThat(streamed.toByteArray()[0]).isEqualTo((byte) 0x12);
  }

  @Test
  void modelConfigRoundTripsAndUsesTritonFieldNumbers() throws Exception {
    ModelConfig config = ModelConfig.newBuilder()
        .setName("mlp")
        .setPlatform("onnxruntime_onnx")
        .setBackend("onnxruntime")
        .setMaxBatchSize(8)
        .addInput(ModelInput.newBuilder().setName("INPUT0").setDataType(DataType.TYPE_FP32).addDims(4))
        .addOutput(ModelOutput.newBuilder().setName("OUTPUT0").setDataType(DataType.TYPE_FP32).addDims(2))
        .addInstanceGroup(ModelInstanceGroup.newBuilder()
            .setKind(ModelInstanceGroup.Kind.KIND_CPU).setCount(2))
        .setDynamicBatching(ModelDynamicBatching.newBuilder().setMaxQueueDelayMicroseconds(100))
        .setVersionPolicy(ModelVersionPolicy.newBuilder()
            .setLatest(ModelVersionPolicy.Latest.newBuilder().setNumVersions(1)))
        .putParameters("intra_op_thread_count", ModelParameter.newBuilder().setStringValue("2").build())
        .build();
    byte[] encoded = config.toByteArray();

    ModelConfig parsed = ModelConfig.parseFrom(encoded);
    assertThat(parsed).isEqualTo(config);
    assertThat(parsed.getSchedulingChoiceCase()).isEqualTo(ModelConfig.SchedulingChoiceCase.DYNAMIC_BATCHING);
    assertThat(parsed.getInstanceGroup(0).getKind()).isEqualTo(ModelInstanceGroup.Kind.KIND_CPU);

    // name 1, platform 2, version_policy 3, max_batch_size 4 (varint), input 5, output 6,
    // instance_group 7, dynamic_batching 11, parameters 14, backend 17: serialised in field order.
    assertThat(topLevelTags(encoded)).extracting(t -> t[0])
        .containsExactly(1, 2, 3, 4, 5, 6, 7, 11, 14, 17);
    assertThat(topLevelTags(encoded)).filteredOn(t -> t[0] == 4)
        .extracting(t -> t[1]).containsExactly(WireFormat.WIRETYPE_VARINT);
    // DataType enum values as Triton numbers them.
    assertThat(DataType.TYPE_FP32.getNumber()).isEqualTo(11);
    assertThat(DataType.TYPE_STRING.getNumber()).isEqualTo(13);
    assertThat(DataType.TYPE_BF16.getNumber()).isEqualTo(14);

    // The ModelConfig rpc wraps it as field 1.
    byte[] wrapped = ModelConfigResponse.newBuilder().setConfig(config).build().toByteArray();
    assertThat(wrapped[0]).isEqualTo((byte) 0x0a);
  }

  @Test
  void modelConfigParsesFromConfigPbtxtText() throws Exception {
    String pbtxt = """
        name: "mlp"
        backend: "onnxruntime"
        max_batch_size: 0
        input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1, 4 ] } ]
        output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1, 2 ] } ]
        instance_group [ { kind: KIND_CPU count: 1 } ]
        """;
    ModelConfig.Builder builder = ModelConfig.newBuilder();
    com.google.protobuf.TextFormat.merge(pbtxt, builder);
    ModelConfig config = builder.build();

    assertThat(config.getInput(0).getDimsList()).containsExactly(1L, 4L);
    assertThat(config.getOutput(0).getDataType()).isEqualTo(DataType.TYPE_FP32);
    assertThat(config.getInstanceGroup(0).getKind()).isEqualTo(ModelInstanceGroup.Kind.KIND_CPU);
  }

  @Test
  void repositoryMessagesUseTritonFieldNumbers() throws Exception {
    byte[] load = RepositoryModelLoadRequest.newBuilder()
        .setModelName("mlp")
        .putParameters("config", ModelRepositoryParameter.newBuilder().setStringParam("{}").build())
        .build()
        .toByteArray();
    // model_name 2 -> 0x12, then parameters 3.
    assertThat(load[0]).isEqualTo((byte) 0x12);
    assertThat(topLevelTags(load)).extracting(t -> t[0]).containsExactly(2, 3);

    RepositoryIndexResponse index = RepositoryIndexResponse.newBuilder()
        .addModels(RepositoryIndexResponse.ModelIndex.newBuilder()
            .setName("mlp").setVersion("1").setState("READY"))
        .build();
    assertThat(RepositoryIndexResponse.parseFrom(index.toByteArray())).isEqualTo(index);
    assertThat(topLevelTags(index.getModels(0).toByteArray())).extracting(t -> t[0]).containsExactly(1, 2, 3);

    // RepositoryIndexRequest.ready is field 2, varint: 0x10.
    assertThat(RepositoryIndexRequest.newBuilder().setReady(true).build().toByteArray()[0])
        .isEqualTo((byte) 0x10);
  }

  @Test
  void serviceHasTheElevenTritonMethods() {
    ServiceDescriptor service = GRPCInferenceServiceGrpc.getServiceDescriptor();

    assertThat(service.getName()).isEqualTo("inference.GRPCInferenceService");
    assertThat(GRPCInferenceServiceGrpc.SERVICE_NAME).isEqualTo("inference.GRPCInferenceService");
    assertThat(service.getMethods())
        .extracting(MethodDescriptor::getFullMethodName)
        .containsExactlyInAnyOrder(
            "inference.GRPCInferenceService/ServerLive",
            "inference.GRPCInferenceService/ServerReady",
            "inference.GRPCInferenceService/ModelReady",
            "inference.GRPCInferenceService/ServerMetadata",
            "inference.GRPCInferenceService/ModelMetadata",
            "inference.GRPCInferenceService/ModelConfig",
            "inference.GRPCInferenceService/ModelInfer",
            "inference.GRPCInferenceService/ModelStreamInfer",
            "inference.GRPCInferenceService/RepositoryIndex",
            "inference.GRPCInferenceService/RepositoryModelLoad",
            "inference.GRPCInferenceService/RepositoryModelUnload");

    assertThat(GRPCInferenceServiceGrpc.getModelInferMethod().getType())
        .isEqualTo(MethodDescriptor.MethodType.UNARY);
    assertThat(GRPCInferenceServiceGrpc.getModelStreamInferMethod().getType())
        .isEqualTo(MethodDescriptor.MethodType.BIDI_STREAMING);
    assertThat(GRPCInferenceServiceGrpc.getModelStreamInferMethod().getFullMethodName())
        .isEqualTo("inference.GRPCInferenceService/ModelStreamInfer");
  }
}
