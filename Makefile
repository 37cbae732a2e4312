# realtime-voice: `make demo` and `make test` set up a fresh machine by themselves (make setup).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PORT ?= 8080
TEST_PORT ?= 18080
export PATH := $(HOME)/.cargo/bin:$(CURDIR)/node_modules/.bin:$(PATH)
# Drivers are passed per target, never exported: the test runner takes the first driver variable
# it finds, whatever browser was asked for (TOOLCHAIN.md).
CHROMEDRIVER ?= /usr/bin/chromedriver
GECKODRIVER ?= $(HOME)/.cargo/bin/geckodriver
WEBKITDRIVER ?= /usr/bin/WebKitWebDriver
NO_DRIVERS := env -u CHROMEDRIVER -u GECKODRIVER -u SAFARIDRIVER
export WASM_BINDGEN_TEST_TIMEOUT ?= 180
SERVER_BIN := target/debug/realtime-voice-server
WITH_SERVER := TEST_PORT=$(TEST_PORT) scripts/with-server.sh
XVFB := xvfb-run -a -s "-screen 0 1280x1024x24"
# The browser tests (tests/web, `run_in_browser`) by the pinned wasm-bindgen's test runner, in the
# engine whose driver variable precedes it (what `wasm-pack test --headless` does, without
# wasm-pack and its build of every test target).
WASM_TEST := CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --target wasm32-unknown-unknown --test web

.PHONY: help setup demo test lint fmt-check clippy size-patch-check test-native pkg server webdriver size-echo-guard \
        test-browser test-chrome test-firefox test-webkit test-package test-e2e size size-check \
        latency-report pkg-debug fault-proxy test-faults server-load-two soak-report

help:
	@echo "make demo   build the package and serve the demo with the reference backend (PORT=$(PORT))"
	@echo "make test   every test layer: lint, native, browser (Chromium, Firefox, WebKit), E2E, size, a short echo-lab run"

setup:
	@bash scripts/setup.sh

# ---- build -------------------------------------------------------------------------------
pkg: setup
	@bash scripts/build-pkg.sh pkg web

# The debug flavour: the same package with panics printed to the console (docs/TROUBLESHOOTING.md).
pkg-debug: setup
	@FEATURES=debug-panics bash scripts/build-pkg.sh pkg-debug web

server: setup
	cargo build -q -p realtime-voice-server

# The network fault lab's loopback proxy (fault-proxy/README.md), used by the E2E fault scenarios.
fault-proxy: setup
	cargo build -q -p fault-proxy

webdriver.json: tests/webdriver.template.json
	sed "s|@ROOT@|$(CURDIR)|g" $< > $@

demo: pkg server
	@echo
	@echo "  realtime-voice demo: open http://127.0.0.1:$(PORT)/"
	@echo
	PORT=$(PORT) STATIC_ROOT=$(CURDIR) $(SERVER_BIN) --dev

# ---- tests -------------------------------------------------------------------------------
test: setup lint test-native pkg size-check test-browser test-package test-e2e test-echo-short
	@echo "make test: all layers passed"

lint: setup fmt-check clippy size-patch-check

# The build without the echo guard (size-echo-guard) is a patch on the sources: it must still
# apply, or the report breaks unnoticed when the guard's code moves.
size-patch-check:
	git apply --check scripts/size/no-echo-guard.patch

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy -q --workspace --all-targets -- -D warnings
	cargo clippy -q -p realtime-voice --lib --tests --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -q -p realtime-voice --lib --target wasm32-unknown-unknown --features debug-panics -- -D warnings
	cargo clippy -q -p realtime-voice-aec --lib --target wasm32-unknown-unknown -- -D warnings

test-native: setup
	cargo test -q --workspace
	node --test tests/worklets/ tests/glue/

test-browser: test-chrome test-firefox test-webkit

test-chrome: setup pkg server webdriver.json
	$(NO_DRIVERS) scripts/failure-summary.sh env $(WITH_SERVER) env CHROMEDRIVER=$(CHROMEDRIVER) $(WASM_TEST)

test-firefox: setup pkg server webdriver.json
	$(NO_DRIVERS) scripts/failure-summary.sh env $(WITH_SERVER) scripts/with-pulseaudio.sh env GECKODRIVER=$(GECKODRIVER) $(WASM_TEST)

# WebKitGTK's MiniBrowser has no headless mode: its driver runs under Xvfb. The runner says
# "Firefox" because the WebKit driver stands in for geckodriver (TOOLCHAIN.md). Without a sound
# server its web process crashes once a page plays audio through an <audio> element. A run that
# fails only because the web process crashed (GLib's setuid check, an engine race, or another
# "WebProcess CRASHED") is run once more, with a fresh server and sound server
# (scripts/retry-engine-crash.sh).
test-webkit: setup pkg server webdriver.json
	$(NO_DRIVERS) TEST_PORT=$(TEST_PORT) scripts/retry-engine-crash.sh scripts/failure-summary.sh scripts/with-server.sh scripts/with-pulseaudio.sh $(XVFB) env GECKODRIVER=$(WEBKITDRIVER) $(WASM_TEST)

