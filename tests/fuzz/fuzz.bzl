"""smolserve_fuzz_target: one libFuzzer target, built two ways.

With --config=fuzz (clang, -fsanitize=fuzzer-no-link,address,undefined on every library) the
binary links libFuzzer's main. In every other build it links standalone_main.cc, which runs
LLVMFuzzerTestOneInput on the files and folders given as arguments: `bazel build //...` keeps
the targets compiling with the normal toolchain, and corpus_replay_test runs each one on its
seed corpus and crash reproducers.
"""

def smolserve_fuzz_target(name, srcs, deps = [], data = []):
    native.cc_binary(
        name = name,
        testonly = True,
        srcs = srcs,
        data = data,
        linkopts = select({
            "//tests/fuzz:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = deps + [":fuzz_util"] + select({
            "//tests/fuzz:fuzzing": [],
            "//conditions:default": [":standalone_main"],
        }),
    )
