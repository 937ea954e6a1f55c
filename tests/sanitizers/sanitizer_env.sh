#!/bin/sh
# --run_under wrapper of the asan and tsan configurations (.bazelrc): it only runs the test.
# Being the run_under target, its data (the suppression files) is in every test's runfiles,
# where the *SAN_OPTIONS of .bazelrc find them by a path relative to the test's directory.
exec "$@"
