// node-redis 5's client-side cache (RESP3, CLIENT TRACKING) through Hive, for
// tests/tests/proxy/tracking/library.rs: `--port` is Hive, `--node` the node that owns the key.
// A value read twice is served from the cache the second time; after a write through Hive,
// then one made on the node directly, the cache serves the new value within 2 s (the
// invalidation reaches the client after the writer's reply). Prints one JSON line.
const { createClient } = require("redis");

const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
const [host, port] = ["127.0.0.1", Number(arg("--port"))];
const [nodeHost, nodePort] = arg("--node").split(":");
const key = arg("--key");

async function freshWithin(c, want) {
  const start = Date.now();
  while (Date.now() - start < 2000) {
    if ((await c.get(key)) === want) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 5));
  }
  return -1;
}

(async () => {
  const c = createClient({ socket: { host, port }, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 0 } });
  const w = createClient({ socket: { host, port } });
  const n = createClient({ socket: { host: nodeHost, port: Number(nodePort) } });
  for (const x of [c, w, n]) {
    x.on("error", (e) => console.error(e));
    await x.connect();
  }
  await w.set(key, "1");
  const first = [await c.get(key), await c.get(key)];
  const afterReads = c.clientSideCache.stats();
  await w.set(key, "2");
  const throughHive = await freshWithin(c, "2");
  await n.set(key, "3");
  const onNode = await freshWithin(c, "3");
  console.log(JSON.stringify({ first, hits_after_two_reads: afterReads.hitCount,
    misses_after_two_reads: afterReads.missCount, fresh_ms_after_hive_write: throughHive,
    fresh_ms_after_node_write: onNode, stats: c.clientSideCache.stats() }));
  for (const x of [c, w, n]) await x.quit();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
