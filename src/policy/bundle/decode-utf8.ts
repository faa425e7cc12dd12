const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** `b` as strict UTF-8 text (a BOM is kept as a character), or undefined when it is not valid UTF-8. */
export function decodeUtf8(b: Uint8Array): string | undefined {
  try {
    return UTF8.decode(b);
  } catch {
    return undefined;
  }
}
