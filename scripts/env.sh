# Sourced by the scripts (not run): puts the project's own Node.js 20 first on
# PATH where scripts/setup.sh installed one (machines whose Node.js is older).
_conveyor_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -x "$_conveyor_root/tools/node/node_modules/.bin/node" ]; then
  case ":$PATH:" in
    *":$_conveyor_root/tools/node/node_modules/.bin:"*) ;;
    *) export PATH="$_conveyor_root/tools/node/node_modules/.bin:$PATH" ;;
  esac
fi
unset _conveyor_root
