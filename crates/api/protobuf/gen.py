#!/usr/bin/env python3
"""Builds schema.txt.gz: the message layouts of Kubernetes' generated.proto files, in the
compact form tug_api::protobuf reads. Usage:

    python3 gen.py <k8s-pb>/k8s-pb-codegen/protos ../openapi/swagger.json.gz \
        api:<kubernetes/api checkout> apimachinery:<kubernetes/apimachinery checkout>

Writes schema.txt.gz next to this script. Format, one line each:
    @<message>               a message (full name, k8s-pb's packages: api.core.v1.Pod)
    @<message> items         a Go slice type: the JSON is the array of its field 1
    @<message> go            its Go struct is known (k8s.io/api types.go): a zero scalar
                             field is left out unless marked keep, as Go's JSON does
    <n> <name> <o|r|m> <type>[ inline][ keep]
        o optional, r repeated, m map (type = key,value); inline: a Go embedded struct,
        whose fields JSON writes in the parent (detected as a message-typed field the
        OpenAPI definition of the parent does not have); keep: a pointer, or a field
        without omitempty, whose zero value JSON writes.
"""
import gzip, json, os, re, sys

root, swagger = sys.argv[1], sys.argv[2]
go_roots = [a.split(":", 1) for a in sys.argv[3:]]
defs = json.load(gzip.open(swagger))["definitions"]

def openapi_name(msg):
    # api.core.v1.Pod -> io.k8s.api.core.v1.Pod; apimachinery.pkg... -> io.k8s.apimachinery.pkg...
    if msg.startswith("apiextensions_apiserver."):
        return "io.k8s.apiextensions-apiserver." + msg[len("apiextensions_apiserver."):]
    if msg.startswith("kube_aggregator."):
        return "io.k8s.kube-aggregator." + msg[len("kube_aggregator."):]
    return "io.k8s." + msg

field_re = re.compile(r"^\s*(optional|repeated)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;")
map_re = re.compile(r"^\s*map<\s*(\w+)\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
messages = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if f != "generated.proto":
            continue
        text = open(os.path.join(dirpath, f)).read()
        pkg = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
        if pkg.startswith("metrics.") or ".testapigroup." in pkg:
            continue
        stack = []
        for line in text.splitlines():
            line = line.split("//")[0]
            m = re.match(r"^\s*message\s+(\w+)\s*{", line)
            if m:
                stack.append(m.group(1))
                messages[pkg + "." + ".".join(stack)] = (pkg, [])
                continue
            if re.match(r"^\s*}", line) and stack:
                stack.pop()
                continue
            if not stack:
                continue
            fields = messages[pkg + "." + ".".join(stack)][1]
            m = map_re.match(line)
            if m:
                fields.append((int(m.group(4)), m.group(3), "m", m.group(1) + "," + m.group(2)))
                continue
            m = field_re.match(line)
            if m:
                fields.append((int(m.group(4)), m.group(3), m.group(1)[0], m.group(2)))

SCALARS = {"string", "int32", "int64", "bool", "bytes", "double", "float", "uint32", "uint64",
           "fixed32", "fixed64", "sint32", "sint64", "sfixed32", "sfixed64"}

def resolve(pkg, t):
    if t in SCALARS:
        return t
    if t.startswith("."):
        return t[1:]
    # Relative to the package (k8s protos only use same-package relative names).
    if pkg + "." + t in messages:
        return pkg + "." + t
    raise SystemExit(f"unresolved type {t} in {pkg}")

# Go structs of k8s.io/api: package api.<group>.<version> <- <group>/<version>/types.go.
go_fields = {}  # message -> {proto name: keep zero?}
tag_re = re.compile(r'^\s+\w+\s+(\S+)\s+`json:"([^"]*)".*protobuf:"[^"]*name=(\w+)')
walks = [(prefix, d, w) for prefix, d in go_roots for w in os.walk(d)]
for prefix, goroot, (dirpath, _, files) in walks:
    if "/.git" in dirpath:
        continue
    for f in files:
        if f != "types.go":
            continue
        rel = os.path.relpath(dirpath, goroot)
        pkg = prefix + "." + rel.replace("/", ".")
        struct = None
        for line in open(os.path.join(dirpath, f)):
            m = re.match(r"^type (\w+) struct {", line)
            if m:
                struct = pkg + "." + m.group(1)
                go_fields[struct] = {}
                continue
            if line.startswith("}"):
                struct = None
                continue
            m = tag_re.match(line)
            if struct and m:
                gotype, json_tag, pname = m.groups()
                keep = gotype.startswith("*") or "omitempty" not in json_tag.split(",")[1:]
                go_fields[struct][pname] = keep

out = []
for name in sorted(messages):
    pkg, fields = messages[name]
    d = defs.get(openapi_name(name))
    props = set((d or {}).get("properties", {}))
    flag = ""
    if d is None and len(fields) == 1 and fields[0][1] == "items" and fields[0][2] == "r":
        flag = " items"
    known = go_fields.get(name)
    if known is not None and not flag:
        flag = " go"
    out.append(f"@{name}{flag}")
    for n, fname, label, t in sorted(fields):
        if label == "m":
            k, v = t.split(",")
            t = resolve(pkg, k) + "," + resolve(pkg, v)
        else:
            t = resolve(pkg, t)
        inline = ""
        if d is not None and label == "o" and t not in SCALARS and fname not in props:
            inline = " inline"
        keep = " keep" if known is not None and known.get(fname, True) and label == "o" and t in SCALARS else ""
        out.append(f"{n} {fname} {label} {t}{inline}{keep}")
data = ("\n".join(out) + "\n").encode()
dest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.txt.gz")
open(dest, "wb").write(gzip.compress(data, 9, mtime=0))
print(len(messages), "messages,", len(data), "bytes,", os.path.getsize(dest), "gzipped", file=sys.stderr)
