# Sourced by the scripts: checks that the tools a fresh machine needs are there and names the
# missing ones with the Debian/Ubuntu package that brings them (README: On a fresh machine).
# Usage: source scripts/require.sh; require cargo python3-venv curl ...
require() {
  local missing=()
  for need in "$@"; do
    case "$need" in
      python3-venv) python3 -c 'import venv, ensurepip' 2> /dev/null || missing+=("python3-venv (Python's venv with ensurepip)") ;;
      pip) python3 -m pip --version > /dev/null 2>&1 || missing+=("python3-pip (python3 -m pip)") ;;
      cargo) command -v cargo > /dev/null || missing+=("cargo (a Rust toolchain: rustup, see rust-toolchain.toml)") ;;
      *) command -v "$need" > /dev/null || missing+=("$need") ;;
    esac
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "error: missing on this machine: ${missing[*]}" >&2
    echo "       on Debian/Ubuntu: apt-get install python3 python3-venv python3-pip curl openssl (and rustup for cargo)" >&2
    exit 1
  fi
}
