#!/usr/bin/env bash
# The test command (README): sets up what the tests need on a fresh Debian machine, then
# runs them. It checks before it installs: servers that already answer are used as they are.
#
#   scripts/test.sh            everything
#   scripts/test.sh -- ARGS    extra arguments for `cargo test`
#
# Needs: a Rust toolchain (rustup), and root or sudo on a machine without PostgreSQL or
# Prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

command -v cargo >/dev/null || {
    echo "cargo not found: install Rust with https://rustup.rs (Debian's cargo is too old for this project)" >&2
    exit 1
}

# ---- PostgreSQL on 127.0.0.1:5432 --------------------------------------------------------
pg_answers() { psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
    if [ -n "${DRIFTWATCH_TEST_PG_URL:-}" ]; then
        say "PostgreSQL: using DRIFTWATCH_TEST_PG_URL"
        return
    fi
    if command -v psql >/dev/null && pg_answers; then
        say "PostgreSQL: answering on 127.0.0.1:5432"
        return
    fi
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        say "PostgreSQL: installing Debian's postgresql"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main .* online"; then
        say "PostgreSQL: starting cluster $version/main"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    if ! pg_answers; then
        # A fresh install asks for a password over TCP: give the tests one.
        say "PostgreSQL: setting a password for the postgres role (tests connect over TCP)"
        as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'driftwatch-test'\""
        export DRIFTWATCH_TEST_PG_URL="postgres://postgres:driftwatch-test@127.0.0.1:5432"
    fi
}

ensure_postgres

# ---- MariaDB on 127.0.0.1:3306 (the MySQL/MariaDB engine's tests) ---------------------------
my_client() { command -v mariadb || command -v mysql; }
my_answers() {
    "$(my_client)" --protocol=tcp -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1
}

ensure_mariadb() {
    if [ -n "${DRIFTWATCH_TEST_MYSQL_URL:-}" ]; then
        say "MariaDB: using DRIFTWATCH_TEST_MYSQL_URL"
        return
    fi
    if ! my_client >/dev/null; then
        say "MariaDB: installing Debian's mariadb-client (tests apply scripts with it)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-client
    fi
    if my_answers; then
        say "MariaDB: answering on 127.0.0.1:3306"
        return
    fi
    if [ ! -x /usr/sbin/mariadbd ]; then
        say "MariaDB: installing Debian's mariadb-server"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server mariadb-client
    fi
    if ! as_root mariadb-admin ping >/dev/null 2>&1; then
        say "MariaDB: starting mariadbd"
        as_root install -d -o mysql -g mysql /run/mysqld
        as_root service mariadb start >/dev/null 2>&1 ||
            as_root start-stop-daemon --start --oknodo --background \
                --exec /usr/sbin/mariadbd -- --user=mysql
    fi
    for _ in $(seq 30); do as_root mariadb-admin ping >/dev/null 2>&1 && break; sleep 1; done
    if ! my_answers; then
        # A fresh install lets root in over the Unix socket only: give the tests a password.
        say "MariaDB: setting a password for root (tests connect over TCP)"
        as_root mariadb -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('driftwatch-test') OR unix_socket"
        export DRIFTWATCH_TEST_MYSQL_URL="mysql://root:driftwatch-test@127.0.0.1:3306"
    fi
}

ensure_mariadb

# The replication tests start their own mariadbd instances (a primary and a replica), so
# they need the server's binaries even where a server already answers.
if [ ! -x /usr/sbin/mariadbd ] || ! command -v mariadb-install-db >/dev/null; then
    say "MariaDB: installing Debian's mariadb-server (the replication tests start their own instances)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server
fi

# ---- the engines' own clients, which apply generated scripts in the tests ---------------
if ! command -v sqlite3 >/dev/null || ! command -v psql >/dev/null; then
    say "installing the sqlite3 and psql clients"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q sqlite3 postgresql-client
fi

# ---- Prometheus ---------------------------------------------------------------------------
# test-rules.sh installs Debian's prometheus package (without starting its server) when
# promtool is missing; the package also ships the `prometheus` server binary, which
# tests/prometheus.rs starts on loopback.
say "Prometheus rules (promtool) and dashboards"
deploy/prometheus/test-rules.sh
python3 deploy/check-dashboards.py
command -v prometheus >/dev/null || {
    echo "promtool is installed but the prometheus server binary is not: install Debian's prometheus package" >&2
    exit 1
}
export DRIFTWATCH_REQUIRE_PROMETHEUS=1

# ---- the status page's browser test: Debian's Chromium, node's playwright-core -----------
# Playwright's own browser download is not used: it drives /usr/bin/chromium.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    say "installing Debian's chromium and chromium-driver (the status page's browser test)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing Debian's nodejs and npm (the status page's browser test)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi
browser=tests/browser
# npm ci only when node_modules was not installed from this very lock file (and npm's
# cache keeps a re-install offline).
if ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.installed-from-lock" 2>/dev/null; then
    say "npm ci in $browser"
    (cd "$browser" && npm ci --no-audit --no-fund --prefer-offline &&
        cp package-lock.json node_modules/.installed-from-lock)
fi

# The binary the integration tests (tests/, driftwatch-tests) and the browser test run, built
# once here: with DRIFTWATCH_BIN set, no test builds it. Built with every target, as
# `cargo test` below builds them: the tests' dev-dependencies add features (tokio's
# test-util), and a binary built alone would compile tokio and all that depends on it twice.
say "cargo build --workspace --all-targets"
cargo build --workspace --all-targets
DRIFTWATCH_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/driftwatch"
export DRIFTWATCH_BIN

say "cargo test (unit, property, end-to-end, Prometheus, OpenTelemetry export)"
log=$(mktemp)
blog=$(mktemp)
trap 'rm -f "$log" "$blog"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast "${@:2}" 2>&1 | tee "$log" || status=1

say "the status page in headless Chromium ($browser)"
node --test --test-concurrency=1 "$browser/page.test.mjs" 2>&1 | tee "$blog" || status=1
# One closing line for the whole run, summed over every test binary and the browser test
# (node's runner closes with "# pass N" and "# fail N").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^# pass [0-9]+$/ { p += $3 } /^# fail [0-9]+$/ { f += $3 }
     END { printf "%d passed, %d failed\n", p, f }' "$log" "$blog"
# No SQL Server can run here: its live suite runs only against a server named by the
# environment; say so at the end, where nobody misses it.
if [ -z "${DRIFTWATCH_TEST_MSSQL_URL:-}" ]; then
    echo "SQL Server live suite SKIPPED: DRIFTWATCH_TEST_MSSQL_URL is not set (its offline tests ran: golden T-SQL parsed with MsSqlDialect, decoding, URLs, filters; see docs/testing.md to run it against deploy/'s container)"
else
    echo "SQL Server live suite ran against $DRIFTWATCH_TEST_MSSQL_URL"
fi
exit "$status"
