import { test } from "node:test";
import assert from "node:assert/strict";
import { ONLINE_PREFIX, RouteTable } from "./route_table.ts";

const online = (t: RouteTable, topic: string) =>
  t.shares(topic).filter((r) => t.online(r)).map((r) => r.node).sort();

test("a share route is online while its online key is present, in either order", () => {
  const t = new RouteTable();
  t.set("b", ONLINE_PREFIX + "$share/g/x/+", true); // (a resync may read it first)
  t.set("b", "$share/g/x/+", true);
  t.set("c", "$share/g/x/+", true);
  assert.deepEqual(t.shares("x/1").map((r) => r.node).sort(), ["b", "c"]);
  assert.deepEqual(online(t, "x/1"), ["b"]);
  assert.deepEqual(t.nodes("x/1"), [], "the online key is no plain filter");
  t.set("b", ONLINE_PREFIX + "$share/g/x/+", false);
  assert.deepEqual(online(t, "x/1"), []);
});

test("a node that goes takes its online keys with it", () => {
  const t = new RouteTable();
  t.set("b", "$share/g/x", true);
  t.set("b", ONLINE_PREFIX + "$share/g/x", true);
  t.drop("b");
  t.set("b", "$share/g/x", true); // back, its member offline
  assert.deepEqual(online(t, "x"), []);
  t.replace(new Map([["b", ["$share/g/x", ONLINE_PREFIX + "$share/g/x"]]]));
  assert.deepEqual(online(t, "x"), ["b"]);
  t.replace(new Map([["b", ["$share/g/x"]]]));
  assert.deepEqual(online(t, "x"), []);
});
