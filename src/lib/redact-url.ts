/**
 * A configured URL as it may appear in a message, a status document or a log line.
 * Operators put credentials in URLs (`http://user:pass@collector`, `?api_key=…`), and
 * those messages reach unauthenticated endpoints (GET /v1/status) and stderr. Keeps
 * what identifies the endpoint (scheme, host, port, path) and the query's parameter
 * names; drops userinfo and the fragment, and replaces every query value with
 * `REDACTED` (a parameter without `=` could itself be a token, so it becomes `REDACTED`).
 */
export function redactUrl(raw: string | URL): string {
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    return "(an unparsable URL)"; // printing the text could print its secret
  }
  url.username = "";
  url.password = "";
  url.hash = "";
  if (url.search !== "") {
    url.search = url.search
      .slice(1)
      .split("&")
      .map((part) => {
        const eq = part.indexOf("=");
        return eq < 0 ? "REDACTED" : `${part.slice(0, eq)}=REDACTED`;
      })
      .join("&");
  }
  return url.href;
}

/**
 * `text` with every http(s) URL in it passed through {@link redactUrl}: for messages we
 * did not write (Node's fetch puts the whole URL, credentials included, in its errors).
 */
export function redactUrlsIn(text: string): string {
  return text.replace(/\bhttps?:\/\/[^\s"'<>]+/gi, (m) => redactUrl(m));
}
