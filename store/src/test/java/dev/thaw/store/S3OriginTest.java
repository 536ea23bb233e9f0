package dev.thaw.store;

import static dev.thaw.store.OriginTestSupport.CHUNK;
import static dev.thaw.store.OriginTestSupport.FAST_RETRY;
import static dev.thaw.store.OriginTestSupport.assertModelReadsBack;
import static dev.thaw.store.OriginTestSupport.causeOf;
import static dev.thaw.store.OriginTestSupport.generateModel;
import static dev.thaw.store.OriginTestSupport.randomBytes;
import static dev.thaw.store.OriginTestSupport.readFully;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import org.gaul.s3proxy.AuthenticationType;
import org.gaul.s3proxy.S3Proxy;
import org.jclouds.ContextBuilder;
import org.jclouds.blobstore.BlobStore;
import org.jclouds.blobstore.BlobStoreContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The s3:// origin against a real S3 API: S3Proxy in process, on a filesystem blob store, with V4 signatures. */
class S3OriginTest {
  private static final String ACCESS_KEY = "thaw-test-access";
  private static final String SECRET_KEY = "thaw-test-secret-0123456789";
  private static final String BUCKET = "thaw-bucket";

  @TempDir static Path blobs;

  private static BlobStoreContext context;
  private static S3Proxy proxy;
  private static String endpoint;

