# Shared by run-tests.sh and run-local.sh: finding (or getting) Postgres.
# Sourced, not run.

# Prints the directory holding initdb/pg_ctl, or nothing.
postgres_bin_dir() {
  local dir
  for dir in $(echo "${PATH}" | tr ':' ' ') $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 0
}

# True when something accepts TCP connections on host:port.
port_answers() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Whether missing system packages can be installed here: as root on a
# Debian-like system.
can_apt_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

# Installs Debian packages, quietly.
apt_install() {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Makes sure the tests or the stack can get a Postgres: a URL in the
# environment, a server on 127.0.0.1:5432, or initdb/pg_ctl to start a
# private one. Installs PostgreSQL from the distribution when none of these
# is there and we are root on a Debian-like system.
ensure_postgres() {
  if [ -n "${TEST_DATABASE_URL:-}${DATABASE_URL:-}" ]; then return 0; fi
  if port_answers 127.0.0.1 5432; then return 0; fi
  if [ -n "$(postgres_bin_dir)" ]; then return 0; fi
  if can_apt_install; then
    echo "==> no Postgres found: installing PostgreSQL from the distribution's packages"
    apt_install postgresql
    return 0
  fi
  echo "No Postgres: set DATABASE_URL, run a server on 127.0.0.1:5432, or install PostgreSQL (initdb, pg_ctl)." >&2
  return 1
}

# Makes sure libfaketime is there: the clock-skew test runs a dispatcher
# with its clocks shifted. Installs Debian's faketime when we are root.
ensure_faketime() {
  if [ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]; then return 0; fi
  if can_apt_install; then
    echo "==> installing faketime (libfaketime) from the distribution's packages"
    apt_install faketime
    return 0
  fi
  echo "The tests need libfaketime: install Debian's faketime package (apt-get install faketime)." >&2
  return 1
}

ensure_spin() {
  if command -v spin >/dev/null && command -v gcc >/dev/null; then return 0; fi
  if can_apt_install; then
    echo "==> installing spin (the model checker) from the distribution's packages"
    apt_install spin gcc
    return 0
  fi
  echo "The model check needs SPIN and a C compiler: install Debian's spin and gcc packages." >&2
  return 1
}

# Makes sure promtool (Prometheus' rule checker and tester) is there:
# Debian's prometheus package ships it. Installs that package as root, or
# through sudo when sudo needs no password.
ensure_promtool() {
  if command -v promtool >/dev/null; then return 0; fi
  if can_apt_install; then
    echo "==> installing promtool (Debian's prometheus package) from the distribution's packages"
    apt_install --no-install-recommends prometheus
    return 0
  fi
  if command -v apt-get >/dev/null && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "==> installing promtool (Debian's prometheus package) with sudo"
    sudo -n apt-get update -qq
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    return 0
  fi
  echo "The rules' checks need promtool: install Debian's prometheus package (apt-get install --no-install-recommends prometheus), or put promtool on PATH." >&2
  return 1
}

# Prints the path of the project's Python virtualenv, after making sure the
# given packages (pip requirement strings) are installed in it. PyPI is the
# only network it needs; Python itself comes from the distribution when
# missing and we are root.
project_venv() {
  local venv="${PARTNER_CALLBACKS_CACHE:-$HOME/.cache/partner-callbacks}/venv" missing=() package
  if [ ! -x "$venv/bin/pip" ]; then
    if ! command -v python3 >/dev/null || ! python3 -m venv "$venv" >/dev/null 2>&1; then
      if can_apt_install; then
        apt_install python3 python3-venv
        python3 -m venv "$venv" >/dev/null
      else
        echo "python3 with venv is needed for the validators" >&2
        return 1
      fi
    fi
  fi
  local installed
  for package in "$@"; do
    # A pinned package (name==version) must be at that version.
    installed="$("$venv/bin/pip" show "${package%%[=<>]*}" 2>/dev/null | sed -n 's/^Version: //p')"
    if [ -z "$installed" ] || { [[ "$package" == *==* ]] && [ "$installed" != "${package#*==}" ]; }; then
      missing+=("$package")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]} into $venv" >&2
    "$venv/bin/pip" install -q "${missing[@]}" >&2
  fi
  echo "$venv"
}

# Prints the path of the project's node_modules folder (its parent is an npm
# prefix), after making sure the given packages (name@version, pinned) are
# installed in it. The npm registry is the only network it needs; Node.js
# itself comes from the distribution when missing and we are root.
project_node() {
  local prefix="${PARTNER_CALLBACKS_CACHE:-$HOME/.cache/partner-callbacks}/node" missing=() package installed
  if ! command -v npm >/dev/null; then
    if can_apt_install; then
      apt_install nodejs npm
    else
      echo "Node.js with npm is needed for the JavaScript tools" >&2
      return 1
    fi
  fi
  mkdir -p "$prefix"
  [ -f "$prefix/package.json" ] || echo '{"private": true}' > "$prefix/package.json"
  for package in "$@"; do
    installed="$(node -p "require('$prefix/node_modules/${package%@*}/package.json').version" 2>/dev/null || true)"
    [ "$installed" = "${package##*@}" ] || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]} into $prefix" >&2
    npm install --prefix "$prefix" --no-audit --no-fund --silent "${missing[@]}" >&2
  fi
  echo "$prefix/node_modules"
}

# Prints the path of a Chromium for the browser tests: Debian's, installed
# when missing and we are root.
ensure_chromium() {
  if ! command -v chromium >/dev/null; then
    if can_apt_install; then
      echo "==> installing Debian's chromium for the browser tests" >&2
      apt_install chromium
    else
      echo "Chromium is needed for the browser tests (Debian: apt-get install chromium)" >&2
      return 1
    fi
  fi
  command -v chromium
}
