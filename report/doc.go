// Package report renders a committed dataset version as one
// self-contained HTML page (report/index.html: inline CSS, a little
// inline JavaScript, an inline SVG map and the charts as base64 PNG; it
// opens from disk with no network) and the same charts as PNG files
// drawn with gonum/plot.
//
// The page shows, from the version's manifest.json, its shards and, when
// the version has one, its topics/report.json (package topics):
//
//   - the stage funnel (records in and out of every stage, drops by reason);
//   - a 2-D map of a sample of points coloured by topic (the topic model's
//     first two principal components) and the topics' sizes with labels;
//   - length distributions per role (characters of the system, user and
//     assistant turns of a sample);
//   - quality-score and judge-score distributions, where those columns
//     hold values;
//   - a table of example samples per topic (the representatives closest to
//     each centroid, else samples of smallest id hash), HTML-escaped;
//   - optionally, the topic mix of a second version next to this one's
//     (Compare: the second version's samples assigned with this version's
//     topic model).
//
// A version without topics still gets its funnel, lengths and scores, and
// the page says that topics were not computed.
//
// Shards are streamed one row at a time: lengths and scores are kept for
// a bounded sample of rows (the Options.Rows of smallest hash of id and
// source, so the sample does not depend on shard order), and examples for
// a bounded number per topic. The output is deterministic: the same
// version gives the same bytes (no times, runners or paths are written).
//
// Package report knows nothing of Beam.
package report
