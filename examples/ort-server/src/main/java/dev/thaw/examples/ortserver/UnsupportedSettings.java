package dev.thaw.examples.ortserver;

import dev.thaw.triton.protocol.ModelConfig;
import dev.thaw.triton.protocol.ModelInput;
import dev.thaw.triton.protocol.ModelInstanceGroup;
import dev.thaw.triton.protocol.ModelOptimizationPolicy;
import dev.thaw.triton.protocol.ModelOutput;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The model settings Triton honours and ort-server does not: a configuration that asks for one fails its load with
 * one line naming every such setting, instead of loading and echoing settings it ignores.
 *
 * <p>Refused: what changes which requests a model accepts or what it answers (batchers, sequences, ensembles,
 * decoupled responses, optional inputs, configured warmup samples, custom operators, repository agents, reshapes),
 * and what asks for hardware or a TensorRT feature a CPU-only ONNX Runtime server does not have (GPU instance
 * groups, secondary devices, profiles, shape tensors, non-linear formats, CPU execution accelerators). Accepted and
 * ignored: settings that only tune speed or metrics on a CPU (instance counts, rate limiters, GPU-side optimization
 * switches, response cache, metric tags, model_metrics, parameters), as Triton ignores them on a CPU too.
 */
final class UnsupportedSettings {
  private UnsupportedSettings() {}

  /** Fails with every setting of {@code config} (read from {@code configFile}) that ort-server does not implement. */
  static void check(ModelConfig config, Path configFile) throws LoadedModel.LoadFailure {
    List<String> refused = find(config);
    if (!refused.isEmpty()) {
      throw new LoadedModel.LoadFailure(configFile + " asks for what ort-server does not implement: "
          + String.join(", ", refused) + "; remove " + (refused.size() == 1 ? "it" : "them")
          + ", or serve the model with Triton");
    }
  }

  /** Each refused setting with why, in the order of the configuration's fields. */
  private static List<String> find(ModelConfig config) {
    List<String> refused = new ArrayList<>();
    switch (config.getSchedulingChoiceCase()) {
      case DYNAMIC_BATCHING -> refused.add("dynamic_batching (no dynamic batcher: each request runs on its own)");
      case SEQUENCE_BATCHING -> refused.add("sequence_batching (no sequence batcher: no correlation IDs, sequence"
          + " controls or implicit state)");
      case ENSEMBLE_SCHEDULING -> refused.add("ensemble_scheduling (no ensembles)");
      default -> { }
    }
    for (int i = 0; i < config.getInstanceGroupCount(); i++) {
      ModelInstanceGroup group = config.getInstanceGroup(i);
      String name = "instance_group " + (group.getName().isEmpty() ? "[" + i + "]" : "'" + group.getName() + "'");
      if (group.getKind() == ModelInstanceGroup.Kind.KIND_GPU) {
        refused.add(name + " kind KIND_GPU (CPU only: use KIND_CPU)");
      }
      if (group.getGpusCount() > 0) {
        refused.add(name + " gpus " + group.getGpusList() + " (CPU only: leave gpus out)");
      }
      if (group.getSecondaryDevicesCount() > 0) {
        refused.add(name + " secondary_devices (no secondary devices)");
      }
      if (group.getProfileCount() > 0) {
        refused.add(name + " profile (TensorRT only)");
      }
      if (group.getPassive()) {
        refused.add(name + " passive (every instance serves)");
      }
    }
    for (ModelInput input : config.getInputList()) {
      String name = "input '" + input.getName() + "'";
      if (input.hasReshape()) {
        refused.add(name + " reshape (tensors reach the model as they are sent)");
      }
      if (input.getOptional()) {
        refused.add(name + " optional (every input is required)");
      }
      if (input.getIsShapeTensor()) {
        refused.add(name + " is_shape_tensor (TensorRT only)");
      }
      if (input.getIsNonLinearFormatIo()) {
        refused.add(name + " is_non_linear_format_io (TensorRT only)");
      }
    }
    for (ModelOutput output : config.getOutputList()) {
      String name = "output '" + output.getName() + "'";
      if (output.hasReshape()) {
        refused.add(name + " reshape (tensors leave the model as they are)");
      }
      if (output.getIsShapeTensor()) {
        refused.add(name + " is_shape_tensor (TensorRT only)");
      }
      if (output.getIsNonLinearFormatIo()) {
        refused.add(name + " is_non_linear_format_io (TensorRT only)");
      }
    }
    if (config.getBatchInputCount() > 0) {
      refused.add("batch_input (no batcher)");
    }
    if (config.getBatchOutputCount() > 0) {
      refused.add("batch_output (no batcher)");
    }
    for (ModelOptimizationPolicy.ExecutionAccelerators.Accelerator accelerator
        : config.getOptimization().getExecutionAccelerators().getCpuExecutionAcceleratorList()) {
      refused.add("cpu_execution_accelerator '" + accelerator.getName() + "' (ONNX Runtime's default CPU execution"
          + " provider only)");
    }
    if (config.getModelWarmupCount() > 0) {
      refused.add("model_warmup (start ort-server with --warmup instead: one inference of zeros per model)");
    }
    if (config.getModelOperations().getOpLibraryFilenameCount() > 0) {
      refused.add("model_operations " + config.getModelOperations().getOpLibraryFilenameList()
          + " (no custom operator libraries)");
    }
    if (config.getModelTransactionPolicy().getDecoupled()) {
      refused.add("model_transaction_policy decoupled (exactly one response per request)");
    }
    if (config.getModelRepositoryAgents().getAgentsCount() > 0) {
      refused.add("model_repository_agents (no repository agents)");
    }
    return refused;
  }
}
