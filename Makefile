# Redoubt. `make demo` and `make test` are all a newcomer needs; both install what
# they need first (scripts/deps.sh, idempotent).

GO        ?= go
BIN       := bin/redoubt
PKG       := github.com/redoubt/redoubt
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X $(PKG)/internal/version.version=$(VERSION) -X $(PKG)/internal/version.commit=$(COMMIT)
export CGO_ENABLED := 0

.PHONY: all build deps demo demo-down test check vet fmt unit fuzz bench-smoke bench cross clean

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/redoubt

# The box in the lab, shown working, left running.
demo: deps build
	@scripts/as-root.sh $(BIN) lab demo

demo-down:
	@scripts/as-root.sh $(BIN) lab down

# Every test: static checks, unit and lab tests (the lab needs root; without it
# those tests skip and say why), bounded fuzzing, each benchmark once.
test: deps build check
	@scripts/test.sh

check: vet fmt

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# The comparisons that matter (the netstack against the kernel, …), recorded in
# bench/RESULTS.md.
bench: deps build
	@scripts/as-root.sh bench/run.sh

cross:
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/redoubt-linux-arm64 ./cmd/redoubt
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/redoubt-linux-armv7 ./cmd/redoubt
	@file bin/redoubt-linux-arm64 bin/redoubt-linux-armv7 2>/dev/null || ls -l bin/

clean:
	rm -rf bin out
