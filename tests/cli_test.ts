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

describe("parseArgs: passwd", () => {
  const cases: [string[], ReturnType<typeof parseArgs>][] = [
    [["passwd", "--hash"], { command: "passwd", action: "hash" }],
    [["passwd", "--hash", "pw"], { command: "passwd", action: "hash", password: "pw" }],
    [["passwd", "f", "u"], {
      command: "passwd",
      action: "set",
      file: "f",
      username: "u",
      create: false,
    }],
    [["passwd", "-c", "f", "u", "pw"], {
      command: "passwd",
      action: "set",
      file: "f",
      username: "u",
      password: "pw",
      create: true,
    }],
    [["passwd", "f", "u", "--", "-pw"], {
      command: "passwd",
      action: "set",
      file: "f",
      username: "u",
      password: "-pw",
      create: false,
    }],
    [["passwd", "-D", "f", "u"], { command: "passwd", action: "delete", file: "f", username: "u" }],
    [["passwd", "--help"], { command: "help" }],
  ];
  for (const [argv, want] of cases) {
    test(JSON.stringify(argv), () => assert.deepEqual(parseArgs(argv), want));
  }

  const errors: [string[], RegExp][] = [
    [["passwd"], /needs a password file and a username/],
    [["passwd", "f"], /needs a password file and a username/],
    [["passwd", "-c", "-D", "f", "u"], /cannot be combined/],
    [["passwd", "--hash", "a", "b"], /at most one argument/],
    [["passwd", "-D", "f", "u", "p"], /a file and a username only/],
    [["passwd", "f", "u", "p", "q"], /unexpected argument q/],
    [["passwd", "-x", "f", "u"], /unknown option -x/],
  ];
  for (const [argv, message] of errors) {
    test(`${JSON.stringify(argv)} is an error`, () => {
      const r = parseArgs(argv);
      assert.equal(r.command, "error");
      assert.match((r as { message: string }).message, message);
    });
  }

  test("HELP_TEXT documents passwd", () => {
    for (const s of ["mqttx passwd [-c]", "passwd -D", "passwd --hash"]) {
      assert.ok(HELP_TEXT.includes(s), s);
    }
  });
});
