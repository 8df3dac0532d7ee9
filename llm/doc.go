// Package llm is sieve's client for chat-completion APIs: OpenAI, Azure
// OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp,
// TGI, …). It is plain Go, built on github.com/sashabaranov/go-openai,
// and knows nothing of Beam; synthetic-generation stages and LLM judges
// share it.
//
// An Endpoint, usually read from a recipe, names a server and a model and
// the environment variable that holds the API key (the key itself is read
// once, by New, and never stored in an Endpoint, a log line, an error, a
// cache file or a manifest). A Client sends one Request at a time through
// Chat and adds what a long unattended job needs and go-openai lacks:
//
//   - an HTTP timeout per attempt (go-openai's default client has none);
//   - a concurrency limit (a semaphore of max_concurrency slots);
//   - request and token rate limits per minute, paced smoothly (tokens are
//     estimated before a call as about four characters a token plus the
//     completion allowance, and reconciled with the usage the server
//     reports);
//   - retries with jittered exponential backoff that honour Retry-After
//     (seconds or an HTTP date) and retry-after-ms, for 408, 409, 429, 5xx,
//     timeouts, connection resets and malformed responses; 400, 401, 403,
//     404 and other client errors fail at once with one message naming the
//     endpoint, the status and what to check (see Error);
//   - a token and cost budget: each call reserves its estimate (prompt
//     plus max_tokens) and settles to the usage the server reports; a call
//     waits while the reservations in flight would pass the budget and is
//     refused only once what was spent reaches it, so a run spends close to
//     its budget; refusals return an error that matches ErrBudgetExhausted
//     and reports spent and reserved apart, so a stage stops cleanly;
//   - usage accounting (calls, cached calls, requests, retries, tokens,
//     cost) for the manifest, see Client.Usage;
//   - a content-addressed response cache on disk: the SHA-256 of the
//     canonical JSON of base URL, model, messages and every parameter
//     addresses a file, so a rerun, or a killed run restarted, replays
//     answered calls without an HTTP request and without paying twice.
//
// Temperature 0 reaches the server: go-openai's request struct drops a
// zero temperature (omitempty), so the client's HTTP layer rewrites the
// JSON body of every chat request to carry exactly the sampling
// parameters the Request set (see wire.go).
//
// A stage using a client handles three outcomes of Chat: errors.Is(err,
// ErrBudgetExhausted) means stop cleanly (cached answers are still
// served); an *Error whose Fatal() is true (bad key, unknown model, no
// quota, TLS or DNS trouble) means every further call fails alike, so
// stop with its message; any other error concerns this request only
// (retries ran out, or the server rejected it with a 400), so record the
// sample as failed and go on. Shared gives one client per endpoint per
// process, so many DoFn instances share its limits and budget; Usage
// totals go into the manifest.
//
// Package llm/llmtest is an OpenAI-compatible test server that speaks the
// same protocol over real HTTP, with scripted faults.
package llm
