"""Register this machine with asv (``~/.asv-machine.json``) and print its name.

asv's own ``asv machine --yes --machine NAME`` stores only the name; the dashboard keys
its series on the machine fields, so they are filled here from the hardware. The name is
derived from the hardware too (not the host name, which changes with every container),
so results of the same kind of machine line up; a machine with an NVIDIA GPU is named
after the GPU, which its CUDA figures depend on. Other entries in the file are kept; an
existing entry of the same name is left as the user wrote it.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return re.search(r"model name\s*:\s*(.+)", text).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or "unknown cpu"


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


def describe() -> dict:
    cpu = _cpu_model()
    num_cpu = len(os.sched_getaffinity(0))
    gpu = _gpu_model()
    derived = f"{_slug(gpu)}-{num_cpu}cpu" if gpu else f"{_slug(cpu)}-{num_cpu}cpu"
    name = os.environ.get("SCIPY_LAYERS_MACHINE") or derived
    return {"machine": name, "arch": platform.machine(), "cpu": cpu, "num_cpu": str(num_cpu),
            "os": f"{platform.system()} {platform.release()}", "ram": _ram()}


def main() -> None:
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
    main()
