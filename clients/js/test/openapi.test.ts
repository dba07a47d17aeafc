/**
 * The client's types are generated from openapi.json (which stayflow writes, and a pytest
 * test keeps current): regenerating them must give the committed file, byte for byte.
 */
import { readFileSync } from "node:fs";

import openapiTS, { astToString } from "openapi-typescript";
import { expect, it } from "vitest";

const root = process.cwd(); // vitest runs in the package's folder

it("src/openapi.d.ts is generated from openapi.json (npm run types:generate)", async () => {
  const document = JSON.parse(readFileSync(`${root}/openapi.json`, "utf-8"));
  const ast = await openapiTS(document);
  const fresh = astToString(ast);
  const committed = readFileSync(`${root}/src/openapi.d.ts`, "utf-8");
  // The CLI adds a header comment; the types below it must be the same.
  expect(committed.endsWith(fresh)).toBe(true);
});
