// What the extension tells the server it wants, and what it makes of the server's protocol
// version. Pure: unit-tested without VS Code.

import { PROTOCOL_VERSION } from "./protocol";

/**
 * The extension's `capabilities.experimental`. The test-explorer notifications feed the Testing
 * view, each test's result once; `maestro/testResults` would bring the same results again, so
 * they are declined.
 */
export function experimentalCapabilities(testExplorer: boolean): Record<string, unknown> {
  return { maestroTestExplorer: testExplorer, maestroTestResults: false };
}

/**
 * What to tell the user when the server speaks another version of the protocol than the one this
 * extension was generated for (`capabilities.experimental.maestroProtocol`); undefined when they
 * agree.
 */
export function protocolMismatch(experimental: unknown): string | undefined {
  const advertised =
    experimental && typeof experimental === "object"
      ? (experimental as Record<string, unknown>).maestroProtocol
      : undefined;
  if (advertised === PROTOCOL_VERSION) return undefined;
  const theirs = typeof advertised === "number" ? `version ${advertised}` : "an older version";
  return (
    `the language server speaks the Maestro protocol ${theirs} and this extension version ` +
    `${PROTOCOL_VERSION}: some results or run summaries may not show; update the older of the two`
  );
}
