"""Register this machine with asv (``~/.asv-machine.json``) and print its name.

asv's own ``asv machine --yes --machine NAME`` stores only the name; the dashboard keys
its series on the machine fields, so they are filled here from the hardware. The name is
derived from the hardware too (not the host name, which changes with every container),
so results of the same kind of machine line up, and results of different CPUs do not:
the ``model name`` line alone can read just "AMD EPYC" on two VMs whose CPUs differ in
generation and instruction set, so the name also carries the vendor's cpu family and
model and the widest vector extension (AVX2, AVX-512, AMX), which decide the BLAS and
oneDNN kernels. A machine with an NVIDIA GPU is named after the GPU, which its CUDA
figures depend on; SCIPY_LAYERS_MACHINE overrides the name. Other entries in the file
are kept; an existing entry of the same name is left as the user wrote it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from help_text import description  # (tools/, this script's folder)

CPUINFO = Path("/proc/cpuinfo")
VENDORS = {"AuthenticAMD": "amd", "GenuineIntel": "intel", "HygonGenuine": "hygon"}
# The instruction-set flags that pick BLAS/oneDNN/FFT kernels (x86 /proc/cpuinfo names,
# and the aarch64 'Features' names), in the order they are listed in the machine fields.
RELEVANT_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                  "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
                  "asimd", "sve", "sve2")
# Widest first: the name says the best extension present.
ISA_LEVELS = (("amx", "amx_tile"), ("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"),
              ("sve2", "sve2"), ("sve", "sve"), ("neon", "asimd"))


def parse_cpuinfo(text: str) -> dict:
    """The first processor's fields of a /proc/cpuinfo text: vendor, family, model,
    model name and the relevant flags (missing fields are empty strings)."""
    first = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0] if text.strip() else ""
    fields = {}
    for line in first.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    return {"vendor": fields.get("vendor_id", ""), "family": fields.get("cpu family", ""),
            "model": fields.get("model", ""), "model_name": fields.get("model name", ""),
            "flags": [flag for flag in RELEVANT_FLAGS if flag in flags]}


def read_cpuinfo(path: Path = CPUINFO) -> dict:
    try:
        return parse_cpuinfo(path.read_text())
    except OSError:
        return parse_cpuinfo("")


def isa_level(flags) -> str:
    """The widest vector extension among ``flags`` ('amx', 'avx512', 'avx2', ...)."""
    return next((level for level, flag in ISA_LEVELS if flag in flags), "")


def _ram() -> str:
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return f"{round(kib / 2**20)} GiB"
    except (OSError, AttributeError):
        return "unknown"


def _gpu_model() -> str | None:
    """The first NVIDIA GPU's name, from nvidia-smi (no CUDA initialised), or None."""
    try:
        listing = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = [line.strip() for line in listing.stdout.splitlines() if line.strip()]
    return names[0] if listing.returncode == 0 and names else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"\(.*?\)|cpu|@.*", "", text.lower())).strip("-")


def cpu_name(cpu: dict) -> str:
    """'amd-epyc-f25m17-avx512' from the model name, family, model and widest extension;
    the vendor comes first when the model name does not start with it."""
    model = _slug(cpu["model_name"]) or _slug(platform.processor() or platform.machine())
    vendor = VENDORS.get(cpu["vendor"], _slug(cpu["vendor"]))
    parts = [vendor] if vendor and not model.startswith(vendor) else []
    parts.append(model or "unknown")
    if cpu["family"] or cpu["model"]:
        parts.append(f"f{cpu['family'] or 'x'}m{cpu['model'] or 'x'}")
    if isa_level(cpu["flags"]):
        parts.append(isa_level(cpu["flags"]))
    return "-".join(parts)


def cpu_field(cpu: dict) -> str:
    """asv's 'cpu' machine field: model name, family/model and the relevant flags."""
    where = f"family {cpu['family']}, model {cpu['model']}" if cpu["family"] else ""
    flags = " ".join(cpu["flags"]) or "no AVX"
    model = cpu["model_name"] or platform.processor() or "unknown cpu"
    return f"{model} ({'; '.join(filter(None, [where, flags]))})"


def describe(cpu: dict | None = None) -> dict:
    cpu = read_cpuinfo() if cpu is None else cpu
    num_cpu = len(os.sched_getaffinity(0))
    gpu = _gpu_model()
    derived = f"{_slug(gpu)}-{num_cpu}cpu" if gpu else f"{cpu_name(cpu)}-{num_cpu}cpu"
    name = os.environ.get("SCIPY_LAYERS_MACHINE") or derived
    return {"machine": name, "arch": platform.machine(), "cpu": cpu_field(cpu),
            "num_cpu": str(num_cpu), "os": f"{platform.system()} {platform.release()}",
            "ram": _ram()}


def main(argv: list[str] | None = None) -> None:
    # No options; a parser all the same, so that --help says what this does instead of
    # doing it (it wrote ~/.asv-machine.json; pass 156) and a stray argument is refused.
    argparse.ArgumentParser(description=description(__doc__)).parse_args(argv or [])
    path = Path.home() / ".asv-machine.json"
    entry = describe()
    try:
        data = json.loads(path.read_text()) if path.exists() else {"version": 1}
    except json.JSONDecodeError as error:
        sys.exit(f"{path} is not valid JSON ({error}); fix or move it, then run again")
    if entry["machine"] in data:
        print(f"{path}: keeping your entry for {entry['machine']!r}", file=sys.stderr)
    else:
        data[entry["machine"]] = entry
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=4) + "\n")
        tmp.replace(path)
    print(entry["machine"])


if __name__ == "__main__":
    main(sys.argv[1:])
