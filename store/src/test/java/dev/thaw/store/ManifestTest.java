package dev.thaw.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ManifestTest {
  private static final String H = Base64.getEncoder().encodeToString(new byte[32]);

  private static Manifest sample() {
    return Manifest.builder(4)
        .directory("weights", 0755)
        .file("weights/a.bin", 0644, List.of(new byte[32], new byte[32]), List.of(4, 2))
        .file("config.json", 0600, List.of(new byte[32]), List.of(3))
        .symlink("weights/latest", "a.bin")
        .build();
  }

  private static String json(String entries) {
    return "{\"version\":1,\"hash\":\"sha256\",\"chunkSize\":4,\"entries\":[" + entries + "]}";
  }

  private static Manifest parse(String s) {
    return Manifest.parse(s.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void roundTripsThroughCanonicalJsonWithTheSameDigest() {
    Manifest m = sample();
    Manifest back = Manifest.parse(m.canonicalBytes());
    assertThat(back.digest()).isEqualTo(m.digest()).startsWith("sha256:");
    assertThat(back.entries()).extracting(Entry::path)
        .containsExactly("config.json", "weights", "weights/a.bin", "weights/latest");
    FileEntry a = (FileEntry) back.entry("weights/a.bin");
    assertThat(a.size()).isEqualTo(6);
    assertThat(a.mode()).isEqualTo(0644);
    assertThat(a.chunks()).extracting(ChunkRef::length).containsExactly(4, 2);
    assertThat(a.chunks()).extracting(ChunkRef::fileOffset).containsExactly(0L, 4L);
    assertThat(back.children("weights")).extracting(Entry::name).containsExactlyInAnyOrder("a.bin", "latest");
  }

  @Test
  void canonicalFormSortsMembersAndHasNoWhitespace() {
    String text = new String(sample().canonicalBytes(), StandardCharsets.UTF_8);
    assertThat(text).doesNotContain(" ", "\n");
    assertThat(text).startsWith("{\"chunkSize\":4,\"entries\":[");
    assertThat(text).endsWith("],\"hash\":\"sha256\",\"version\":1}");
  }

  @Test
  void canonicalJsonEscapesAsRfc8785Requires() throws Exception {
    var node = Manifest.JSON.readTree("{\"b\":\"\\u0001\\n\\\"é\",\"a\":[1,-2,true,null]}");
    assertThat(CanonicalJson.write(node)).isEqualTo("{\"a\":[1,-2,true,null],\"b\":\"\\u0001\\n\\\"é\"}");
  }

  @Test
  void parentsThatAreNotListedAreImplicitDirectories() {
    Manifest m = Manifest.builder(4).file("a/b/c.bin", 0644, List.of(new byte[32]), List.of(1)).build();
    assertThat(m.entry("a")).isInstanceOf(DirectoryEntry.class);
    assertThat(m.children("")).extracting(Entry::path).containsExactly("a");
    assertThat(m.children("a/b")).extracting(Entry::path).containsExactly("a/b/c.bin");
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
    "unknown version        | {\"version\":3,\"hash\":\"sha256\",\"chunkSize\":4,\"entries\":[]}            | unsupported manifest version 3",
    "unknown hash           | {\"version\":1,\"hash\":\"md5\",\"chunkSize\":4,\"entries\":[]}               | unsupported hash algorithm 'md5'",
    "not json               | {\"version\":                                                                   | not valid JSON",
  })
  void refusesManifestsItCannotRead(String why, String json, String message) {
    assertThatThrownBy(() -> parse(json)).isInstanceOf(ManifestException.class).hasMessageContaining(message);
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
    "dot-dot path           | {\"path\":\"a/../../etc/passwd\",\"type\":\"dir\",\"mode\":493}                          | entry 'a/../../etc/passwd': '..' in path",
    "absolute path          | {\"path\":\"/etc/passwd\",\"type\":\"dir\",\"mode\":493}                                 | entry '/etc/passwd': absolute paths are refused",
    "empty segment          | {\"path\":\"a//b\",\"type\":\"dir\",\"mode\":493}                                        | entry 'a//b': empty or '.' path segment",
    "symlink leaving tree   | {\"path\":\"w/link\",\"type\":\"symlink\",\"target\":\"../../outside\"}                   | entry 'w/link': symlink target '../../outside' leaves the tree",
    "absolute symlink       | {\"path\":\"link\",\"type\":\"symlink\",\"target\":\"/etc/shadow\"}                       | entry 'link': symlink target '/etc/shadow' is absolute",
    "lengths not summing    | {\"path\":\"f\",\"type\":\"file\",\"size\":9,\"mode\":420,\"chunks\":\"HH\",\"lengths\":[[4,2]]} | entry 'f': chunk lengths sum to 8 bytes but the file size is 9",
    "chunk above chunk size | {\"path\":\"f\",\"type\":\"file\",\"size\":5,\"mode\":420,\"chunks\":\"HH\",\"lengths\":[[5,1]]} | entry 'f': chunk length 5",
    "hash count mismatch    | {\"path\":\"f\",\"type\":\"file\",\"size\":8,\"mode\":420,\"chunks\":\"HH\",\"lengths\":[[4,2]]} | entry 'f': 1.0 chunk hashes for 2 chunks",
    "unknown type           | {\"path\":\"f\",\"type\":\"fifo\"}                                                      | entry 'f': unknown type 'fifo'",
    "missing size           | {\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"chunks\":\"\",\"lengths\":[]}            | entry 'f': missing integer field 'size'",
  })
  void refusesUnsafeOrInconsistentEntriesNamingTheEntry(String why, String entry, String message) {
    assertThatThrownBy(() -> parse(json(entry.replace("HH", H))))
        .isInstanceOf(ManifestException.class).hasMessageContaining(message);
  }

  @Test
  void refusesDuplicatePaths() {
    String e = "{\"path\":\"d\",\"type\":\"dir\",\"mode\":493}";
    assertThatThrownBy(() -> parse(json(e + "," + e))).isInstanceOf(ManifestException.class)
        .hasMessageContaining("entry 'd': duplicate path");
  }

  @Test
  void refusesAnEntryUnderAFile() {
    String f = "{\"path\":\"f\",\"type\":\"file\",\"size\":1,\"mode\":420,\"chunks\":\"" + H + "\",\"lengths\":[[1,1]]}";
    String under = "{\"path\":\"f/x\",\"type\":\"dir\",\"mode\":493}";
    assertThatThrownBy(() -> parse(json(f + "," + under))).isInstanceOf(ManifestException.class)
        .hasMessageContaining("entry 'f/x': its parent 'f' is not a directory");
  }

  @Test
  void symlinksThatStayInsideTheTreeAreAccepted() {
    Manifest m = parse(json("{\"path\":\"a/b/link\",\"type\":\"symlink\",\"target\":\"../../c\"}"));
    assertThat(((SymlinkEntry) m.entry("a/b/link")).target()).isEqualTo("../../c");
  }

  private static String link(String path, String target) {
    return "{\"path\":\"" + path + "\",\"type\":\"symlink\",\"target\":\"" + target + "\"}";
  }

  @Test
  void aChainOfSymlinksThatTogetherLeaveTheTreeIsRefusedNamingTheLinkAndTheStepThatLeaves() {
    // Each link stays inside on its own; followed as the kernel follows them, esc reaches ../outside/secret.txt.
    String entries = link("a/b/up", "../..") + "," + link("esc", "a/b/up/../../outside/secret.txt");
    assertThatThrownBy(() -> parse(json(entries))).isInstanceOf(ManifestException.class)
        .hasMessageContaining("entry 'esc': symlink target 'a/b/up/../../outside/secret.txt' leaves the tree")
        .hasMessageContaining("through the link 'a/b/up' -> '../..'");
  }

  @ParameterizedTest(name = "{0} levels deep")
  @org.junit.jupiter.params.provider.ValueSource(ints = {1, 2, 8, 30})
  void aDeepChainReachingAHostFileIsRefused(int depth) {
    // d1/.../dN/up climbs to the root; esc goes up N+1 more levels and down to etc/hostname.
    String dirs = String.join("/", java.util.stream.IntStream.rangeClosed(1, depth).mapToObj(i -> "d" + i).toList());
    String entries = link(dirs + "/up", "../".repeat(depth).replaceAll("/$", "")) + ","
        + link("esc", dirs + "/up/" + "../".repeat(depth + 1) + "etc/hostname");
    assertThatThrownBy(() -> parse(json(entries))).isInstanceOf(ManifestException.class)
        .hasMessageContaining("entry 'esc'").hasMessageContaining("leaves the tree");
  }

  @Test
  void chainsOfSymlinksThatStayInsideTheTreeAreAccepted() {
    String file = "{\"path\":\"blobs/h1\",\"type\":\"file\",\"size\":1,\"mode\":420,\"chunks\":\"" + H
        + "\",\"lengths\":[[1,1]]}";
    Manifest m = parse(json(String.join(",", file,
        link("a/b/up", "../.."),
        link("ok", "a/b/up/blobs/h1"),
        link("snapshots/rev/model.bin", "../../blobs/h1"), // a Hugging Face cache's layout
        link("latest", "snapshots/rev"),
        link("via-latest", "latest/model.bin"))));
    assertThat(m.entry("via-latest")).isInstanceOf(SymlinkEntry.class);
  }

  @Test
  void aSymlinkLoopIsRefusedAsTheKernelWouldNotResolveItEither() {
    assertThatThrownBy(() -> parse(json(link("a", "b") + "," + link("b", "a"))))
        .isInstanceOf(ManifestException.class).hasMessageContaining("more than 40 links");
  }

  @Test
  void anEntryBelowASymlinkIsRefused() {
    String under = "{\"path\":\"l/x/f\",\"type\":\"dir\",\"mode\":493}";
    assertThatThrownBy(() -> parse(json(link("l", "d") + "," + under)))
        .isInstanceOf(ManifestException.class).hasMessageContaining("entry 'l/x': its ancestor 'l' is not a directory");
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
    // 4 x 2^62 wraps to 0, and 32 x (1 + 2^62) hash bytes wrap to 32: one hash, one byte, unless counted exactly
    "lengths wrapping 64 bits     | 4  | [[1,1],[4,4611686018427387904]]   | entry 'f': its lengths declare more than 1048576 chunks",
    "the issue's 2^59 x 32 run    | 64 | [[1,1],[32,576460752303423488]]   | entry 'f': its lengths declare more than 1048576 chunks",
    "a count beyond 64 bits       | 4  | [[1,1],[4,18446744073709551616]]  | entry 'f': a length run must be [length, count]",
    "a fractional length          | 4  | [[1.5,1]]                         | entry 'f': a length run must be [length, count]",
  })
  void chunkLengthsAreCheckedInExactArithmetic(String why, int chunkSize, String lengths, String message) {
    String manifest = "{\"version\":1,\"hash\":\"sha256\",\"chunkSize\":" + chunkSize + ",\"entries\":["
        + "{\"path\":\"f\",\"type\":\"file\",\"size\":1,\"mode\":420,\"chunks\":\"" + H + "\",\"lengths\":" + lengths + "}]}";
    assertThatThrownBy(() -> parse(manifest)).isInstanceOf(ManifestException.class).hasMessageContaining(message);
  }

  @Test
  void aModeBeyond32BitsIsRefusedNotTruncated() {
    String f = "{\"path\":\"f\",\"type\":\"file\",\"size\":0,\"mode\":4294967716,\"chunks\":\"\",\"lengths\":[]}";
    assertThatThrownBy(() -> parse(json(f))).isInstanceOf(ManifestException.class)
        .hasMessageContaining("entry 'f': mode 40000000644 is not a permission mode");
  }

  @Test
  void aFileOfTheMostChunksAManifestMayHoldIsReadBackAndOneMoreIsRefusedNamingTheChunkSizeThatFits() {
    int n = Manifest.MAX_CHUNKS_PER_FILE;
    List<byte[]> hashes = java.util.Collections.nCopies(n, new byte[32]);
    List<Integer> lengths = java.util.Collections.nCopies(n, 1);
    byte[] json = Manifest.builder(1).file("big.bin", 0644, hashes, lengths).build().canonicalBytes();
    assertThat(json.length).as("its chunk list is one JSON string longer than Jackson's default limit").isGreaterThan(20_000_000);
    assertThat(((FileEntry) Manifest.parse(json).entry("big.bin")).chunkCount()).isEqualTo(n);

    List<byte[]> oneMore = java.util.Collections.nCopies(n + 1, new byte[32]);
    assertThatThrownBy(() -> Manifest.builder(1).file("big.bin", 0644, oneMore, java.util.Collections.nCopies(n + 1, 1)))
        .isInstanceOf(ManifestException.class).hasMessageContaining("entry 'big.bin'").hasMessageContaining("1048576 chunks");
    assertThatThrownBy(() -> Manifest.Builder.checkChunkCount("big.bin", n + 1L, 1))
        .isInstanceOf(ManifestException.class)
        .hasMessageContaining("entry 'big.bin': 1048577 bytes in chunks of 1 bytes is more than 1048576 chunks")
        .hasMessageContaining("use a chunk size of at least 2 bytes");
  }

  @Test
  void aModelOfATerabyteIsDescribedCompactlyAndItsTreeListsWithoutDecodingChunkLists() {
    int chunkSize = 16 << 20;
    Manifest.Builder b = Manifest.builder(chunkSize);
    int filesCount = 64;
    int chunksPerFile = 1024; // 64 x 1024 x 16 MiB = 1 TiB, 65 536 chunks
    List<byte[]> hashes = new ArrayList<>();
    List<Integer> lengths = new ArrayList<>();
    for (int i = 0; i < chunksPerFile; i++) {
      byte[] h = new byte[32];
      h[0] = (byte) i;
      h[1] = (byte) (i >> 8);
      hashes.add(h);
      lengths.add(chunkSize);
    }
    for (int f = 0; f < filesCount; f++) {
      b.file(String.format("model-%05d.safetensors", f), 0644, hashes, lengths);
    }
    Manifest m = Manifest.parse(b.build().canonicalBytes());
    assertThat(m.totalBytes()).isEqualTo(1L << 40);
    // Lengths are run-length encoded: one run per file, whatever its chunk count.
    assertThat(new String(m.canonicalBytes(), StandardCharsets.UTF_8)).contains("\"lengths\":[[16777216,1024]]");
    FileEntry last = (FileEntry) m.entry("model-00063.safetensors");
    assertThat(last.chunkCount()).isEqualTo(1024);
    assertThat(last.chunkIndexAt((long) chunkSize * 1000 + 5)).isEqualTo(1000);
  }

  /** A version 2 manifest: chunks of 8192 bytes hashed in blocks of 4096. */
  private static Manifest withBlocks() {
    byte[] blocks = new byte[3 * 32]; // a file of one whole chunk (2 blocks) and a chunk of 10 bytes (1 block)
    for (int i = 0; i < blocks.length; i++) {
      blocks[i] = (byte) i;
    }
    return Manifest.builder(8192).blockSize(4096)
        .file("w.bin", 0644, List.of(new byte[32], new byte[32]), List.of(8192, 10), blocks)
        .file("plain.bin", 0644, List.of(new byte[32]), List.of(5))
        .build();
  }

  @Test
  void aVersion2ManifestListsEachChunksBlockHashesAndRoundTrips() {
    Manifest m = withBlocks();
    String json = new String(m.canonicalBytes(), StandardCharsets.UTF_8);
    assertThat(json).contains("\"version\":2").contains("\"blockSize\":4096").contains("\"blocks\":\"");
    Manifest back = Manifest.parse(m.canonicalBytes());
    assertThat(back.digest()).isEqualTo(m.digest());
    assertThat(back.version()).isEqualTo(2);
    List<ChunkRef> chunks = ((FileEntry) back.entry("w.bin")).chunks();
    assertThat(chunks.get(0).blocks().count()).isEqualTo(2);
    assertThat(chunks.get(1).blocks().count()).isEqualTo(1);
    byte[] third = new byte[32];
    for (int i = 0; i < 32; i++) {
      third[i] = (byte) (64 + i);
    }
    assertThat(chunks.get(1).blocks().matches(0, third, 0)).as("the second chunk's block is the file's third").isTrue();
    assertThat(((FileEntry) back.entry("plain.bin")).chunks().getFirst().blocks())
        .as("a file may list no blocks: its reads wait for whole chunks").isNull();
  }

  @Test
  void aVersion1ManifestStaysReadableAndIsWrittenWhenThereAreNoBlockHashes() {
    Manifest v1 = parse(json("{\"path\":\"a.bin\",\"type\":\"file\",\"size\":4,\"mode\":420,\"chunks\":\"" + H
        + "\",\"lengths\":[[4,1]]}"));
    assertThat(v1.version()).isEqualTo(1);
    assertThat(v1.blockSize()).isZero();
    assertThat(((FileEntry) v1.entry("a.bin")).chunks().getFirst().blocks()).isNull();
    assertThat(new String(sample().canonicalBytes(), StandardCharsets.UTF_8)).contains("\"version\":1")
        .doesNotContain("blockSize");
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
    "v2 without a block size | {\"version\":2,\"hash\":\"sha256\",\"chunkSize\":8192,\"entries\":[]} | missing integer field 'blockSize'",
    "a block size in v1 | {\"version\":1,\"hash\":\"sha256\",\"chunkSize\":8192,\"blockSize\":4096,\"entries\":[]} | a version 1 manifest has no 'blockSize'",
    "a block size not a power of two | {\"version\":2,\"hash\":\"sha256\",\"chunkSize\":12288,\"blockSize\":6144,\"entries\":[]} | block size 6144 is not a power of two",
    "a block size not dividing the chunk | {\"version\":2,\"hash\":\"sha256\",\"chunkSize\":10000,\"blockSize\":4096,\"entries\":[]} | block size 4096 is not a power of two from 4096 up to the chunk size 10000 that divides it",
    "a block size below 4096 | {\"version\":2,\"hash\":\"sha256\",\"chunkSize\":8192,\"blockSize\":2048,\"entries\":[]} | block size 2048",
    "blocks in v1 | {\"version\":1,\"hash\":\"sha256\",\"chunkSize\":8192,\"entries\":[{\"path\":\"a\",\"type\":\"file\",\"size\":4,\"mode\":420,\"chunks\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"blocks\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"lengths\":[[4,1]]}]} | entry 'a': 'blocks' in a version 1 manifest",
    "too few block hashes | {\"version\":2,\"hash\":\"sha256\",\"chunkSize\":8192,\"blockSize\":4096,\"entries\":[{\"path\":\"a\",\"type\":\"file\",\"size\":8192,\"mode\":420,\"chunks\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"blocks\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"lengths\":[[8192,1]]}]} | entry 'a': 1.0 block hashes for 2 blocks",
  })
  void refusesVersion2ManifestsWhoseBlocksDoNotFitTheirChunks(String why, String json, String message) {
    assertThatThrownBy(() -> parse(json)).isInstanceOf(ManifestException.class).hasMessageContaining(message);
  }
}
