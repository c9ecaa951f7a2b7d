# Bunker: `make run` does the main job on an embedded default, `make test` runs every test.
.PHONY: run test build release bench clean deps

deps:
	bash scripts/install-deps.sh

build: deps
	swift build

release: deps
	swift build -c release --product bunker

run: release
	bash scripts/demo.sh

test: deps
	swift build --build-tests
	swift test
	bash scripts/schemathesis.sh

bench: deps
	python3 bench/run.py

clean:
	rm -rf .build .bunker
