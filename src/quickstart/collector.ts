import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One log record as the tutorial's stand-in collector received it. */
export interface ReceivedRecord {
  seq: number;
  eventName: string;
  priority: number;
  /** Which request brought it (1-based), to show the drain order. */
  request: number;
}

export interface StandInCollector {
  url: string;
  records: ReceivedRecord[];
  close(): Promise<void>;
}

/**
 * A stand-in OpenTelemetry collector for the tutorial, on loopback: it accepts
 * OTLP/HTTP JSON logs at `POST /v1/logs` (200 with an empty
 * ExportLogsServiceResponse) and remembers what arrived. It is not a
 * collector — no pipeline, no exporter — only a witness of what the node sent;
 * point `autonomy telemetry drain --otlp-url` at a real one in production.
 */
export async function startStandInCollector(): Promise<StandInCollector> {
  const records: ReceivedRecord[] = [];
  let requests = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/logs") {
        res.writeHead(404).end();
        return;
      }
      try {
        const doc = JSON.parse(Buffer.concat(chunks).toString("utf8")) as OtlpLogsJson;
        requests += 1;
        for (const rl of doc.resourceLogs ?? []) for (const sl of rl.scopeLogs ?? []) for (const lr of sl.logRecords ?? []) records.push(toReceived(lr, requests));
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    records,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface OtlpAttr {
  key: string;
  value: { stringValue?: string; intValue?: string };
}
interface OtlpLogsJson {
  resourceLogs?: { scopeLogs?: { logRecords?: { attributes?: OtlpAttr[] }[] }[] }[];
}

function toReceived(lr: { attributes?: OtlpAttr[] }, request: number): ReceivedRecord {
  const attr = (k: string): OtlpAttr["value"] | undefined => lr.attributes?.find((a) => a.key === k)?.value;
  return {
    seq: Number(attr("autonomy.seq")?.intValue ?? NaN),
    eventName: attr("event.name")?.stringValue ?? "",
    priority: Number(attr("autonomy.priority")?.intValue ?? NaN),
    request,
  };
}
