import type { FastifyBaseLogger } from "fastify";
import type { Bindings, ChildLoggerOptions } from "fastify/types/logger.js";
import type { LogFn } from "pino";

type Method = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/**
 * A request's logger (`req.log`) whose pino child is made on its first use.
 * Fastify makes a child (bound to the request id) for EVERY request, and with
 * the project's redaction paths pino runs the redactor over the bindings when
 * it makes one: ~3.5 µs, ~9 % of a `GET /v1/releases/latest` → 304 that never
 * logs (bench:poll, docs/benchmarks.md). Lines that are written carry the
 * same bindings and redaction as before.
 */
export class LazyRequestLogger implements FastifyBaseLogger {
  #real: FastifyBaseLogger | undefined;

  constructor(private readonly parent: FastifyBaseLogger, private readonly bindings: Bindings, private readonly opts: ChildLoggerOptions) {}

  /** The pino child (made once). */
  get real(): FastifyBaseLogger {
    this.#real ??= this.parent.child(this.bindings, this.opts);
    return this.#real;
  }

  get level(): string {
    return this.#real?.level ?? this.opts.level ?? this.parent.level;
  }

  set level(v: string) {
    this.real.level = v;
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real.child(bindings, options);
  }

  readonly fatal = this.method("fatal");
  readonly error = this.method("error");
  readonly warn = this.method("warn");
  readonly info = this.method("info");
  readonly debug = this.method("debug");
  readonly trace = this.method("trace");
  readonly silent = this.method("silent");

  private method(name: Method): LogFn {
    return (...args: Parameters<LogFn>) => this.real[name](...args);
  }
}

/** Fastify's `childLoggerFactory` making {@link LazyRequestLogger}s. */
export function lazyChildLoggerFactory(logger: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyRequestLogger(logger, bindings, opts);
}