  @BeforeAll
  static void startS3Proxy() throws Exception {
    Properties props = new Properties();
    props.setProperty("jclouds.filesystem.basedir", blobs.toString());
    context = ContextBuilder.newBuilder("filesystem")
        .overrides(props)
        .credentials("unused", "unused")
        .build(BlobStoreContext.class);
    BlobStore store = context.getBlobStore();
    store.createContainerInLocation(null, BUCKET);
    proxy = S3Proxy.builder()
        .blobStore(store)
        .endpoint(URI.create("http://127.0.0.1:0"))
        .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, ACCESS_KEY, SECRET_KEY)
        .build();
    proxy.start();
    long deadline = System.nanoTime() + 10_000_000_000L;
    while (!"STARTED".equals(proxy.getState())) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("S3Proxy did not start: " + proxy.getState());
      }
      Thread.sleep(10);
    }
    endpoint = "http://127.0.0.1:" + proxy.getPort();
    // The SDK's default credential chain reads these system properties first.
    System.setProperty("aws.accessKeyId", ACCESS_KEY);
    System.setProperty("aws.secretAccessKey", SECRET_KEY);
  }

  @AfterAll
  static void stopS3Proxy() throws Exception {
    System.clearProperty("aws.accessKeyId");
    System.clearProperty("aws.secretAccessKey");
    if (proxy != null) {
      proxy.stop();
    }
    if (context != null) {
      context.close();
    }
  }

  private static Origin open(String prefix) {
    return Origins.open("s3://" + BUCKET + "/" + prefix + "?endpoint=" + endpoint + "&path-style=true&region=us-east-1",
        FAST_RETRY, 16);
  }

  @Test
  void aPushedModelResolvesAndReadsBackByteForByte(@TempDir Path tmp) throws Exception {
    Path model = generateModel(tmp.resolve("model"), 41);
    try (Origin origin = open("store-a");
        ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20)) {
      Pusher.Result pushed = new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(model, ModelName.parse("llm:v1"));
      assertThat(pushed.chunksUploaded()).isPositive();

      Manifest manifest = new ModelStore(origin).resolve(ModelName.parse("llm:v1"));
      assertThat(manifest.digest()).isEqualTo(pushed.digest());
      try (ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
        assertModelReadsBack(reader, model);
      }
      assertThat(origin.list("chunks/")).hasSize((int) pushed.chunksUploaded());
      Pusher.Result again = new Pusher(origin, CHUNK, 4, PushProgress.NONE).push(model, ModelName.parse("llm:v1"));
      assertThat(again.bytesUploaded()).as("re-push of an unchanged model uploads nothing").isZero();
    }
  }

  @Test
  void statListDeleteAndTouchBehaveAsTheOriginContractSays() throws Exception {
    try (Origin origin = open("ops")) {
      byte[] a = randomBytes(1, 1000);
      origin.write("dir/a.bin", ByteBuffer.wrap(a));
      origin.write("dir/b.bin", ByteBuffer.wrap(new byte[] {1, 2, 3}));
      origin.write("other/c.bin", ByteBuffer.wrap(new byte[] {4}));

      ObjectInfo info = origin.stat("dir/a.bin").orElseThrow();
      assertThat(info.key()).isEqualTo("dir/a.bin");
      assertThat(info.size()).isEqualTo(1000);
      assertThat(info.version()).as("an ETag").isNotBlank();
      assertThat(origin.stat("dir/missing.bin")).isEmpty();

      assertThat(origin.list("dir/")).extracting(ObjectInfo::key).containsExactly("dir/a.bin", "dir/b.bin");
      assertThat(origin.list("")).extracting(ObjectInfo::key).containsExactly("dir/a.bin", "dir/b.bin", "other/c.bin");
      assertThat(origin.list("nothing/")).isEmpty();

      Thread.sleep(1100); // S3 keeps LastModified to the second
      origin.touch("dir/a.bin");
      ObjectInfo touched = origin.stat("dir/a.bin").orElseThrow();
      assertThat(touched.lastModified()).isAfter(info.lastModified());
      assertThat(origin.readAll("dir/a.bin")).as("touch keeps the content").isEqualTo(a);

      origin.delete("dir/a.bin");
      assertThat(origin.stat("dir/a.bin")).isEmpty();
      origin.delete("dir/a.bin"); // deleting a missing object is not an error
      assertThat(origin.list("dir/")).extracting(ObjectInfo::key).containsExactly("dir/b.bin");

      OriginException missing = catchThrowableOfType(() -> origin.readAll("dir/a.bin"));
      assertThat(missing.isNotFound()).isTrue();
      assertThat(missing.attempts()).as("a 404 is not retried").isEqualTo(1);
      assertThat(missing.getMessage()).contains("s3://" + BUCKET + "/ops/dir/a.bin").contains("404");
    }
  }

  @Test
  void aWriteAboveSixteenMebibytesGoesThroughMultipartAndReadsBackExactly() throws Exception {
    int size = S3Origin.MULTIPART_THRESHOLD + 3 * 1024 * 1024 + 17;
    byte[] big = randomBytes(7, size);
    try (Origin origin = open("big")) {
      origin.write("blob.bin", ByteBuffer.wrap(big));
      assertThat(origin.stat("blob.bin").orElseThrow().size()).isEqualTo(size);
      assertThat(origin.readAll("blob.bin")).isEqualTo(big);
      ByteBuffer range = ByteBuffer.allocate(1 << 20);
      long offset = S3Origin.MULTIPART_THRESHOLD - 1000; // straddles the part boundary
      origin.read("blob.bin", offset, range, origin.stat("blob.bin").orElseThrow().version());
      assertThat(range.array()).isEqualTo(Arrays.copyOfRange(big, (int) offset, (int) offset + (1 << 20)));
    }
  }

  @Test
  void directModeOverAPrefixOfOrdinaryObjectsReadsExactBytes(@TempDir Path tmp) throws Exception {
    Path local = generateModel(tmp.resolve("plain"), 99);
    try (Origin origin = open("plain-objects")) {
      for (String file : List.of("config.json", "weights/shard-00001.bin", "weights/shard-00002.bin", "empty.txt")) {
        origin.write(file, ByteBuffer.wrap(Files.readAllBytes(local.resolve(file))));
      }
      Manifest manifest = DirectListing.list(origin, CHUNK);
      assertThat(manifest.isDirect()).isTrue();
      assertThat(manifest.files()).extracting(FileEntry::path)
          .containsExactlyInAnyOrder("config.json", "weights/shard-00001.bin", "weights/shard-00002.bin", "empty.txt");
      try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20);
          ModelReader reader = ModelReader.open(manifest, origin, cache, ReaderOptions.DEFAULT)) {
        assertModelReadsBack(reader, local);
        FileEntry shard = (FileEntry) manifest.entry("weights/shard-00002.bin");
        for (ChunkRef c : shard.chunks()) {
          assertThat(cache.recordedHash(c.key())).as("hash recorded on first fetch of %s", c).isNotNull();
        }
      }
    }
  }

  @Test
  void anObjectOverwrittenAfterListingFailsAsChangedAndNeverMixesBytes(@TempDir Path tmp) throws Exception {
    byte[] original = randomBytes(5, 4 * CHUNK);
    try (Origin origin = open("changing")) {
      origin.write("model.bin", ByteBuffer.wrap(original));
      Manifest manifest = DirectListing.list(origin, CHUNK);
      String listedEtag = origin.stat("model.bin").orElseThrow().version();

      try (ChunkCache cache = ChunkCache.open(tmp.resolve("cache"), 64 << 20);
          ModelReader reader = ModelReader.open(manifest, origin, cache, new ReaderOptions(4, 0, false));
          ModelReader.ModelFile file = reader.open("model.bin")) {
        ByteBuffer first = ByteBuffer.allocate(CHUNK);
        assertThat(file.read(0, first)).isEqualTo(CHUNK);
        assertThat(first.array()).isEqualTo(Arrays.copyOf(original, CHUNK));

        origin.write("model.bin", ByteBuffer.wrap(randomBytes(6, 4 * CHUNK)));

        Throwable failure = catchThrowable(() -> file.read(2L * CHUNK, ByteBuffer.allocate(CHUNK)));
        OriginException changed = causeOf(failure, OriginException.class);
        assertThat(changed).as("cause of %s", failure).isNotNull();
        assertThat(changed.isChanged()).isTrue();
        assertThat(changed.status()).isEqualTo(412);
        assertThat(changed.attempts()).as("a changed object is not retried").isEqualTo(1);
        assertThat(failure.getMessage()).contains("s3://" + BUCKET + "/changing/model.bin");

        // What was read before the change is still the original's bytes, from the cache.
        ByteBuffer again = ByteBuffer.allocate(CHUNK);
        assertThat(file.read(0, again)).isEqualTo(CHUNK);
        assertThat(again.array()).isEqualTo(Arrays.copyOf(original, CHUNK));
      }

      assertThatThrownBy(() -> origin.read("model.bin", 0, ByteBuffer.allocate(10), listedEtag))
          .isInstanceOfSatisfying(OriginException.class, e -> assertThat(e.isChanged()).isTrue());
    }
  }

  private static OriginException catchThrowableOfType(org.assertj.core.api.ThrowableAssert.ThrowingCallable call) {
    Throwable t = catchThrowable(call);
    assertThat(t).isInstanceOf(OriginException.class);
    return (OriginException) t;
  }
}
