# mvemu top-level build. `make run` and `make test` are the two commands of README.md.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
MVEMU   := $(VENV)/bin/mvemu
STAMP   := $(VENV)/.installed

.PHONY: setup images run test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

images:
	$(MAKE) -C hvm/native
	$(MAKE) -C toolchain/sdk
	$(MAKE) -C guest_images
	$(MAKE) -C aerokernel
	$(MAKE) -C toolchain/runtime

# The main job: a program hybridized into a fat binary, its main() run in the HRT.
run: setup images
	@mkdir -p build
	$(MVEMU) hybridize guest_images/build/hello.glibc -o build/hello.hrt
	$(MVEMU) run --stats build/hello.hrt "from mvemu"

test: setup images
	$(VPY) -m pytest -q

bench: setup images
	$(VPY) benchmarks/run.py

clean:
	$(MAKE) -C hvm/native clean
	$(MAKE) -C guest_images clean
	$(MAKE) -C aerokernel clean
	$(MAKE) -C toolchain/runtime clean
	$(MAKE) -C toolchain/sdk clean
	rm -rf $(VENV)
