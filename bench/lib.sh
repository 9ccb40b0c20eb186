# Shared by the bench scripts: source it after `set -euo pipefail`.

# usage prints the calling script's header comment (line 2 up to `set -euo`).
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }

# parse_rounds "$@" reads the options --quick, --rounds N and -h/--help into $quick
# (0 or 1) and $rounds (empty unless given); anything else is a usage error (exit 2).
parse_rounds() {
  quick=0
  rounds=
  while (($#)); do
    case $1 in
      --quick) quick=1 ;;
      --rounds)
        [[ ${2-} =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a positive integer" >&2; exit 2; }
        rounds=$2; shift ;;
      -h | --help) usage; exit 0 ;;
      *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
  done
}