# The E2E suite runs with the fault lab's control server up (RV_FAULT_PROXY): e2e/faults.test.mjs
# puts a proxy between the browser and the server. The recovery table is printed whatever the outcome.
FAULT_PROXY_PORT ?= 18099
WITH_FAULT_PROXY := env FAULT_PROXY_PORT=$(FAULT_PROXY_PORT) fault-proxy/with-fault-proxy.sh
FAULT_REPORT := node scripts/fault-lab-report.mjs

test-e2e: setup pkg server fault-proxy
	@rm -f e2e/output/fault-lab.jsonl
	GECKODRIVER=$(GECKODRIVER) $(WITH_SERVER) $(WITH_FAULT_PROXY) scripts/with-pulseaudio.sh $(XVFB) node --test --test-concurrency=1 e2e/ \
	  || { $(FAULT_REPORT); exit 1; }
	@$(FAULT_REPORT)

# Every fault-lab scenario (blackholes of 5/30/120 s, path change, offline/online, token endpoint
# down, 300 ms RTT, 32 kB/s uplink, server restart) in each engine: a report of recovery times
# (e2e/output/fault-lab.md), not part of `make test`. FAULT_SCENARIOS=path-change,latency picks some; FAULT_LATENCY_S=600 lengthens the 300 ms RTT run;
# E2E_ENGINES=chromium one engine.
test-faults: setup pkg server fault-proxy
	@rm -f e2e/output/fault-lab.jsonl
	GECKODRIVER=$(GECKODRIVER) $(WITH_SERVER) $(WITH_FAULT_PROXY) scripts/with-pulseaudio.sh $(XVFB) node --test --test-concurrency=1 e2e/fault-lab/all.mjs \
	  || { $(FAULT_REPORT); exit 1; }
	@$(FAULT_REPORT)

# The npm package as users get it: npm pack → a Vite app (web and bundler flavours) → tsc --strict
# of the typed API, vite build, and a real connect() in Chromium under a strict CSP.
test-package: setup pkg server
	$(WITH_SERVER) scripts/test-package.sh

# Browser-side latency (capture → send, first delta → played), printed per engine; a report,
# not a test.
latency-report: setup pkg server webdriver.json
	@for driver in CHROMEDRIVER=$(CHROMEDRIVER) GECKODRIVER=$(GECKODRIVER); do \
	  $(NO_DRIVERS) $(WITH_SERVER) scripts/with-pulseaudio.sh env $$driver $(WASM_TEST) \
	    -- connects_streams --nocapture 2>&1 | grep "latency report"; done

size: pkg
	@bash scripts/size.sh

size-check: pkg
	@bash scripts/size.sh --check $$(cat size-budget)

# What the echo guard costs in the package (issue 16: ≤ 3 KB gzip), against a build without it.
size-echo-guard: pkg
	@bash scripts/echo-guard-size.sh

# The 200-session load run split over two server instances behind a round-robin proxy, with
# private Redis and Postgres (server/tests/multi_instance.rs): a report for docs/SERVER.md, not
# part of `make test`. The release profile is tuned for a small wasm: override it for the server.
SERVER_RELEASE := CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
server-load-two: setup
	$(SERVER_RELEASE) cargo build -q --release -p realtime-voice-server --example load
	$(SERVER_RELEASE) cargo test -q --release -p realtime-voice-server --test multi_instance -- --ignored --nocapture load_200

# The echo lab (e2e/echo-lab/lab.mjs): the demo page in headless Chromium (ENGINE=firefox:
# Firefox) on a private PulseAudio whose output loops back into its microphone through simulated
# rooms (PulseAudio's loopback and a LADSPA reverb), the reference server's VAD as the judge;
# writes e2e/output/echo-lab.md. A report (its short check is test-echo-short).
# ROOMS=harsh,speakerphone GUARDS=off,auto RUNS=10 KINDS=echo,barge CANCELLER=wasm.
.PHONY: test-echo test-echo-short
test-echo: setup pkg server
	GECKODRIVER=$(GECKODRIVER) $(WITH_SERVER) scripts/with-pulseaudio.sh node e2e/echo-lab/lab.mjs

# The short lab run in `make test` (about a minute): the harsh room, the guard on (the
# default), one echo and one barge-in run, checking only what holds on a loaded machine.
test-echo-short: setup pkg server
	ROOMS=harsh GUARDS=auto RUNS=1 KINDS=echo,barge CHECK=1 $(WITH_SERVER) scripts/with-pulseaudio.sh node e2e/echo-lab/lab.mjs

# The loopback soak of the demo (scripts/soak.mjs; SOAK_MINUTES, default 30): memory growth,
# underruns and the playout delay (p50/p95) of one long voice session in headless Chromium; a
# report, not part of `make test`.
SOAK_MINUTES ?= 30
soak-report: setup pkg server
	node scripts/soak.mjs --minutes $(SOAK_MINUTES)
