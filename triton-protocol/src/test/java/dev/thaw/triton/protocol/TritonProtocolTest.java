package dev.thaw.triton.protocol;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.TextFormat;
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
    TextFormat.merge(pbtxt, builder);
    ModelConfig config = builder.build();

    assertThat(config.getInput(0).getDimsList()).containsExactly(1L, 4L);
    assertThat(config.getOutput(0).getDataType()).isEqualTo(DataType.TYPE_FP32);
    assertThat(config.getInstanceGroup(0).getKind()).isEqualTo(ModelInstanceGroup.Kind.KIND_CPU);
  }

  @Test
  void ensemblingFieldTwoIsMaxInflightRequestsAsUpstreamNamesIt() throws Exception {
    ModelEnsembling ensemble = ModelEnsembling.newBuilder()
        .addStep(ModelEnsembling.Step.newBuilder().setModelName("det").setModelVersion(-1))
        .setMaxInflightRequests(4)
        .build();

    // step 1 (length-delimited), max_inflight_requests 2 (varint): 0x10, then 4.
    assertThat(topLevelTags(ensemble.toByteArray())).extracting(t -> t[0]).containsExactly(1, 2);
    byte[] limitOnly = ModelEnsembling.newBuilder().setMaxInflightRequests(4).build().toByteArray();
    assertThat(limitOnly).containsExactly(0x10, 4);
    assertThat(ModelEnsembling.getDescriptor().findFieldByNumber(2).getName()).isEqualTo("max_inflight_requests");

    ModelConfig.Builder parsed = ModelConfig.newBuilder();
    TextFormat.merge("ensemble_scheduling { step [ { model_name: \"det\" model_version: -1 } ]"
        + " max_inflight_requests: 4 }", parsed);
    assertThat(parsed.getEnsembleScheduling()).isEqualTo(ensemble);
  }

  @Test
  void sequenceBatchingIsFieldThirteenOfTheSchedulingChoiceWithUpstreamsShape() throws Exception {
    ModelSequenceBatching sequence = ModelSequenceBatching.newBuilder()
        .setMaxSequenceIdleMicroseconds(5_000_000)
        .addControlInput(ModelSequenceBatching.ControlInput.newBuilder().setName("START")
            .addControl(ModelSequenceBatching.Control.newBuilder()
                .setKind(ModelSequenceBatching.Control.Kind.CONTROL_SEQUENCE_START)
                .addInt32FalseTrue(0).addInt32FalseTrue(1)))
        .setOldest(ModelSequenceBatching.StrategyOldest.newBuilder().setMaxCandidateSequences(4))
        .addState(ModelSequenceBatching.State.newBuilder().setInputName("INPUT_STATE").setOutputName("OUTPUT_STATE")
            .setDataType(DataType.TYPE_FP32).addDims(1)
            .addInitialState(ModelSequenceBatching.InitialState.newBuilder().setName("zeros").setZeroData(true)
                .setDataType(DataType.TYPE_FP32).addDims(1)))
        .build();
    ModelConfig config = ModelConfig.newBuilder().setName("lstm").setSequenceBatching(sequence).build();

    // name 1, sequence_batching 13 (length-delimited): tag (13 << 3) | 2 = 0x6a.
    assertThat(topLevelTags(config.toByteArray())).extracting(t -> t[0]).containsExactly(1, 13);
    assertThat(ModelConfig.parseFrom(config.toByteArray()).getSchedulingChoiceCase())
        .isEqualTo(ModelConfig.SchedulingChoiceCase.SEQUENCE_BATCHING);
    // max_sequence_idle_microseconds 1, control_input 2, oldest 4, state 5.
    assertThat(topLevelTags(sequence.toByteArray())).extracting(t -> t[0]).containsExactly(1, 2, 4, 5);
    // Control: kind 1, int32_false_true 2, fp32_false_true 3, data_type 4, bool_false_true 5.
    assertThat(ModelSequenceBatching.Control.getDescriptor().getFields())
        .extracting(f -> f.getNumber() + ":" + f.getName())
        .containsExactlyInAnyOrder("1:kind", "2:int32_false_true", "3:fp32_false_true", "4:data_type",
            "5:bool_false_true");
    assertThat(ModelSequenceBatching.getDescriptor().findFieldByName("direct").getNumber()).isEqualTo(3);
    assertThat(ModelSequenceBatching.getDescriptor().findFieldByName("iterative_sequence").getNumber())
        .isEqualTo(6);
    assertThat(ModelSequenceBatching.State.getDescriptor().findFieldByName("use_growable_memory").getNumber())
        .isEqualTo(7);
    assertThat(ModelSequenceBatching.InitialState.getDescriptor().findFieldByName("data_file").getNumber())
        .isEqualTo(4);
  }

  @Test
  void configPbtxtWithEveryUpstreamSectionParsesWithoutSkippingUnknownFields() throws Exception {
    // Strict parsing (unknown fields are errors): each section below is one the old subset left out.
    String pbtxt = """
        name: "lstm"
        backend: "onnxruntime"
        max_batch_size: 8
        sequence_batching {
          max_sequence_idle_microseconds: 5000000
          direct { max_queue_delay_microseconds: 100 minimum_slot_utilization: 0.5 }
          control_input [
            { name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] },
            { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
          ]
          state [ { input_name: "IN_STATE" output_name: "OUT_STATE" data_type: TYPE_FP32 dims: [ 4 ]
                    initial_state [ { name: "init" data_type: TYPE_FP32 dims: [ 4 ] data_file: "zeros.bin" } ]
                    use_same_buffer_for_input_output: true } ]
        }
        model_metrics {
          metric_control [ { metric_identifier { family: "nv_inference_first_response_histogram_ms" }
                             histogram_options { buckets: [ 1, 10, 100 ] } } ]
        }
        optimization { cuda { graphs: true graph_spec [ { batch_size: 4 input { key: "INPUT0" value { dim: [ 16 ] } }
                              graph_lower_bound { batch_size: 1 input { key: "INPUT0" value { dim: [ 16 ] } } } } ] } }
        """;
    ModelConfig.Builder builder = ModelConfig.newBuilder();
    TextFormat.merge(pbtxt, builder);
    ModelConfig config = builder.build();

    assertThat(config.getSequenceBatching().getControlInput(1).getControl(0).getDataType())
        .isEqualTo(DataType.TYPE_UINT64);
    assertThat(config.getSequenceBatching().getDirect().getMinimumSlotUtilization()).isEqualTo(0.5f);
    assertThat(config.getSequenceBatching().getState(0).getInitialState(0).getDataFile()).isEqualTo("zeros.bin");
    assertThat(config.getModelMetrics().getMetricControl(0).getHistogramOptions().getBucketsList())
        .containsExactly(1.0, 10.0, 100.0);
    assertThat(config.getOptimization().getCuda().getGraphSpec(0).getGraphLowerBound().getInputMap()
        .get("INPUT0").getDimList()).containsExactly(16L);
    // model_metrics is field 26, after runtime (25); graph_spec is Cuda's field 3.
    assertThat(ModelConfig.getDescriptor().findFieldByName("model_metrics").getNumber()).isEqualTo(26);
    assertThat(ModelOptimizationPolicy.Cuda.getDescriptor().findFieldByName("graph_spec").getNumber()).isEqualTo(3);
    assertThat(ModelConfig.parseFrom(config.toByteArray())).isEqualTo(config);
  }

  @Test
  void healthServiceIsTheStandardGrpcHealthV1() throws Exception {
    assertThat(HealthGrpc.SERVICE_NAME).isEqualTo("grpc.health.v1.Health");
    assertThat(HealthGrpc.getServiceDescriptor().getMethods())
        .extracting(MethodDescriptor::getFullMethodName)
        .containsExactlyInAnyOrder("grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch");
    assertThat(HealthGrpc.getWatchMethod().getType()).isEqualTo(MethodDescriptor.MethodType.SERVER_STREAMING);
    // service is field 1 of the request; status field 1 of the response, SERVING = 1, SERVICE_UNKNOWN = 3.
    assertThat(HealthCheckRequest.newBuilder().setService("x").build().toByteArray()).containsExactly(0x0a, 1, 'x');
    assertThat(HealthCheckResponse.newBuilder().setStatus(HealthCheckResponse.ServingStatus.SERVING).build()
        .toByteArray()).containsExactly(0x08, 1);
    assertThat(HealthCheckResponse.ServingStatus.SERVICE_UNKNOWN.getNumber()).isEqualTo(3);
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
