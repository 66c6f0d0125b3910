# The two commands: `make serve` and `make test` (run as root on Debian 12).
STATE_DIR ?= /var/lib/appliance
LISTEN ?= 0.0.0.0:8080
TEST_IMAGE := images/test/out

.PHONY: serve test setup build release image test-image clean

setup:
	bash scripts/setup.sh

build: setup
	swift build

release: setup
	swift build -c release --product appliance

# The guest image `appliance serve` uses by default. Until the browser image lands this is the
# tiny test image (kernel + initramfs + guest agent).
image: setup
	@if [ -f $(STATE_DIR)/image/disk.qcow2 ]; then echo "image present in $(STATE_DIR)/image"; \
	else bash images/test/build.sh $(STATE_DIR)/image; fi

# Rebuilt whenever the agent, its protocol or the recipe changes.
TEST_IMAGE_INPUTS := $(shell find Sources/GuestAgent Sources/AgentProtocol images/test -maxdepth 1 -type f \( -name '*.swift' -o -name '*.sh' \))

test-image: setup $(TEST_IMAGE)/initrd.img

$(TEST_IMAGE)/initrd.img: $(TEST_IMAGE_INPUTS)
	bash images/test/build.sh $(TEST_IMAGE)

serve: release image
	.build/release/appliance serve --state-dir $(STATE_DIR) --listen $(LISTEN)

test: setup test-image
	swift build --build-tests
	swift test --skip-build
	# Restarts the host's libvirtd, so it runs alone after everything else.
	VMCLOUD_TEST_RESTART_LIBVIRTD=1 swift test --skip-build --filter reconnectsAfterLibvirtdRestart

clean:
	rm -rf .build .build-guest $(TEST_IMAGE) images/test/work
