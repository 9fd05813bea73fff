// Load through a fleet of Hives with ioredis's Cluster, for tests/tests/operate/fleet: the
// same contract as tests/py/fleet_load.py (prints "ready", then one JSON line).
const Redis = require("ioredis");

const argv = process.argv.slice(2);
const port = Number(argv[argv.indexOf("--port") + 1]);
const seconds = argv.includes("--seconds") ? Number(argv[argv.indexOf("--seconds") + 1]) : 6;

async function main() {
  const cluster = new Redis.Cluster([{ host: "127.0.0.1", port }], {
    redisOptions: { connectTimeout: 1000, commandTimeout: 2000 },
  });
  await cluster.ping();
  console.log("ready");
  let ok = 0, errors = 0, wrong = 0, okAfter = 0, firstError = null, lastError = null;
  const start = Date.now();
  let i = 0;
  while (Date.now() - start < seconds * 1000) {
    const key = `k${i % 1000}`;
    const val = String(i);
    i += 1;
    try {
      await cluster.set(key, val);
      const got = await cluster.get(key);
      if (got !== val) wrong += 1;
      ok += 1;
      if (firstError !== null) okAfter += 1;
    } catch (e) {
      const now = (Date.now() - start) / 1000;
      errors += 1;
      if (firstError === null) firstError = now;
      lastError = now;
      console.error(`error at ${now}s: ${e.message}`);
    }
  }
  const nodes = cluster.nodes("master").map((n) => `${n.options.host}:${n.options.port}`).sort();
  console.log(JSON.stringify({ ok, errors, wrong, ok_after_error: okAfter, first_error: firstError,
    last_error: lastError, nodes }));
  cluster.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
