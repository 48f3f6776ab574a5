"""Process-wide settings a user may have made before calling the layers (hostile pass
151): the layers agree with native under them and leave them as they found them. Each
runs in a subprocess, the setting being the process's."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.strip()


# A scipy.fft backend registered globally before the layers are imported, which refuses
# what it is given (as a GPU library's backend refuses numpy arrays) and counts its calls.
_USER_BACKEND = """
import scipy.fft
calls = []
class Backend:
    __ua_domain__ = "numpy.scipy.fft"
    @staticmethod
    def __ua_function__(method, args, kwargs):
        calls.append(method.__name__)
        raise TypeError("the user's backend takes no numpy arrays")
scipy.fft.set_global_backend(Backend, only=True)
"""


def test_a_scipy_fft_backend_registered_before_import_is_not_the_layers():
    # The import-time probe of pocketfft's private entry points compared them with
    # scipy.fft's public functions, which ran on the user's backend: the probe failed and
    # every transform of fft_abs and of the FFT convs ran there (a TypeError here, where
    # native runs); imported before the backend was set, the layers ran pocketfft. Now
    # they run pocketfft either way, and the user's backend stays in force for the user.
    out = _run(_USER_BACKEND + """
import torch, scipy_layers
from scipy_layers import _fft_into
assert _fft_into.PRIVATE
x = torch.randn(2, 3, 13, 17, dtype=torch.float64, requires_grad=True)
w = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
pairs = [(scipy_layers.fft_abs(x, method="fft"), scipy_layers.native_fft_abs(x)),
         (scipy_layers.conv2d(x, w, method="fft"), torch.nn.functional.conv2d(x, w)),
         (scipy_layers.scipy_conv2d(x[0, 0], w[0, 0], None, "fft"),
          scipy_layers.native_conv2d(x[0, 0], w[0, 0], None))]
for ours, native in pairs:
    g = torch.randn_like(native)
    for a, b in zip(torch.autograd.grad(ours, (x, w), g, allow_unused=True),
                    torch.autograd.grad(native, (x, w), g, allow_unused=True)):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours, native, rtol=1e-10, atol=1e-10)
assert calls == [], calls
try:
    scipy.fft.rfft2(x.detach().numpy())
except TypeError:
    print("ok")
""")
    assert out == "ok"


def test_every_sample_agrees_with_native_under_strict_global_settings():
    # numpy errors raise (and call a callback that must never run), warnings are errors,
    # torch's defaults changed (float64, deterministic, flush-denormal, anomaly mode, a
    # cpu device context): every implementation on every sample, a NaN planted in the
    # input, gives native's output and gradients, and leaves every setting as it was.
    out = _run("""
import warnings, numpy as np, torch
calls = []
np.seterr(all="call"); np.seterrcall(lambda *args: calls.append(args))
warnings.simplefilter("error")
warnings.filterwarnings("ignore", "Using padding='same'")  # (native's own warning)
torch.set_default_dtype(torch.float64)
torch.use_deterministic_algorithms(True)
torch.set_flush_denormal(True)
torch.autograd.set_detect_anomaly(True, check_nan=False)
torch.set_default_device("cpu")
from scipy_layers.agreement import TOLERANCE, compare_with_native
from scipy_layers.registry import LAYERS
from scipy_layers.samples import SAMPLES, make_case
import sympy  # (torch's backward imports it, which adds a warnings filter)

def settings():
    return (np.geterr(), np.geterrcall(), list(warnings.filters), torch.get_default_dtype(),
            torch.are_deterministic_algorithms_enabled(), torch.is_anomaly_enabled(),
            torch.is_anomaly_check_nan_enabled(), torch.is_grad_enabled())

before, bad, cases = settings(), [], 0
for name, layer in LAYERS.items():
    for implementation, entry in layer.compared_implementations().items():
        for sample in SAMPLES[name]:
            if not (entry.gradient_is_exact and sample.accepts(implementation)):
                continue
            for dtype in (torch.float32, torch.float64):
                leaves, prepare = make_case(sample, "contiguous", dtype)
                with torch.no_grad():
                    leaves[0][(0,) * leaves[0].dim()] = float("nan")
                errors = compare_with_native(layer, implementation, leaves, prepare=prepare,
                                             kwargs=sample.kwargs)
                cases += 1
                bad += [(name, implementation, sample.name, str(dtype), key, e)
                        for key, e in errors.items() if not e.max_rel <= TOLERANCE[dtype]]
assert not bad, bad[:5]
assert settings() == before and calls == [], (settings(), before, calls[:3])
print("ok", cases)
""")
    assert out.startswith("ok ") and int(out.split()[1]) > 200
