package dev.thaw.agent.apps;

import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.repository.zoo.Criteria;
import ai.djl.repository.zoo.ZooModel;
import java.nio.file.Path;

/**
 * A Java server's model load as DJL's users write it: {@code Criteria} with the model's directory ({@code args[0]})
 * on the ONNX Runtime engine, then one inference of {@code args[1]} inputs of 1.0; prints the first output value.
 */
public final class DjlApp {
  private DjlApp() {}

  public static void main(String[] args) throws Exception {
    Criteria<NDList, NDList> criteria = Criteria.builder().setTypes(NDList.class, NDList.class)
        .optModelPath(Path.of(args[0])).optModelName("model").optEngine("OnnxRuntime").build();
    int width = Integer.parseInt(args[1]);
    try (ZooModel<NDList, NDList> model = criteria.loadModel();
         Predictor<NDList, NDList> predictor = model.newPredictor();
         NDManager manager = NDManager.newBaseManager("OnnxRuntime")) {
      float[] input = new float[width];
      java.util.Arrays.fill(input, 1f);
      NDList out = predictor.predict(new NDList(manager.create(input, new Shape(1, width))));
      System.out.println("first output " + out.singletonOrThrow().toFloatArray()[0]);
    }
  }
}
