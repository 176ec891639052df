#!/bin/bash
# Mutation testing with cosmic-ray on a throw-away checkout (it edits the files it mutates), resumable.
#   bash tests/mutation/run.sh CONFIG.toml [REPORT.txt] [SESSION_DIR]
# Needs: pip install cosmic-ray. SESSION_DIR (default /tmp/hebbcore-mutation-<config name>) keeps the session
# and the commit it tests: run the same command again after a stop and it continues where it was.
set -euo pipefail
config=$(realpath "$1")
report=$(realpath -m "${2:-mutation-report.txt}")
session=$(realpath -m "${3:-/tmp/hebbcore-mutation-$(basename "$config" .toml)}")
repo=$(git rev-parse --show-toplevel)
mkdir -p "$session"
[ -f "$session/commit" ] || git -C "$repo" rev-parse HEAD > "$session/commit"
commit=$(cat "$session/commit")
tree="$session/tree"
trap 'git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
git -C "$repo" worktree prune
git -C "$repo" worktree add --detach "$tree" "$commit" >/dev/null
rm -rf "$session/path" && mkdir "$session/path"  # the checkout's packages first on the path: they are the mutated ones
ln -s "$tree/hebbcore" "$session/path/hebbcore"
ln -s "$tree/plugins" "$session/path/hebbcore_plugins"
ln -s "$tree/backends" "$session/path/hebbcore_backends"
export PYTHONPATH="$session/path${PYTHONPATH:+:$PYTHONPATH}"
cd "$tree"
if [ ! -f "$session/session.sqlite" ]; then
    cosmic-ray init "$config" "$session/session.sqlite"
    cosmic-ray baseline "$config"
fi
cosmic-ray exec "$config" "$session/session.sqlite"  # only the mutants not yet tested
cr-report "$session/session.sqlite" --show-pending | tee "$report"
