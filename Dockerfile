# Bunker in a container: `docker build -t bunker .` (deploy/README.md says how to run it).
#
# Two stages: the build stage compiles a release `bunker` with the Swift runtime linked in
# statically; the run stage is a slim Debian holding only what that binary and its helper
# programs need at run time. Bunker is developed with Swift 6.3 (--build-arg
# SWIFT_IMAGE=swift:6.3-bookworm). Package.swift itself says 6.1, but its dependencies
# (Hummingbird, AsyncHTTPClient, jwt-kit, swift-log) need Swift tools 6.2, so 6.2 is the
# oldest official image that builds it. Both stages are Debian 12 (bookworm), so the C
# libraries linked at build time are the ones installed at run time.
ARG SWIFT_IMAGE=swift:6.2-bookworm

FROM ${SWIFT_IMAGE} AS build
# CZstd is a system library found with pkg-config (libzstd-dev, as scripts/install-deps.sh
# installs it), and so is CZlib (zlib1g-dev: the export's deflate); GRDB links the system SQLite.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libzstd-dev libsqlite3-dev zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Tests too: SwiftPM wants every target's directory, even to build one product.
COPY Package.swift Package.resolved* ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product bunker --static-swift-stdlib \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/bunker" /out/bunker

FROM debian:bookworm-slim
# The PostgreSQL client must be at least as new as the server it dumps (pg_dump refuses a newer
# server): set PG_MAJOR to the server's major version. Debian 12 ships 15; any other major
# comes from the PostgreSQL project's own repository (apt.postgresql.org, whose signing key
# postgresql-common carries).
ARG PG_MAJOR=15
# What the binary links (ldd): libzstd, libsqlite3, libstdc++, zlib. sqlite3 is the shell that
# writes database.sql into a ZIP export; postgresql-client-N has pg_dump, psql and
# pg_basebackup; ca-certificates for SMTP, webhooks and S3 over TLS; tzdata for schedules
# written in local time. bash runs the HEALTHCHECK below (no curl needed).
RUN apt-get update \
    && if [ "$PG_MAJOR" != 15 ]; then \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common ca-certificates \
        && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
    fi \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libzstd1 libsqlite3-0 libstdc++6 zlib1g sqlite3 "postgresql-client-${PG_MAJOR}" \
        ca-certificates tzdata bash \
    && rm -rf /var/lib/apt/lists/*
# A non-root user owns the data directory (catalog, audit trail, jwt.key) and the repository;
# its uid is fixed so that volumes and Kubernetes' runAsUser agree.
RUN groupadd --system --gid 10001 bunker \
    && useradd --system --uid 10001 --gid bunker --home-dir /var/lib/bunker --shell /usr/sbin/nologin bunker \
    && install -d -o bunker -g bunker -m 0700 /var/lib/bunker /repository \
    && install -d -o root -g root -m 0755 /etc/bunker
COPY --from=build /out/bunker /usr/local/bin/bunker

# With no bunker.toml, the data directory and the repository are these volumes; a mounted
# /etc/bunker/bunker.toml (BUNKER_CONFIG) adds sources, [smtp] and schedules. BUNKER_PASSWORD
# (or [repository] password_file) opens the repository; pass it at run time, never here.
ENV BUNKER_DATA_DIR=/var/lib/bunker \
    BUNKER_REPOSITORY=/repository
VOLUME ["/var/lib/bunker", "/repository"]
USER bunker:bunker
WORKDIR /var/lib/bunker
EXPOSE 8080
# GET /api/v1/health answers 200 without a login whenever the server answers. Plain HTTP on
# the port of CMD: with [server] tls_certificate set, change this check (or use an exec probe).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /api/v1/health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["bunker"]
# Inside a container the server must listen on every interface, not [server] listen's
# default 127.0.0.1. Any other subcommand runs in its place: `docker run … bunker backup`.
CMD ["serve", "--listen", "0.0.0.0:8080"]
