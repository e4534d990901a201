# The two entry points of the README, and the pieces they are made of.
#   make demo   build what is needed, bring up the testbed, load the agent image, run netcheck against it
#   make test   the whole test suite against the testbed (CI calls this)
#   make down   stop the testbed

SHELL := /bin/bash
TESTBED_STATE ?= /var/lib/netcheck-testbed
KUBECONFIG_TB := $(TESTBED_STATE)/kubeconfig
AGENT_IMAGE_TAR := target/netcheck-agent.tar
NETCHECK := target/release/netcheck
CARGO_DENY_VERSION := 0.20.2
PREFIX ?= $(HOME)/.local

.PHONY: demo test down testbed image agent-image-tar netcheck lint deny unit smoke cluster-test examples bench soak full-scenario upgrade-test install

demo: testbed image netcheck
	$(NETCHECK) run --kubeconfig $(KUBECONFIG_TB)
	@echo "The testbed stays up: KUBECONFIG=$(KUBECONFIG_TB) kubectl get nodes; 'make down' stops it."

testbed:
	testbed/up

image: testbed agent-image-tar
	testbed/load-image $(AGENT_IMAGE_TAR)

netcheck:
	cargo build --release --locked -p netcheck-cli

# netcheck and the kubectl plugin (kubectl-netcheck, a link to it) into $(PREFIX)/bin, which must be on the PATH.
install: netcheck
	install -D -m 755 $(NETCHECK) $(PREFIX)/bin/netcheck
	ln -sf netcheck $(PREFIX)/bin/kubectl-netcheck
	@echo "installed $(PREFIX)/bin/netcheck and $(PREFIX)/bin/kubectl-netcheck: try 'kubectl netcheck version'"

lint: deny
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --workspace --exclude netcheck-cli
	shellcheck testbed/build testbed/up testbed/down testbed/status testbed/load-image testbed/node-exec testbed/node-ctr testbed/loadbalancer \
	  testbed/stop testbed/start testbed/smoke-test testbed/upgrade testbed/upgrade-test testbed/proxy-mode \
	  testbed/lib/*.sh image/build-oci image/rust-target .ci/run scripts/*.sh

# Licenses, banned crates and sources (deny.toml); cargo-deny is installed at the pinned version when missing.
# Advisories need the RustSec database from GitHub, which CI machines cannot reach: not checked here.
deny:
	cargo deny --version 2>/dev/null | grep -qx 'cargo-deny $(CARGO_DENY_VERSION)' || \
	  cargo install --locked cargo-deny --version $(CARGO_DENY_VERSION)
	# cargo-deny reads the metadata of every platform's dependencies (windows-sys too): fetch them first,
	# or a machine whose registry holds only what a Linux build needs fails offline.
	cargo fetch --locked
	cargo deny --offline check --hide-inclusion-graph licenses bans sources

unit:
	cargo test --locked --workspace --lib --bins
	cargo test --locked --workspace --doc

# Cluster tests share the testbed and inject faults into it: one test thread.
cluster-test: image
	KUBECONFIG=$(KUBECONFIG_TB) NETCHECK_REQUIRE_CLUSTER=1 NETCHECK_BIN=$(CURDIR)/$(NETCHECK) \
	  KUBECTL=$(TESTBED_STATE)/bin/kubectl cargo test --locked --workspace --test '*' -- --test-threads=1

# The library's examples, run for real: one needs no cluster; one runs checks, one watches a CoreDNS restart.
examples: image
	cargo run --locked -q -p netcheck --example list_checks >/dev/null
	KUBECONFIG=$(KUBECONFIG_TB) cargo run --locked -q -p netcheck --example check_service_dns
	KUBECONFIG=$(KUBECONFIG_TB) cargo run --locked -q -p netcheck --example watch_a_restart

smoke: testbed
	testbed/smoke-test

test: lint unit netcheck smoke cluster-test examples

# The full scenario on whatever proxy mode the testbed runs (CI runs it after testbed/proxy-mode nftables).
full-scenario: image netcheck
	$(NETCHECK) run --scenario full --kubeconfig $(KUBECONFIG_TB)

# A rolling upgrade from the previous minor version, with the testbed's smoke test before and after,
# under `netcheck watch` (the disruption per node × path against the default budget).
upgrade-test: agent-image-tar netcheck
	UPGRADE_SETUP="testbed/load-image $(AGENT_IMAGE_TAR)" \
	UPGRADE_UNDER="$(NETCHECK) watch --kubeconfig $(KUBECONFIG_TB) --junit target/watch-upgrade.xml --" \
	  testbed/upgrade-test

agent-image-tar:
	image/build-oci $(AGENT_IMAGE_TAR)

bench: image netcheck
	scripts/bench.sh

# N healthy runs of a scenario back to back: failures and leftover namespaces (RUNS=50 SCENARIO=quick).
RUNS ?= 50
SCENARIO ?= quick
soak: image netcheck
	scripts/soak.sh $(RUNS) $(SCENARIO)

down:
	testbed/down
