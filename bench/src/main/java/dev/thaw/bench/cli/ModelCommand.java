package dev.thaw.bench.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.cli.JsonOut;
import dev.thaw.cli.Units;
import dev.thaw.examples.ortserver.MlpGenerator;
import dev.thaw.examples.ortserver.MlpSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine;

@Command(name = "model", mixinStandardHelpOptions = true,
    description = "Test models: real ONNX models of any size whose answers can be checked.",
    subcommands = ModelCommand.Generate.class)
final class ModelCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "a subcommand is required: generate");
  }

  @Command(name = "generate", mixinStandardHelpOptions = true,
      description = {
        "Write an ONNX multilayer perceptron with seeded random weights into a Triton model repository.",
        "",
        "Writes DIR/NAME/config.pbtxt, DIR/NAME/1/model.onnx and the fp32 weights as external data files (shards of "
            + "at most 256 MiB, each tensor page-aligned). From 1 GiB the layers are 4096 x 4096 (64 MiB), like a "
            + "real LLM's. The same seed writes the same bytes; the model's answers follow from the spec in its "
            + "metadata. The model appears complete or not at all: it is written aside and renamed into place."
      })
  static final class Generate implements Callable<Integer> {
    @Option(names = "--size", required = true, paramLabel = "SIZE", converter = Units.SizeConverter.class,
        description = "About this many bytes of weights, e.g. 1GiB, 512m, 64m.")
    long size;

    @Option(names = "--out", required = true, paramLabel = "DIR",
        description = "The model repository; the model goes in DIR/NAME, which must not exist yet.")
    Path out;

    @Option(names = "--name", paramLabel = "NAME", defaultValue = "mlp", description = "Model name. Default: ${DEFAULT-VALUE}.")
    String name;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "42", description = "Weight seed. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--json", description = "Print one JSON object with the result on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
      MlpSpec mlp = MlpSpec.forSize(size, seed);
      Path modelDir = out.resolve(name);
      if (Files.exists(modelDir)) { // MlpGenerator refuses too; here before the log line, and naming the option
        throw new IllegalArgumentException(modelDir + " already exists; choose another --name or delete it first");
      }
      System.err.printf(Locale.ROOT, "model: generating %s of weights (%d hidden layers of %d, input %d, output %d) in %s%n",
          Units.bytes(mlp.weightBytes()), mlp.hiddenLayers(), mlp.hiddenDim(), mlp.inputDim(), mlp.outputDim(), modelDir);
      long start = System.nanoTime();
      long bytes = MlpGenerator.generate(out, name, mlp);
      double s = (System.nanoTime() - start) / 1e9;
      long files;
      try (Stream<Path> all = Files.walk(modelDir)) {
        files = all.filter(Files::isRegularFile).count();
      }
      String summary = String.format(Locale.ROOT, "generated model %s in %s: %s in %d files in %.2f s, %.0f MB/s",
          name, modelDir, Units.bytes(bytes), files, s, Units.mbps(bytes, s));
      if (json) {
        System.err.println(summary);
        ObjectNode n = JsonOut.object();
        n.put("repository", out.toString());
        n.put("model", name);
        n.put("bytes", bytes);
        n.put("files", files);
        n.put("seconds", s);
        n.set("spec", JsonOut.MAPPER.readTree(mlp.toJson()));
        JsonOut.print(System.out, n);
      } else {
        System.out.println(summary);
      }
      return 0;
    }
  }
}
