package dev.thaw.examples.ortserver;

import static dev.thaw.examples.ortserver.OrtServerTesting.get;
import static dev.thaw.examples.ortserver.OrtServerTesting.json;
import static dev.thaw.examples.ortserver.OrtServerTesting.post;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.google.protobuf.ByteString;
import dev.thaw.examples.onnx.GraphProto;
import dev.thaw.examples.onnx.ModelProto;
import dev.thaw.examples.onnx.NodeProto;
import dev.thaw.examples.onnx.OperatorSetIdProto;
import dev.thaw.examples.onnx.TensorProto;
import dev.thaw.examples.onnx.TensorShapeProto;
import dev.thaw.examples.onnx.TypeProto;
import dev.thaw.examples.onnx.ValueInfoProto;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.InferTensorContents;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelInferResponse;
import io.grpc.ManagedChannel;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tensor conversion for INT32, INT64 and FP64, both ways and over both protocols, through a model that doubles each
 * of three inputs ({@code y = x + x}); and inputs and outputs filled in from the model when config.pbtxt leaves them
 * out.
 */
class OrtServerDatatypesTest {
  @TempDir
  static Path repository;
  static OrtServer server;
  static ManagedChannel channel;
  static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub grpc;

  @BeforeAll
  static void startServer() throws Exception {
    writeDoublingModel("types", """
        name: "types"
        platform: "onnxruntime_onnx"
        max_batch_size: 4
        input [
          { name: "a" data_type: TYPE_INT32 dims: [ 3 ] },
          { name: "b" data_type: TYPE_INT64 dims: [ 3 ] },
          { name: "c" data_type: TYPE_FP64 dims: [ 2 ] }
        ]
        output [
          { name: "a2" data_type: TYPE_INT32 dims: [ 3 ] },
          { name: "b2" data_type: TYPE_INT64 dims: [ 3 ] },
          { name: "c2" data_type: TYPE_FP64 dims: [ 2 ] }
        ]
        """);
    writeDoublingModel("autofilled", """
        backend: "onnxruntime"
        max_batch_size: 4
        """);
    server = OrtServerTesting.start(repository);
    channel = OrtServerTesting.channel(server);
    grpc = OrtServerTesting.stub(channel);
  }

  @AfterAll
  static void stopServer() throws Exception {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    server.close();
  }

  @Test
  void convertsTypedContentsInAndRawContentsOut() {
    ModelInferRequest request = ModelInferRequest.newBuilder().setModelName("types")
        .addInputs(input("a", "INT32", 3, InferTensorContents.newBuilder().addIntContents(1).addIntContents(-2)
            .addIntContents(3).addIntContents(Integer.MAX_VALUE / 2).addIntContents(0).addIntContents(-7)))
        .addInputs(input("b", "INT64", 3, InferTensorContents.newBuilder().addInt64Contents(1L << 40)
            .addInt64Contents(-5).addInt64Contents(6).addInt64Contents(7).addInt64Contents(8).addInt64Contents(9)))
        .addInputs(input("c", "FP64", 2, InferTensorContents.newBuilder().addFp64Contents(0.25)
            .addFp64Contents(-1e300).addFp64Contents(Math.PI).addFp64Contents(1e-300)))
        .build();

    ModelInferResponse response = grpc.modelInfer(request);

    assertThat(response.getOutputsList()).extracting(ModelInferResponse.InferOutputTensor::getDatatype)
        .containsExactly("INT32", "INT64", "FP64");
    assertThat(response.getOutputs(0).getShapeList()).containsExactly(2L, 3L);
    assertThat(ints(response.getRawOutputContents(0))).containsExactly(2, -4, 6, Integer.MAX_VALUE / 2 * 2, 0, -14);
    assertThat(longs(response.getRawOutputContents(1))).containsExactly(1L << 41, -10L, 12L, 14L, 16L, 18L);
    assertThat(doubles(response.getRawOutputContents(2))).containsExactly(0.5, -2e300, 2 * Math.PI, 2e-300);
  }

  @Test
  void convertsJsonInAndOutAndReturnsOnlyTheOutputsAskedFor() throws Exception {
    String request = """
        {"inputs": [
          {"name": "a", "datatype": "INT32", "shape": [1, 3], "data": [[1, 2, -3]]},
          {"name": "b", "datatype": "INT64", "shape": [1, 3], "data": [4, 5, 1099511627776]},
          {"name": "c", "datatype": "FP64", "shape": [1, 2], "data": [0.1, -2.5]}
        ],
        "outputs": [{"name": "c2"}, {"name": "b2"}]}
        """;

    JsonNode outputs = json(post(server, "/v2/models/types/infer", request)).get("outputs");

    assertThat(outputs).hasSize(2);
    assertThat(outputs.get(0).get("name").asText()).isEqualTo("c2");
    assertThat(outputs.get(0).get("data").toString()).isEqualTo("[0.2,-5.0]");
    assertThat(outputs.get(1).get("name").asText()).isEqualTo("b2");
    assertThat(outputs.get(1).get("datatype").asText()).isEqualTo("INT64");
    assertThat(outputs.get(1).get("data").toString()).isEqualTo("[8,10,2199023255552]");
  }

