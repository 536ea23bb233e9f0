package dev.thaw.fuse;

import dev.thaw.store.Manifest;
import dev.thaw.store.ModelName;
import dev.thaw.store.ModelStore;
import dev.thaw.store.Origins;
import dev.thaw.store.ReaderOptions;
import java.nio.file.Path;

/** Mounts a model and serves it until killed: what a crashed `thaw mount` leaves behind is its mount. */
final class MountChild {
  private MountChild() {}

  public static void main(String[] args) throws Exception {
    Manifest m = new ModelStore(Origins.open(args[0])).resolve(ModelName.parse(args[1]));
    TestModels.Reading r = TestModels.Reading.open(m, args[0], Path.of(args[2]), ReaderOptions.DEFAULT);
    LazyMount.mount(r.reader(), Path.of(args[3]), MountOptions.DEFAULT);
    System.out.println("mounted");
    Thread.sleep(Long.MAX_VALUE);
  }
}
