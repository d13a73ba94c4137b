import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { HELP_TEXT, parseArgs, VERSION } from "../src/cli.ts";

describe("parseArgs", () => {
  const cases: [string[], ReturnType<typeof parseArgs>][] = [
    [[], { command: "run" }],
    [["--config", "a.yml"], { command: "run", configPath: "a.yml" }],
    [["-c", "a.yml"], { command: "run", configPath: "a.yml" }],
    [["--config=dir/a b.yml"], { command: "run", configPath: "dir/a b.yml" }],
    [["--help"], { command: "help" }],
    [["-h"], { command: "help" }],
    [["-c", "a.yml", "--help"], { command: "help" }],
    [["--version"], { command: "version" }],
    [["-V"], { command: "version" }],
  ];
  for (const [argv, want] of cases) {
    test(JSON.stringify(argv), () => assert.deepEqual(parseArgs(argv), want));
  }

  const errors: [string[], RegExp][] = [
    [["--config"], /--config needs a file path/],
    [["-c"], /-c needs a file path/],
    [["--config="], /--config needs a file path/],
    [["--bogus"], /unknown option --bogus/],
    [["-x"], /unknown option -x/],
    [["run"], /unexpected argument run/],
    [["-c", "a.yml", "--config", "b.yml"], /more than once/],
    [["--bogus", "--help"], /unknown option --bogus/],
  ];
  for (const [argv, message] of errors) {
    test(`${JSON.stringify(argv)} is an error`, () => {
      const r = parseArgs(argv);
      assert.equal(r.command, "error");
      assert.match((r as { message: string }).message, message);
    });
  }
});

describe("help and version", () => {
  test("VERSION matches package.json", () => {
    const pkg = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    assert.equal(VERSION, pkg.version);
  });

  test("HELP_TEXT shows usage, every option and where the docs are", () => {
    for (const s of ["Usage:", "--config", "-c", "--help", "-h", "--version", "-V"]) {
      assert.ok(HELP_TEXT.includes(s), s);
    }
    assert.match(HELP_TEXT, /config\.example\.yml/);
    assert.match(HELP_TEXT, /README\.md/);
    assert.ok(HELP_TEXT.includes(VERSION));
  });
});
