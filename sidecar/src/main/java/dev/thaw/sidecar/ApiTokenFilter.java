package dev.thaw.sidecar;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpHeaders;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.annotation.RequestFilter;
import io.micronaut.http.annotation.ServerFilter;
import java.util.Map;
import java.util.Set;
import java.util.logging.Logger;

/**
 * Every call of the control API carries {@code Authorization: Bearer TOKEN} ({@link ApiToken}), except health,
 * readiness and metrics (probes and scrapers hold no token, and they answer no more than a status) and the status
 * page's HTML, which holds no data: it draws from {@code /v1/...}, sending the token the page was opened with.
 */
@ServerFilter(ServerFilter.MATCH_ALL_PATTERN)
final class ApiTokenFilter {
  private static final Logger LOG = Logger.getLogger(ApiTokenFilter.class.getName());
  static final Set<String> OPEN = Set.of("/healthz", "/readyz", "/metrics", "/");
  private static final String BEARER = "Bearer ";

  private final ApiToken token;

  ApiTokenFilter(ApiToken token) {
    this.token = token;
  }

  @RequestFilter
  @Nullable
  HttpResponse<?> requireToken(HttpRequest<?> request) {
    if (OPEN.contains(request.getPath())) {
      return null;
    }
    String auth = request.getHeaders().get(HttpHeaders.AUTHORIZATION);
    if (auth != null && auth.regionMatches(true, 0, BEARER, 0, BEARER.length())
        && token.matches(auth.substring(BEARER.length()).strip())) {
      return null;
    }
    LOG.warning(() -> "event=api_refused reason=" + (auth == null ? "no_token" : "wrong_token") + " method="
        + request.getMethodName() + " path=" + request.getPath() + " from=" + request.getRemoteAddress());
    String where = token.file() == null ? "the token the sidecar was given (THAW_API_TOKEN)"
        : "the token in " + token.file();
    return HttpResponse.unauthorized().header(HttpHeaders.WWW_AUTHENTICATE, "Bearer realm=\"thaw\"")
        .body(Map.of("error", (auth == null ? "no token: " : "wrong token: ") + "send Authorization: Bearer with "
            + where));
  }
}
