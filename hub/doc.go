// Package hub reads dataset files from the Hugging Face Hub over its HTTP
// API, in plain Go (no Beam), for sieve's Hub sources.
//
// A source is named by a URL:
//
//	hf://datasets/OWNER/NAME[@REVISION]/PATH-GLOB
//	hf://datasets/OWNER/NAME            (with a config and split given separately)
//
// ParseURL turns the first form into a Ref; Client.Resolve lists the files
// that match the glob at the revision and pins the revision to the commit
// sha it read, so a manifest can record exactly what was read. For the
// second form, Client.ParquetFiles lists the dataset viewer's Parquet
// conversion of a config and split (the refs/convert/parquet branch), again
// pinned to a commit. Client.Fetch downloads one file into a local,
// content-addressed cache and returns its path.
//
// Endpoints used (all relative to Options.Endpoint, by default $HF_ENDPOINT
// or https://huggingface.co):
//
//	GET /api/datasets/{repo}/revision/{rev}                 commit sha of a branch, tag or sha
//	GET /api/datasets/{repo}/tree/{sha}/{dir}?recursive=true file list (path, size, oid, lfs.oid), paginated by Link headers
//	GET /api/datasets/{repo}/parquet/{config}/{split}       Parquet shard URLs of a config/split
//	GET /datasets/{repo}/resolve/{sha}/{path}               file bytes; LFS files redirect (302/307) to a CDN
//
// The token (Options.Token, by default $HF_TOKEN) is sent as a Bearer token
// to the endpoint's host only, never to the hosts it redirects to, and never
// appears in errors, logs, cache file names or returned values. A gated or
// private dataset without a token, or with a token that is refused, gives an
// error that wraps ErrAuth and says to set HF_TOKEN and accept the dataset's
// terms; a missing dataset, revision or file wraps ErrNotFound; a glob that
// matches nothing wraps ErrNoMatch; a download whose bytes do not hash to
// the listed sha256 (or git blob id) wraps ErrChecksum.
//
// The cache (Options.CacheDir, by default $HF_HOME/sieve, else
// ~/.cache/sieve/hub) keys each file by its LFS sha256, else its git blob
// id, else the ETag the Hub sends, so a file already fetched is returned
// without any request, and the same content is stored once. Downloads go to
// a partial file first and resume from it with a Range request after a
// dropped connection (or a previous run's crash); 429, 5xx and connection
// errors are retried with jittered exponential backoff, honouring
// Retry-After. Concurrent fetches of one file, in one process or several,
// download it once.
//
// Package hubtest serves the same API on loopback for tests.
package hub
