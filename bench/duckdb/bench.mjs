// DuckDB baseline for sieve's end-to-end benchmark.
//
//   node bench/duckdb/bench.mjs IN.jsonl OUT.parquet [THREADS]
//
// IN may be a pattern with * in its file name (DIR/part-*.jsonl, for the
// scale benchmark's several files); DuckDB then reads the matching files
// as one table.
//
// Reads chat records in the OpenAI messages format from IN (JSONL), drops
// exact duplicates by the same normalised key sieve uses (for each
// message: its role and its content lowercased, whitespace runs collapsed
// to one space and trimmed; the key is the MD5 of the joined list), keeps
// one survivor per key (the smallest `messages` value in DuckDB's order:
// deterministic whatever the scan order, and about twice as fast as
// arg_min by row number, which makes DuckDB carry the lists through a
// streaming window and an arg_min state), and writes OUT as zstd Parquet
// with `messages` typed
// list<struct<role varchar, content varchar>>. DuckDB runs with 2 threads
// unless THREADS says otherwise.
//
// Prints one JSON line:
//   {"bench":"duckdb_dedup_write","samples_in":N,"samples_out":M,
//    "seconds":S,"samples_per_s":N/S,"duckdb":"vX.Y.Z"}
// where seconds covers opening DuckDB and the single read-dedup-write
// statement. samples_in is the number of input lines, counted before the
// clock starts (read_json fails on a malformed line, so every line is a
// record). Peak RSS is measured from outside (bench/e2e).

import { createReadStream, readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";

function sqlString(s) {
  return "'" + s.replaceAll("'", "''") + "'";
}

// expand returns the files that path names: itself, or those matching
// its file name's * wildcards, in name order.
function expand(path) {
  const base = basename(path);
  if (!base.includes("*")) return [path];
  const re = new RegExp("^" + base.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$");
  const dir = dirname(path);
  const files = readdirSync(dir).filter((f) => re.test(f)).sort().map((f) => join(dir, f));
  if (files.length === 0) throw new Error(`no file matches ${path}`);
  return files;
}

async function countLines(path) {
  let n = 0;
  let last = 10;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    let i = -1;
    while ((i = chunk.indexOf(10, i + 1)) !== -1) n++;
    if (chunk.length > 0) last = chunk[chunk.length - 1];
  }
  return last === 10 ? n : n + 1;
}

async function main() {
  const [input, output, threadsArg] = process.argv.slice(2);
  if (!input || !output) {
    console.error("usage: node bench.mjs IN.jsonl OUT.parquet [THREADS]");
    process.exit(2);
  }
  const threads = Number.parseInt(threadsArg ?? "2", 10);
  const files = expand(input);
  let samplesIn = 0;
  for (const f of files) samplesIn += await countLines(f);

  const start = process.hrtime.bigint();
  const instance = await DuckDBInstance.create(":memory:", { threads: String(threads) });
  const conn = await instance.connect();
  const reader = await conn.runAndReadAll(`
    COPY (
      SELECT min(messages) AS messages
      FROM (
        SELECT messages,
               md5_number(array_to_string(
                 list_transform(messages, m -> m.role || chr(1) ||
                   trim(regexp_replace(lower(m.content), '[[:space:]]+', ' ', 'g'))),
                 chr(0))) AS k
        FROM read_json([${files.map(sqlString).join(", ")}],
                       format = 'newline_delimited',
                       columns = {messages: 'STRUCT(role VARCHAR, content VARCHAR)[]'})
      )
      GROUP BY k
    ) TO ${sqlString(output)} (FORMAT parquet, COMPRESSION zstd)
  `);
  const samplesOut = Number(reader.getRows()[0][0]);
  const version = (await conn.runAndReadAll("SELECT version()")).getRows()[0][0];
  conn.closeSync();
  instance.closeSync();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;

  console.log(
    JSON.stringify({
      bench: "duckdb_dedup_write",
      samples_in: samplesIn,
      samples_out: samplesOut,
      seconds: Number(seconds.toFixed(3)),
      samples_per_s: Math.round(samplesIn / seconds),
      duckdb: version,
    }),
  );
}

main().catch((err) => {
  console.log(JSON.stringify({ bench: "duckdb_dedup_write", error: String(err?.message ?? err) }));
  process.exit(1);
});
