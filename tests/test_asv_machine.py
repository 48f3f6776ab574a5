"""tools/asv_machine.py names machines so that different CPUs never share a results series:
fake /proc/cpuinfo texts of VMs whose 'model name' is identical but whose family, model
or instruction set differ must get different names (the GPU rule is in test_gpu_session)."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import asv_machine  # noqa: E402

ZEN3_FLAGS = ("fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes "
              "vpclmulqdq")
ZEN4_FLAGS = ZEN3_FLAGS + " avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512_vnni"
SPR_FLAGS = ZEN4_FLAGS + " avx512_fp16 amx_bf16 amx_tile amx_int8"


def cpuinfo(vendor, family, model, name, flags, processors=2):
    block = (f"processor\t: {{n}}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
             f"model name\t: {name}\nstepping\t: 1\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n")
    return "\n".join(block.format(n=n) for n in range(processors))


EPYC_MILAN = cpuinfo("AuthenticAMD", 25, 1, "AMD EPYC", ZEN3_FLAGS)
EPYC_GENOA = cpuinfo("AuthenticAMD", 25, 17, "AMD EPYC", ZEN4_FLAGS)
XEON_SPR = cpuinfo("GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8480+", SPR_FLAGS)
KVM_GENERIC = cpuinfo("GenuineIntel", 6, 85, "Common KVM processor", "fpu sse2 avx avx2 fma")
GRAVITON = ("processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes sve sve2\n"
            "CPU implementer\t: 0x41\nCPU part\t: 0xd4f\n")


@pytest.fixture
def named(monkeypatch):
    """name(text) -> the machine name describe() derives from a cpuinfo text, no GPU."""
    monkeypatch.delenv("SCIPY_LAYERS_MACHINE", raising=False)
    monkeypatch.setattr(asv_machine, "_gpu_model", lambda: None)
    return lambda text: asv_machine.describe(asv_machine.parse_cpuinfo(text))["machine"]


def test_two_epyc_vms_with_the_same_model_name_get_different_names(named):
    milan, genoa = named(EPYC_MILAN), named(EPYC_GENOA)
    cpus = asv_machine.describe(asv_machine.parse_cpuinfo(EPYC_MILAN))["num_cpu"]
    assert milan == f"amd-epyc-f25m1-avx2-{cpus}cpu"
    assert genoa == f"amd-epyc-f25m17-avx512-{cpus}cpu"


def test_the_name_carries_the_widest_vector_extension(named):
    assert named(XEON_SPR).startswith("intel-xeon-platinum-8480-f6m143-amx-")
    assert named(EPYC_GENOA.replace(" avx512f", "")).startswith("amd-epyc-f25m17-avx2-")


def test_a_generic_model_name_is_prefixed_with_the_vendor(named):
    assert named(KVM_GENERIC).startswith("intel-common-kvm-processor-f6m85-avx2-")


def test_arm_features_line_gives_the_extension(named):
    assert asv_machine.parse_cpuinfo(GRAVITON)["flags"] == ["asimd", "sve", "sve2"]
    assert "-sve2-" in named(GRAVITON)


def test_only_the_first_processor_and_the_relevant_flags_are_read():
    cpu = asv_machine.parse_cpuinfo(EPYC_GENOA + "\n\n" + XEON_SPR)
    assert cpu == {"vendor": "AuthenticAMD", "family": "25", "model": "17", "model_name": "AMD EPYC",
                   "flags": ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                             "avx512_vnni", "avx512_bf16"]}


def test_machine_fields_describe_the_cpu(monkeypatch):
    monkeypatch.setattr(asv_machine, "_gpu_model", lambda: None)
    entry = asv_machine.describe(asv_machine.parse_cpuinfo(EPYC_MILAN))
    assert entry["cpu"] == "AMD EPYC (family 25, model 1; avx avx2 fma)"
    assert set(entry) == {"machine", "arch", "cpu", "num_cpu", "os", "ram"}


def test_an_empty_cpuinfo_still_gives_a_name(named):
    assert named("").endswith("cpu") and named("") != "cpu"


def test_main_keeps_other_entries_and_registers_this_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    monkeypatch.setattr(asv_machine, "_gpu_model", lambda: None)
    monkeypatch.setattr(asv_machine, "read_cpuinfo", lambda: asv_machine.parse_cpuinfo(EPYC_GENOA))
    monkeypatch.delenv("SCIPY_LAYERS_MACHINE", raising=False)
    (tmp_path / ".asv-machine.json").write_text(json.dumps({"version": 1, "other": {"machine": "other"}}))
    asv_machine.main()
    name = capsys.readouterr().out.strip()
    data = json.loads((tmp_path / ".asv-machine.json").read_text())
    assert name.startswith("amd-epyc-f25m17-avx512-") and data[name]["machine"] == name
    assert data["other"] == {"machine": "other"}


# mutation pass 110: the name's clock speed, the CPUs counted, and main()'s file


def test_the_clock_speed_of_an_older_model_name_is_left_out_of_the_name(named):
    xeon = cpuinfo("GenuineIntel", 6, 79, "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", ZEN3_FLAGS)
    assert named(xeon).startswith("intel-xeon-e5-2686-v4-f6m79-avx2-")


def test_the_cpus_named_are_those_this_process_may_run_on(named, monkeypatch):
    # (a container or taskset limited to one CPU of a larger machine: asv runs on one)
    monkeypatch.setattr(asv_machine.os, "sched_getaffinity", lambda pid: {3})
    assert asv_machine.describe(asv_machine.parse_cpuinfo(EPYC_MILAN))["num_cpu"] == "1"
    assert named(EPYC_MILAN) == "amd-epyc-f25m1-avx2-1cpu"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """main() run with ~ in tmp_path, on an EPYC Genoa without a GPU; returns the file."""
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    monkeypatch.setattr(asv_machine, "_gpu_model", lambda: None)
    monkeypatch.setattr(asv_machine, "read_cpuinfo", lambda: asv_machine.parse_cpuinfo(EPYC_GENOA))
    monkeypatch.delenv("SCIPY_LAYERS_MACHINE", raising=False)
    return tmp_path / ".asv-machine.json"


def test_main_writes_a_new_file_in_asvs_format(home, capsys):
    asv_machine.main()
    name = capsys.readouterr().out.strip()
    assert json.loads(home.read_text()) == {"version": 1, name: asv_machine.describe()}


def test_main_leaves_an_entry_of_its_name_as_the_user_wrote_it(home, capsys):
    name = asv_machine.describe()["machine"]
    mine = {"version": 1, name: {"machine": name, "ram": "mine"}}
    home.write_text(json.dumps(mine))
    asv_machine.main()
    out, err = capsys.readouterr()
    assert out.strip() == name and f"keeping your entry for {name!r}" in err
    assert json.loads(home.read_text()) == mine


def test_main_says_in_one_line_that_the_file_is_not_json_and_leaves_it(home, capsys):
    home.write_text("{not json")
    with pytest.raises(SystemExit) as stopped:
        asv_machine.main()
    assert str(stopped.value.code).startswith(f"{home} is not valid JSON (")
    assert home.read_text() == "{not json" and capsys.readouterr().out == ""


def test_help_says_what_it_does_and_writes_nothing(home, capsys):
    """--help printed the machine's name and wrote ~/.asv-machine.json (the tool read no
    arguments; pass 156); a stray argument is refused the same way, the file untouched."""
    for argv, status in ((["--help"], 0), (["--machine", "x"], 2)):
        with pytest.raises(SystemExit) as stopped:
            asv_machine.main(argv)
        assert stopped.value.code == status and not home.exists()
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "Register this machine with asv" in out
