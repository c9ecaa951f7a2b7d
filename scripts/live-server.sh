# Sourced by scripts/schemathesis.sh and scripts/browser-tests.sh: the live `bunker serve` they
# test, over a temporary data directory and repository with two sources.

# Writes, under the directory $1, an SQLite database (app.db), a file tree (studies/2025 with 20
# notes) and a bunker.toml that backs both up into $1/repo with its catalog in $1/data, and
# exports BUNKER_CONFIG, BUNKER_PASSWORD (from $2) and HOME for the bunker commands that follow.
live_server_fixture() {
    local work=$1
    mkdir -p "$work/studies/2025"
    for i in $(seq 1 20); do echo "note $i" > "$work/studies/2025/note-$i.txt"; done
    sqlite3 "$work/app.db" "CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO patients (name) VALUES ('Ada'), ('Grace');"
    cat > "$work/bunker.toml" <<TOML
data_dir = "$work/data"

[repository]
path = "$work/repo"

[[source]]
name = "app-db"
kind = "sqlite"
path = "$work/app.db"

[[source]]
name = "studies"
kind = "files"
path = "$work/studies"
TOML
    export BUNKER_CONFIG="$work/bunker.toml" BUNKER_PASSWORD="$2" HOME="$work"
}

server=""

# Stops the server that live_server_start started, if it runs (for the caller's EXIT trap).
live_server_stop() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server"
        wait "$server" || true
    fi
}

# Starts `$1 serve` on a free loopback port, its output in $2, and waits until it answers.
# Sets `port` and `server` (its process id, which live_server_stop stops); exits if it never
# answers.
live_server_start() {
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$1" serve --listen "127.0.0.1:$port" > "$2" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fs "http://127.0.0.1:$port/api/v1/health" >/dev/null || { cat "$2" >&2; echo "bunker serve did not answer" >&2; exit 1; }
}
