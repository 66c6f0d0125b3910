# The two commands: `make serve` and `make test` (run as root on Debian 12).
STATE_DIR ?= /var/lib/appliance
LISTEN ?= 0.0.0.0:8080
TEST_IMAGE := images/test/out

.PHONY: serve test setup build release image test-image browser-image bench clean install doctor

setup:
	bash scripts/setup.sh

build: setup
	swift build

release: setup
	swift build -c release --product appliance

# The browser image `appliance serve` uses by default (Debian 12 + Xorg + Chromium + guest
# agent, provisioned by init.sh): built once, about 3 minutes; `rm -r $(STATE_DIR)/image` and
# `make image` rebuild it from the cached root file system in $(STATE_DIR)/image-work.
image: release
	@if [ -f $(STATE_DIR)/image/disk.qcow2 ]; then echo "image present in $(STATE_DIR)/image"; \
	else .build/release/appliance image build --state-dir $(STATE_DIR); fi

# Rebuilt whenever the agent, its protocol or the recipe changes.
TEST_IMAGE_INPUTS := $(shell find Sources/GuestAgent Sources/AgentProtocol images/test -maxdepth 1 -type f \( -name '*.swift' -o -name '*.sh' \))

test-image: setup $(TEST_IMAGE)/initrd.img

$(TEST_IMAGE)/initrd.img: $(TEST_IMAGE_INPUTS)
	bash images/test/build.sh $(TEST_IMAGE)

serve: release image
	.build/release/appliance serve --state-dir $(STATE_DIR) --listen $(LISTEN)

# The browser image the browser tests boot (about 2 minutes cold, seconds when the cached root
# file system in images/browser/image-work is reused).
BROWSER_IMAGE := images/browser/image

browser-image: build $(BROWSER_IMAGE)/disk.qcow2

$(BROWSER_IMAGE)/disk.qcow2: init.sh $(TEST_IMAGE_INPUTS)
	.build/debug/appliance image build --state-dir images/browser

test: setup test-image browser-image
	swift build --build-tests
	# One test at a time: the end-to-end suites boot TCG guests and check timings (crash noticed
	# within seconds, sessions closed within a second) that two cores cannot keep while four
	# suites boot guests at once.
	swift test --skip-build --no-parallel
	# These restart the host's libvirtd (the Libvirt client's test and the appliance's), so they run alone, last;
	# the script fails when its filter matched no test.
	VMCLOUD_TEST_RESTART_LIBVIRTD=1 bash scripts/swift-test-filtered.sh "QemuSystemTests/reconnectsAfterLibvirtdRestart"
	VMCLOUD_TEST_RESTART_LIBVIRTD=1 bash scripts/swift-test-filtered.sh LibvirtdRestartTests
	# schemathesis (PyPI, in .venv-tools) against docs/openapi.yaml and a live appliance with the
	# admin key: every operation on libvirt's test driver, then the seed's six on real guests.
	bash scripts/schemathesis.sh 30
	# 500 random operations with kill -9 of the appliance, of QEMUs and of libvirtd against a
	# pool of 2-4 guests on the NAT network, then the invariants (bench/fault/README.md); a
	# finding fails the build too (--strict). About 12 minutes, 25 at most.
	/usr/bin/python3 bench/fault/fault_injection.py --ops 500 --strict --report /tmp/vmcloud-fault-report.json

# The benchmark suite (bench/suite.py): pool, VNC bridge, audio relay, smart proxy, reconciler and
# capture jobs, each with short settings against its baseline, into one table, bench/RESULTS.md
# and .json (each benchmark a few minutes). A subset: `make bench BENCH=pool,vnc`; a sentence for
# the table's header: BENCH_NOTE="...".
BENCH ?= pool,vnc,audio,proxy,reconcile,jobs

bench: setup release test-image
	/usr/bin/python3 bench/suite.py --only $(BENCH) $(if $(BENCH_NOTE),--note "$(BENCH_NOTE)")

# The release binary, a systemd unit, a default config (kept when edited) and the state
# directory; DESTDIR installs into a scratch tree (see README, "Install on a host").
PREFIX ?= /usr/local
DESTDIR ?= /
install: release
	.build/release/appliance install --root "$(DESTDIR)" --prefix $(PREFIX) --state-dir $(STATE_DIR)

# Checks this host (libvirt, KVM and TCG probe boots, audio, image, disk, port, network).
doctor: release
	.build/release/appliance doctor --state-dir $(STATE_DIR) --listen $(LISTEN)

clean:
	rm -rf .build .build-guest .build-image $(TEST_IMAGE) images/test/work images/browser
