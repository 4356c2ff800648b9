# The single makefile of the stack. Every target calls stack; stack does the work.
#
#   make up      build and verify everything, bring the development environment up
#   make down    take the development environment down
#   make test    run every test (installs the Debian packages the tests use)
#   make repro   rebuild every image twice in isolation and compare (REPRO="NAME..." for some)

GO      ?= go
STACK   := bin/stack
GOFILES := $(shell git ls-files '*.go' 2>/dev/null)

.PHONY: all up down test repro deps stack vet fmt-check tidy-check

all: stack

# stack is built from this checkout, statically, the way images build it, but
# stamped with the commit it was built from (stack version), whatever GOFLAGS say.
stack: $(STACK)
$(STACK): $(GOFILES) go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -o $(STACK) ./cmd/stack

deps:
	@scripts/deps

# stack doctor checks the machine first (seconds): a failed check stops here,
# a warning does not. stack up fetches what it needs and verifies every source
# before it uses it.
up: deps stack
	$(STACK) doctor
	$(STACK) up

# down uses the stack binary already built when there is one: a checkout
# that does not compile must still be able to take its cluster down.
down:
	@test -x $(STACK) || $(MAKE) stack
	$(STACK) down

REPRO ?= $(sort $(notdir $(patsubst %/image.yaml,%,$(wildcard images/*/image.yaml))))
repro: stack
	$(STACK) repro $(REPRO)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change: $$out" >&2; exit 1; fi

# go.mod names exactly what the code imports (go mod tidy changes nothing).
tidy-check:
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run go mod tidy" >&2; exit 1; }

# The first run builds etcd and kube-apiserver for the tests (minutes on
# two cores), so the per-binary timeout is well past go test's default.
test: deps fmt-check vet tidy-check
	$(GO) test -timeout 40m ./...
