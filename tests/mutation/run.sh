#!/bin/bash
# Mutation testing with cosmic-ray on a throw-away checkout of HEAD (it edits the files it mutates).
#   bash tests/mutation/run.sh CONFIG.toml [REPORT.txt]
# Needs: pip install cosmic-ray. Prints cosmic-ray's report; the surviving mutants are listed in REPORT.txt.
set -euo pipefail
config=$(realpath "$1")
report=$(realpath -m "${2:-mutation-report.txt}")
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d /tmp/hebbcore-mutation.XXXXXX)
trap 'git -C "$repo" worktree remove --force "$work/tree" >/dev/null 2>&1 || true' EXIT
git -C "$repo" worktree add --detach "$work/tree" HEAD >/dev/null
mkdir "$work/path"  # the checkout's packages first on the path: the mutated files are the ones imported
ln -s "$work/tree/hebbcore" "$work/path/hebbcore"
ln -s "$work/tree/plugins" "$work/path/hebbcore_plugins"
ln -s "$work/tree/backends" "$work/path/hebbcore_backends"
export PYTHONPATH="$work/path${PYTHONPATH:+:$PYTHONPATH}"
cd "$work/tree"
cosmic-ray init "$config" "$work/session.sqlite"
cosmic-ray baseline "$config"
cosmic-ray exec "$config" "$work/session.sqlite"
cr-report "$work/session.sqlite" --show-pending | tee "$report"
