# Redoubt. `make demo` and `make test` are all a newcomer needs; both install what
# they need first (scripts/deps.sh, idempotent).

GO        ?= go
BIN       := bin/redoubt
PKG       := github.com/redoubt/redoubt
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X $(PKG)/internal/version.version=$(VERSION) -X $(PKG)/internal/version.commit=$(COMMIT)
export CGO_ENABLED := 0

.PHONY: all build deps demo demo-down test check vet fmt unit fuzz bench-smoke bench cross image clean

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

# The disk images to flash and their signed updates (board/image): out/image/
# redoubt-pc-VERSION.img and redoubt-rpi-VERSION.img, and .rdu updates. Pinned
# inputs: the kernels and Pi firmware by go.mod/go.sum, systemd-boot by hash
# (board/image/pins.go), the program by this commit. Two builds of one commit
# give the same bytes. The update signing key is UPDATE_KEY (made on first use;
# keep it offline: whoever holds it can update every box built with it).
IMAGE_VERSION ?= v0.1.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)
IMAGE_COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
UPDATE_KEY    ?= $(HOME)/.config/redoubt/update-signing.key
IMAGE_LDFLAGS := -s -w -X $(PKG)/internal/version.version=$(IMAGE_VERSION) -X $(PKG)/internal/version.commit=$(IMAGE_COMMIT)
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 1767225600)

image: deps
	@mkdir -p out/image
	@test -f $(UPDATE_KEY) || $(GO) run ./cmd/redoubt-image keygen -name redoubt-updates -out $(UPDATE_KEY)
	GOOS=linux GOARCH=amd64 $(GO) build -trimpath -buildvcs=false -ldflags '$(IMAGE_LDFLAGS)' -o out/image/redoubt-amd64 ./cmd/redoubt
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -buildvcs=false -ldflags '$(IMAGE_LDFLAGS)' -o out/image/redoubt-arm64 ./cmd/redoubt
	@for b in pc rpi; do \
	  arch=amd64; kmod=github.com/gokrazy/kernel.amd64; [ $$b = rpi ] && arch=arm64 && kmod=github.com/gokrazy/kernel.rpi; \
	  args="-board $$b -binary out/image/redoubt-$$arch -kernel $$($(GO) list -m -f '{{.Dir}}' $$kmod) -firmware $$($(GO) list -m -f '{{.Dir}}' github.com/gokrazy/firmware) -key $(UPDATE_KEY).pub -version $(IMAGE_VERSION) -commit $(IMAGE_COMMIT)"; \
	  $(GO) run ./cmd/redoubt-image build $$args -out out/image/redoubt-$$b-$(IMAGE_VERSION).img || exit 1; \
	  $(GO) run ./cmd/redoubt-image update $$args -sign $(UPDATE_KEY) -out out/image/redoubt-$$b-$(IMAGE_VERSION).rdu || exit 1; \
	done

clean:
	rm -rf bin out
