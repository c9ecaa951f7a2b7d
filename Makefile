# Bunker: `make run` does the main job on an embedded default, `make test` runs every test.
.PHONY: run test build release bench clean deps check-image

deps:
	bash scripts/install-deps.sh

build: deps
	swift build

release: deps
	swift build -c release --product bunker

run: release
	bash scripts/demo.sh

# One test at a time: many tests wait synchronously for real processes (bunker, pg_ctl, psql,
# sqlite3), and on a 2-core machine two such waits fill Swift's cooperative thread pool, starving
# the in-process HTTP server of the API tests until their requests time out.
# schemathesis (the live API against its OpenAPI document), the Prometheus scrape (a service
# token, the body parsed by the official Python client), the browser tests (the web console
# in headless Chromium) and check-deploy (the Dockerfile, Kubernetes manifests and systemd units
# against the binary's commands) run first, so that the test runner's own summary is the last
# thing printed.
test: deps
	swift build --build-tests
	bash scripts/schemathesis.sh
	bash scripts/prometheus-scrape.sh
	bash scripts/browser-tests.sh
	python3 scripts/check-deploy.py
	swift test --no-parallel

# make bench SIZE=10240: the same benchmark on a 10 GiB data set (report: bench/RESULTS-10240mb.md).
bench: deps
	python3 bench/run.py $(if $(SIZE),--size-mb $(SIZE))

clean:
	rm -rf .build .bunker

# The container image's run stage, proven without a Docker engine (needs root and Debian's
# mirror): the static binary under chroot in an mmdebstrap root of exactly its packages.
check-image: deps
	bash scripts/check-image.sh