  @Test
  void refusesJsonValuesOutsideTheType() throws Exception {
    String request = """
        {"inputs": [
          {"name": "a", "datatype": "INT32", "shape": [1, 3], "data": [1, 2, 3000000000]},
          {"name": "b", "datatype": "INT64", "shape": [1, 3], "data": [4, 5, 6]},
          {"name": "c", "datatype": "FP64", "shape": [1, 2], "data": [0.1, -2.5]}
        ]}
        """;

    HttpResponse<byte[]> response = post(server, "/v2/models/types/infer", request);

    assertThat(response.statusCode()).isEqualTo(400);
    assertThat(json(response).get("error").asText()).isEqualTo("Unable to parse 'data' of input 'a' as INT32:"
        + " expected an integer in [-2147483648, 2147483647], got 3000000000");
  }

  @Test
  void fillsInInputsAndOutputsTheConfigurationLeavesOut() throws Exception {
    JsonNode metadata = json(get(server, "/v2/models/autofilled"));

    assertThat(metadata.get("platform").asText()).isEqualTo("onnxruntime_onnx");
    assertThat(metadata.get("inputs").toString()).isEqualTo("[{\"name\":\"a\",\"datatype\":\"INT32\",\"shape\":[-1,3]},"
        + "{\"name\":\"b\",\"datatype\":\"INT64\",\"shape\":[-1,3]},"
        + "{\"name\":\"c\",\"datatype\":\"FP64\",\"shape\":[-1,2]}]");
    assertThat(metadata.get("outputs").findValuesAsText("name")).containsExactly("a2", "b2", "c2");
    JsonNode config = json(get(server, "/v2/models/autofilled/config"));
    assertThat(config.get("name").asText()).isEqualTo("autofilled");
    assertThat(config.get("input").get(1).get("data_type").asText()).isEqualTo("TYPE_INT64");
  }

  private static ModelInferRequest.InferInputTensor input(String name, String datatype, int width,
      InferTensorContents.Builder contents) {
    return ModelInferRequest.InferInputTensor.newBuilder().setName(name).setDatatype(datatype).addShape(2)
        .addShape(width).setContents(contents).build();
  }

  private static int[] ints(ByteString bytes) {
    int[] v = new int[bytes.size() / 4];
    bytes.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(v);
    return v;
  }

  private static long[] longs(ByteString bytes) {
    long[] v = new long[bytes.size() / 8];
    bytes.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(v);
    return v;
  }

  private static double[] doubles(ByteString bytes) {
    double[] v = new double[bytes.size() / 8];
    ByteBuffer.wrap(bytes.toByteArray()).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(v);
    return v;
  }

  /** An ONNX model with inputs a (int32 [N,3]), b (int64 [N,3]), c (double [N,2]) and outputs a2, b2, c2 = 2x. */
  private static void writeDoublingModel(String name, String config) throws Exception {
    GraphProto.Builder graph = GraphProto.newBuilder().setName(name);
    addDoubling(graph, "a", TensorProto.DataType.INT32, 3);
    addDoubling(graph, "b", TensorProto.DataType.INT64, 3);
    addDoubling(graph, "c", TensorProto.DataType.DOUBLE, 2);
    ModelProto model = ModelProto.newBuilder().setIrVersion(8).setProducerName("ort-server tests")
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17)).setGraph(graph).build();
    Path version = Files.createDirectories(repository.resolve(name).resolve("1"));
    Files.write(version.resolve("model.onnx"), model.toByteArray());
    Files.writeString(repository.resolve(name).resolve("config.pbtxt"), config);
  }

  private static void addDoubling(GraphProto.Builder graph, String input, TensorProto.DataType type, long width) {
    graph.addInput(valueInfo(input, type.getNumber(), width));
    graph.addOutput(valueInfo(input + "2", type.getNumber(), width));
    graph.addNode(NodeProto.newBuilder().setOpType("Add").setName("double_" + input).addInput(input).addInput(input)
        .addOutput(input + "2"));
  }

  private static ValueInfoProto valueInfo(String name, int elemType, long width) {
    TensorShapeProto shape = TensorShapeProto.newBuilder()
        .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("batch"))
        .addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(width)).build();
    return ValueInfoProto.newBuilder().setName(name)
        .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(elemType)
            .setShape(shape))).build();
  }
}
