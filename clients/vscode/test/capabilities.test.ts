import { test } from "node:test";
import * as assert from "node:assert/strict";
import { experimentalCapabilities, protocolMismatch } from "../src/model/capabilities";
import { PROTOCOL_VERSION } from "../src/model/protocol";

test("the extension declines maestro/testResults: the explorer's notifications carry each result", () => {
  assert.deepEqual(experimentalCapabilities(true), { maestroTestExplorer: true, maestroTestResults: false });
  assert.deepEqual(experimentalCapabilities(false), { maestroTestExplorer: false, maestroTestResults: false });
});

test("a server of the same protocol version says nothing", () => {
  assert.equal(protocolMismatch({ maestroProtocol: PROTOCOL_VERSION }), undefined);
});

test("a server of another protocol version, or one that names none, is told to the user", () => {
  const newer = protocolMismatch({ maestroProtocol: PROTOCOL_VERSION + 1 });
  assert.match(newer ?? "", new RegExp(`protocol version ${PROTOCOL_VERSION + 1} and this extension version ${PROTOCOL_VERSION}`));
  assert.match(protocolMismatch(undefined) ?? "", /an older version/);
  assert.match(protocolMismatch({}) ?? "", /an older version/);
});
