import { describe, expect, it } from "vitest";
import { hostAllowed } from "./host-guard.js";
import { isLoopbackHost } from "./listen.js";

const v4 = { address: "127.0.0.1", family: "IPv4", port: 7777 };
const any = { address: "0.0.0.0", family: "IPv4", port: 8443 };
const plain = { serverNames: [], secure: false };
const tls = { serverNames: ["edge-0042.example", "*.fleet.example", "10.0.0.5"], secure: true };

describe("hostAllowed (the DNS-rebinding guard)", () => {
  it.each(["127.0.0.1:7777", "localhost:7777", "LOCALHOST:7777", "[::1]:7777", "127.0.0.2:7777", "localhost.:7777"])("accepts the loopback host %s with the listening port", (host) => {
    expect(hostAllowed(host, v4, plain)).toBe(true);
  });

  it.each([
    ["a rebinding name", "evil.example:7777"],
    ["a rebinding name without a port", "evil.example"],
    ["a name that contains a loopback address", "127.0.0.1.nip.io:7777"],
    ["another port", "127.0.0.1:7778"],
    ["no port (80 is not the listening port)", "localhost"],
    ["an empty Host", ""],
    ["no Host", undefined],
    ["userinfo", "user@127.0.0.1:7777"],
    ["another address", "10.0.0.5:7777"],
  ])("refuses %s", (_what, host) => {
    expect(hostAllowed(host, v4, plain)).toBe(false);
  });

  it("accepts the certificate's names (wildcards one label deep) and loopback, with the port, on a TLS listener", () => {
    for (const host of ["edge-0042.example:8443", "node-3.fleet.example:8443", "10.0.0.5:8443", "localhost:8443"]) expect(hostAllowed(host, any, tls), host).toBe(true);
    for (const host of ["a.b.fleet.example:8443", "fleet.example:8443", "edge-0042.example.evil:8443", "edge-0042.example:443", "0.0.0.1:8443"]) expect(hostAllowed(host, any, tls), host).toBe(false);
    expect(hostAllowed("edge-0042.example", { ...any, port: 443 }, tls)).toBe(true);
  });

  it("does not check a unix socket (no browser reaches one)", () => {
    expect(hostAllowed("anything", "/run/autonomy/tools.sock", plain)).toBe(true);
  });
});

describe("isLoopbackHost", () => {
  it.each([["localhost", true], ["127.0.0.1", true], ["127.255.0.9", true], ["::1", true], ["[::1]", true], ["0:0:0:0:0:0:0:1", true], ["::ffff:127.0.0.1", true], ["0.0.0.0", false], ["::", false], ["10.0.0.1", false], ["::ffff:10.0.0.1", false], ["localhost.evil", false], ["evil.example", false]] as const)("%s → %s", (h, loopback) => {
    expect(isLoopbackHost(h)).toBe(loopback);
  });
});
