import { describe, expect, it } from "vitest";
import { redactUrl, redactUrlsIn } from "./redact-url.js";

describe("redactUrl", () => {
  it("drops userinfo and keeps scheme, host, port and path", () => {
    const shown = redactUrl("http://collector:S3cretPassw0rd@127.0.0.1:9/base/path");
    expect(shown).toBe("http://127.0.0.1:9/base/path");
    expect(redactUrl("https://token@example.com/")).toBe("https://example.com/");
  });

  it("keeps query names and replaces every value (and bare parameters) with REDACTED", () => {
    expect(redactUrl("http://h/?api_key=TOPSECRET&x=1")).toBe("http://h/?api_key=REDACTED&x=REDACTED");
    expect(redactUrl("http://h/v1?TOPSECRET")).toBe("http://h/v1?REDACTED");
    expect(redactUrl(new URL("http://h/p?a=b#frag-secret"))).toBe("http://h/p?a=REDACTED");
  });

  it("never prints a URL it cannot parse", () => {
    expect(redactUrl("not a url with hunter2")).not.toContain("hunter2");
  });

  it("leaves a URL without secrets as it is", () => {
    expect(redactUrl("http://127.0.0.1:4318")).toBe("http://127.0.0.1:4318/");
  });

  it("redacts every URL inside a message it did not write", () => {
    const msg = "Request cannot be constructed from a URL that includes credentials: http://u:hunter2@h:9/?k=TOPSECRET/v1/logs";
    const shown = redactUrlsIn(msg);
    expect(shown).toBe("Request cannot be constructed from a URL that includes credentials: http://h:9/?k=REDACTED");
  });
});
