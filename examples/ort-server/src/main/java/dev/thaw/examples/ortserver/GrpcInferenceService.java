package dev.thaw.examples.ortserver;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import dev.thaw.triton.protocol.GRPCInferenceServiceGrpc;
import dev.thaw.triton.protocol.InferParameter;
import dev.thaw.triton.protocol.ModelConfigRequest;
import dev.thaw.triton.protocol.ModelConfigResponse;
import dev.thaw.triton.protocol.ModelInferRequest;
import dev.thaw.triton.protocol.ModelInferResponse;
import dev.thaw.triton.protocol.ModelMetadataRequest;
import dev.thaw.triton.protocol.ModelMetadataResponse;
import dev.thaw.triton.protocol.ModelReadyRequest;
import dev.thaw.triton.protocol.ModelReadyResponse;
import dev.thaw.triton.protocol.ModelStreamInferResponse;
import dev.thaw.triton.protocol.RepositoryIndexRequest;
import dev.thaw.triton.protocol.RepositoryIndexResponse;
import dev.thaw.triton.protocol.RepositoryModelLoadRequest;
import dev.thaw.triton.protocol.RepositoryModelLoadResponse;
import dev.thaw.triton.protocol.RepositoryModelUnloadRequest;
import dev.thaw.triton.protocol.RepositoryModelUnloadResponse;
import dev.thaw.triton.protocol.ServerLiveRequest;
import dev.thaw.triton.protocol.ServerLiveResponse;
import dev.thaw.triton.protocol.ServerMetadataRequest;
import dev.thaw.triton.protocol.ServerMetadataResponse;
import dev.thaw.triton.protocol.ServerReadyRequest;
import dev.thaw.triton.protocol.ServerReadyResponse;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * Triton's {@code inference.GRPCInferenceService}: health, metadata, configuration, inference (unary and streaming)
 * and the model repository extension, answering errors with Triton's status codes and messages.
 */
final class GrpcInferenceService extends GRPCInferenceServiceGrpc.GRPCInferenceServiceImplBase {
  private final OrtServer server;
  private final ModelRepository repository;

  GrpcInferenceService(OrtServer server, ModelRepository repository) {
    this.server = server;
    this.repository = repository;
  }

  @Override
  public void serverLive(ServerLiveRequest request, StreamObserver<ServerLiveResponse> response) {
    answer(response, () -> ServerLiveResponse.newBuilder().setLive(true).build());
  }

  @Override
  public void serverReady(ServerReadyRequest request, StreamObserver<ServerReadyResponse> response) {
    answer(response, () -> ServerReadyResponse.newBuilder().setReady(server.isReady()).build());
  }

  @Override
  public void modelReady(ModelReadyRequest request, StreamObserver<ModelReadyResponse> response) {
    answer(response, () -> ModelReadyResponse.newBuilder()
        .setReady(repository.isReady(request.getName(), request.getVersion())).build());
  }

  @Override
  public void serverMetadata(ServerMetadataRequest request, StreamObserver<ServerMetadataResponse> response) {
    answer(response, () -> ServerMetadataResponse.newBuilder().setName(OrtServer.NAME)
        .setVersion(OrtServer.version()).addAllExtensions(OrtServer.EXTENSIONS).build());
  }

  @Override
  public void modelMetadata(ModelMetadataRequest request, StreamObserver<ModelMetadataResponse> response) {
    answer(response, () -> {
      LoadedModel model = repository.model(request.getName(), request.getVersion());
      ModelMetadataResponse.Builder b = ModelMetadataResponse.newBuilder().setName(model.name())
          .addVersions(Long.toString(model.version())).setPlatform(model.config().getPlatform());
      for (LoadedModel.TensorSpec t : model.inputs()) {
        b.addInputs(tensorMetadata(t, model.maxBatchSize()));
      }
      for (LoadedModel.TensorSpec t : model.outputs()) {
        b.addOutputs(tensorMetadata(t, model.maxBatchSize()));
      }
      return b.build();
    });
  }

  @Override
  public void modelInfer(ModelInferRequest request, StreamObserver<ModelInferResponse> response) {
    answer(response, () -> infer(request));
  }

  @Override
  public StreamObserver<ModelInferRequest> modelStreamInfer(StreamObserver<ModelStreamInferResponse> response) {
    return new StreamObserver<>() {
      @Override
      public void onNext(ModelInferRequest request) {
        // Errors travel in-band and the stream goes on, as in Triton; an error response carries the failed
        // request's id, so a client with several requests on the stream knows which one failed.
        ModelStreamInferResponse.Builder b = ModelStreamInferResponse.newBuilder();
        try {
          b.setInferResponse(infer(request));
        } catch (InferenceError e) {
          b.setErrorMessage(e.getMessage()).getInferResponseBuilder().setId(request.getId());
        } catch (RuntimeException e) {
          b.setErrorMessage(String.valueOf(e)).getInferResponseBuilder().setId(request.getId());
        }
        response.onNext(b.build());
      }

      @Override
      public void onError(Throwable t) {
        // The client went away or cancelled; nothing is left to answer.
      }

      @Override
      public void onCompleted() {
        response.onCompleted();
      }
    };
  }

  @Override
  public void modelConfig(ModelConfigRequest request, StreamObserver<ModelConfigResponse> response) {
    answer(response, () -> ModelConfigResponse.newBuilder()
        .setConfig(repository.model(request.getName(), request.getVersion()).config()).build());
  }

