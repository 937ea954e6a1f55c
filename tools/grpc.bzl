"""cc_grpc_library over the system protoc and grpc_cpp_plugin (no Bazel proto rules: they
would download protobuf). Imports are workspace-relative ("proto/smolserve/v1/x.proto")."""

def cc_grpc_library(name, srcs, deps = [], proto_deps = [], grpc = True, visibility = None):
    bases = [s[:-len(".proto")] for s in srcs]
    outs = []
    for b in bases:
        outs += [b + ".pb.h", b + ".pb.cc"]
        if grpc:
            outs += [b + ".grpc.pb.h", b + ".grpc.pb.cc"]
    # Outputs are relative to this package; protoc writes paths relative to the workspace.
    pkg = native.package_name()
    rel = [o[len(pkg) + 1:] if o.startswith(pkg + "/") else o for o in outs]
    cmd = "/usr/bin/protoc -I. -I/usr/include --cpp_out=$(GENDIR)"
    if grpc:
        cmd += " --grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin"
    cmd += " " + " ".join(["$(location %s)" % s for s in srcs])
    native.genrule(
        name = name + "_codegen",
        srcs = srcs + proto_deps,
        outs = rel,
        cmd = cmd,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in rel if o.endswith(".cc")],
        hdrs = [o for o in rel if o.endswith(".h")],
        deps = deps + ["//third_party/system:grpc++", "//third_party/system:protobuf"],
        visibility = visibility,
    )
