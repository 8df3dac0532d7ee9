// Runs SQL statements with DuckDB and prints each result as one JSON line
// (an array of row objects). Used by sieve's tests as an independent
// reader of the shards the dataset card points at.
//
//   node bench/duckdb/query.mjs "SELECT count(*) AS n FROM 'x/data/train-*.parquet'" ...
import { DuckDBInstance } from "@duckdb/node-api";

const instance = await DuckDBInstance.create(":memory:");
const conn = await instance.connect();
for (const sql of process.argv.slice(2)) {
  const reader = await conn.runAndReadAll(sql);
  const rows = reader.getRowObjectsJson();
  process.stdout.write(JSON.stringify(rows) + "\n");
}