  @Override
  public void repositoryIndex(RepositoryIndexRequest request, StreamObserver<RepositoryIndexResponse> response) {
    answer(response, () -> {
      RepositoryIndexResponse.Builder b = RepositoryIndexResponse.newBuilder();
      for (ModelRepository.IndexEntry e : repository.index(request.getReady())) {
        b.addModels(RepositoryIndexResponse.ModelIndex.newBuilder().setName(e.name()).setVersion(e.version())
            .setState(e.state()).setReason(e.reason()));
      }
      return b.build();
    });
  }

  @Override
  public void repositoryModelLoad(RepositoryModelLoadRequest request,
      StreamObserver<RepositoryModelLoadResponse> response) {
    answer(response, () -> {
      server.checkModelControl();
      if (!request.getParametersMap().isEmpty()) {
        throw InferenceError.unsupported("ort-server does not support load parameters "
            + request.getParametersMap().keySet() + " (it loads the model's files in the repository as they are)");
      }
      repository.load(request.getModelName());
      return RepositoryModelLoadResponse.getDefaultInstance();
    });
  }

  @Override
  public void repositoryModelUnload(RepositoryModelUnloadRequest request,
      StreamObserver<RepositoryModelUnloadResponse> response) {
    answer(response, () -> {
      server.checkModelControl();
      repository.unload(request.getModelName()); // "unload_dependents" means nothing without ensembles
      return RepositoryModelUnloadResponse.getDefaultInstance();
    });
  }

  private ModelInferResponse infer(ModelInferRequest request) {
    LoadedModel model = repository.model(request.getModelName(), request.getModelVersion());
    InferResult result = model.infer(decode(request));
    ModelInferResponse.Builder b = ModelInferResponse.newBuilder().setModelName(result.modelName())
        .setModelVersion(Long.toString(result.modelVersion())).setId(result.id());
    for (Tensor output : result.outputs()) {
      ModelInferResponse.InferOutputTensor.Builder t = b.addOutputsBuilder().setName(output.name())
          .setDatatype(output.datatype());
      for (long d : output.shape()) {
        t.addShape(d);
      }
      // The buffer is this response's own copy of ONNX Runtime's output, so it can be wrapped without copying.
      b.addRawOutputContents(UnsafeByteOperations.unsafeWrap(output.data()));
    }
    return b.build();
  }

  /** The request's tensors as little-endian bytes, from raw contents or from the typed contents lists. */
  private static InferRequest decode(ModelInferRequest request) {
    String model = request.getModelName();
    int raw = request.getRawInputContentsCount();
    if (raw > 0 && raw != request.getInputsCount()) {
      throw InferenceError.invalidArg("expected " + request.getInputsCount() + " raw input contents but got " + raw
          + " for model '" + model + "' (one per input, in the order of the inputs)");
    }
    List<Tensor> inputs = new ArrayList<>(request.getInputsCount());
    for (int i = 0; i < request.getInputsCount(); i++) {
      ModelInferRequest.InferInputTensor input = request.getInputs(i);
      long[] shape = input.getShapeList().stream().mapToLong(Long::longValue).toArray();
      ByteBuffer data;
      if (raw > 0) {
        if (input.hasContents()) {
          throw InferenceError.invalidArg("contents field must not be specified when using raw_input_contents for '"
              + input.getName() + "' for model '" + model + "'");
        }
        ByteString bytes = request.getRawInputContents(i);
        // A direct copy: ONNX Runtime reads a direct buffer in place, and would copy a heap one anyway.
        data = ByteBuffer.allocateDirect(bytes.size()).order(ByteOrder.LITTLE_ENDIAN);
        bytes.copyTo(data);
        data.flip();
      } else if (input.hasContents()) {
        TensorType type = TensorType.fromProtocol(input.getDatatype());
        if (type == null) {
          // No typed list holds this type: an empty tensor, which validation answers with the datatype error.
          data = ByteBuffer.allocate(0);
        } else {
          data = ByteBuffer.allocateDirect(type.typedCount(input.getContents()) * type.byteSize)
              .order(ByteOrder.LITTLE_ENDIAN);
          type.putTyped(data, input.getContents());
          data.flip();
        }
      } else {
        throw InferenceError.invalidArg("unable to find data for input tensor '" + input.getName() + "' for model '"
            + model + "' in request.");
      }
      inputs.add(new Tensor(input.getName(), input.getDatatype(), shape, data));
    }
    List<String> outputs = new ArrayList<>(request.getOutputsCount());
    for (ModelInferRequest.InferRequestedOutputTensor output : request.getOutputsList()) {
      InferParameter classification = output.getParametersMap().get("classification");
      if (classification != null) {
        throw InferenceError.unsupported("ort-server does not support the classification extension (output '"
            + output.getName() + "')");
      }
      outputs.add(output.getName());
    }
    return new InferRequest(request.getId(), inputs, outputs);
  }

  private static ModelMetadataResponse.TensorMetadata tensorMetadata(LoadedModel.TensorSpec t, int maxBatchSize) {
    ModelMetadataResponse.TensorMetadata.Builder b = ModelMetadataResponse.TensorMetadata.newBuilder()
        .setName(t.name()).setDatatype(t.type().protocolName);
    for (long d : t.fullShape(maxBatchSize)) {
      b.addShape(d);
    }
    return b.build();
  }

  private static <T> void answer(StreamObserver<T> response, Supplier<T> call) {
    T value;
    try {
      value = call.get();
    } catch (InferenceError e) {
      response.onError(e.grpcStatus().asRuntimeException());
      return;
    } catch (RuntimeException e) {
      response.onError(Status.INTERNAL.withDescription(String.valueOf(e)).asRuntimeException());
      return;
    }
    response.onNext(value);
    response.onCompleted();
  }
}
