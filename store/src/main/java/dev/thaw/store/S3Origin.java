package dev.thaw.store;

import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.ResponseInputStream;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.S3ClientBuilder;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;
import software.amazon.awssdk.services.s3.model.MetadataDirective;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * An origin in an S3 bucket under a prefix, through the AWS SDK v2 with the standard credential chain.
 * Options ride on the URI's query: {@code endpoint} (an S3-compatible store), {@code path-style=true} and
 * {@code region}; {@code AWS_ENDPOINT_URL} is honoured too. The SDK's own retries are off: {@link RetryPolicy}
 * retries, so errors report the true attempt count.
 */
final class S3Origin implements Origin {
  /** S3-compatible stores (S3Proxy among them) refuse signed single PUTs above 32 MiB. */
  static final int MULTIPART_THRESHOLD = 16 << 20;

  private final String bucket;
  private final String prefix; // "" or ends with '/'
  private final String uri;
  private final S3Client s3;

  S3Origin(URI uri, int maxConnections) {
    this.bucket = uri.getHost();
    if (bucket == null || bucket.isEmpty()) {
      throw new IllegalArgumentException("s3 URI has no bucket: " + uri + " (expected s3://bucket/prefix)");
    }
    String p = uri.getPath() == null ? "" : uri.getPath();
    p = p.startsWith("/") ? p.substring(1) : p;
    this.prefix = p.isEmpty() || p.endsWith("/") ? p : p + "/";
    this.uri = "s3://" + bucket + "/" + prefix;
    Map<String, String> q = Origins.query(uri);
    S3ClientBuilder b = S3Client.builder()
        .httpClientBuilder(ApacheHttpClient.builder()
            .maxConnections(maxConnections)
            .connectionTimeout(Duration.ofSeconds(10))
            .socketTimeout(Duration.ofSeconds(60)))
        .overrideConfiguration(c -> c.retryStrategy(AwsRetryStrategy.doNotRetry()))
        // Checksums only where an API requires them: the SDK's default (CRC32 trailers on every upload) is
        // refused by many S3-compatible stores, S3Proxy among them (XAmzContentSHA256Mismatch), and chunks are
        // verified by their SHA-256 anyway.
        .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
        .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED)
        .forcePathStyle(Boolean.parseBoolean(q.getOrDefault("path-style", "false")));
    String endpoint = q.get("endpoint");
    if (endpoint != null) {
      b.endpointOverride(URI.create(endpoint));
    }
    b.region(region(q.get("region")));
    this.s3 = b.build();
  }

  private static Region region(String given) {
    if (given != null) {
      return Region.of(given);
    }
    try {
      return DefaultAwsRegionProviderChain.builder().build().getRegion();
    } catch (SdkClientException e) {
      return Region.US_EAST_1; // S3-compatible stores rarely care; AWS redirects errors name the right one
    }
  }

  @Override
  public String uri() {
    return uri;
  }

  @Override
  public String urlOf(String key) {
    return uri + key;
  }

  @Override
  public boolean writable() {
    return true;
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch) throws OriginException {
    read(key, offset, dst, ifMatch, ReadProgress.NONE);
  }

  @Override
  public void read(String key, long offset, ByteBuffer dst, String ifMatch, ReadProgress progress) throws OriginException {
    int length = dst.remaining();
    if (length == 0) {
      return;
    }
    String url = urlOf(key);
    try (ResponseInputStream<GetObjectResponse> in = s3.getObject(r -> {
      r.bucket(bucket).key(prefix + key).range("bytes=" + offset + "-" + (offset + length - 1));
      if (ifMatch != null) {
        r.ifMatch(ifMatch);
      }
    })) {
      byte[] buf = dst.hasArray() ? null : new byte[Math.min(length, 1 << 20)];
      while (dst.hasRemaining()) {
        int n;
        if (buf == null) {
          n = in.read(dst.array(), dst.arrayOffset() + dst.position(), dst.remaining());
          if (n > 0) {
            dst.position(dst.position() + n);
          }
        } else {
          n = in.read(buf, 0, Math.min(buf.length, dst.remaining()));
          if (n > 0) {
            dst.put(buf, 0, n);
          }
        }
        if (n > 0) {
          progress.arrived(dst.position());
        }
        if (n < 0) {
          throw new OriginException(url, OriginException.NO_STATUS, true,
              "truncated body from " + url + ": got " + (length - dst.remaining()) + " of " + length + " bytes", null);
        }
      }
    } catch (SdkException e) {
      throw translate(url, "GET", e);
    } catch (IOException e) {
      throw HttpOrigin.transportError(url, "GET", e);
    }
  }

  @Override
  public byte[] readAll(String key) throws OriginException {
    try {
      return s3.getObjectAsBytes(r -> r.bucket(bucket).key(prefix + key)).asByteArray();
    } catch (SdkException e) {
      throw translate(urlOf(key), "GET", e);
    }
  }

  @Override
  public Optional<ObjectInfo> stat(String key) throws OriginException {
    try {
      HeadObjectResponse h = s3.headObject(r -> r.bucket(bucket).key(prefix + key));
      return Optional.of(new ObjectInfo(key, h.contentLength(), h.eTag(), h.lastModified()));
    } catch (SdkException e) {
      OriginException oe = translate(urlOf(key), "HEAD", e);
      if (oe.isNotFound()) {
        return Optional.empty();
      }
      throw oe;
    }
  }

  @Override
  public List<ObjectInfo> list(String keyPrefix) throws OriginException {
    List<ObjectInfo> out = new ArrayList<>();
    try {
      for (S3Object o : s3.listObjectsV2Paginator(r -> r.bucket(bucket).prefix(prefix + keyPrefix)).contents()) {
        String key = o.key().substring(prefix.length());
        if (key.isEmpty() || key.endsWith("/")) {
          continue; // "directory" placeholder objects
        }
        Instant modified = o.lastModified() == null ? Instant.EPOCH : o.lastModified();
        out.add(new ObjectInfo(key, o.size(), o.eTag(), modified));
      }
    } catch (SdkException e) {
      throw translate(urlOf(keyPrefix), "LIST", e);
    }
    return out;
  }

  @Override
  public void write(String key, ByteBuffer data) throws OriginException {
    String url = urlOf(key);
    try {
      if (data.remaining() <= MULTIPART_THRESHOLD) {
        s3.putObject(r -> r.bucket(bucket).key(prefix + key), RequestBody.fromByteBuffer(data.slice()));
        data.position(data.limit());
        return;
      }
      String uploadId = s3.createMultipartUpload(r -> r.bucket(bucket).key(prefix + key)).uploadId();
      try {
        List<CompletedPart> parts = new ArrayList<>();
        int partNumber = 1;
        while (data.hasRemaining()) {
          int n = Math.min(MULTIPART_THRESHOLD, data.remaining());
          ByteBuffer part = data.slice(data.position(), n);
          int number = partNumber++;
          String etag = s3.uploadPart(r -> r.bucket(bucket).key(prefix + key).uploadId(uploadId).partNumber(number),
              RequestBody.fromByteBuffer(part)).eTag();
          parts.add(CompletedPart.builder().partNumber(number).eTag(etag).build());
          data.position(data.position() + n);
        }
        s3.completeMultipartUpload(r -> r.bucket(bucket).key(prefix + key).uploadId(uploadId)
            .multipartUpload(m -> m.parts(parts)));
      } catch (SdkException e) {
        s3.abortMultipartUpload(r -> r.bucket(bucket).key(prefix + key).uploadId(uploadId));
        throw e;
      }
    } catch (SdkException e) {
      throw translate(url, "PUT", e);
    }
  }

  @Override
  public void delete(String key) throws OriginException {
    try {
      s3.deleteObject(r -> r.bucket(bucket).key(prefix + key));
    } catch (SdkException e) {
      OriginException oe = translate(urlOf(key), "DELETE", e);
      if (!oe.isNotFound()) {
        throw oe;
      }
    }
  }

  @Override
  public void touch(String key) throws OriginException {
    try {
      // Copying an object onto itself with replaced metadata is S3's way to renew its LastModified.
      s3.copyObject(r -> r.sourceBucket(bucket).sourceKey(prefix + key).destinationBucket(bucket)
          .destinationKey(prefix + key).metadataDirective(MetadataDirective.REPLACE)
          .metadata(Map.of("thaw-touched", Instant.now().toString())));
    } catch (SdkException e) {
      throw translate(urlOf(key), "COPY", e);
    }
  }

  private static OriginException translate(String url, String method, SdkException e) {
    if (e instanceof AwsServiceException se) {
      int status = se.statusCode();
      OriginException base = HttpOrigin.statusError(url, status, method);
      String code = se.awsErrorDetails() == null ? null : se.awsErrorDetails().errorCode();
      return new OriginException(url, status, base.retryable(),
          base.rawMessage() + (code == null ? "" : " [" + code + "]"), null);
    }
    Throwable cause = e.getCause() instanceof IOException io ? io : e;
    return new OriginException(url, OriginException.NO_STATUS, true, method + " " + url + " failed", cause);
  }

  @Override
  public void close() {
    s3.close();
  }

  @Override
  public String toString() {
    return uri;
  }
}
