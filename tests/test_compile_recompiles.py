"""torch.compile of models with many layers of different shapes: Dynamo compiles no
frame of a layer (_torch_protocols.never_compiled), so it does not compile the layer's
Python once per layer shape and hit its recompile limit (a hostile pass: 9 Conv2d of
different channels raised FailOnRecompileLimitHit under fail_on_recompile_limit_hit,
where torch.nn.Conv2d compiles once). Each case runs in a subprocess (this file as a
script), as test_compile.py: Dynamo is heavy and may crash."""
import json
import sys

import pytest

from tests._case_scripts import run_cases
LAYERS = 11  # more than Dynamo's recompile limit (8)


def _models():
    """name -> (model or function, inputs, the compile options): each with LAYERS layer
    calls of different shapes, or inputs of different shapes."""
    import torch

    import scipy_layers as sl
    torch.manual_seed(0)
    channels = range(2, LAYERS + 3)

    class Block(torch.nn.Module):  # a user's module around the layer
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv = sl.Conv2d(c_in, c_out, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x)) * 0.5

    def stack(make):
        return torch.nn.Sequential(*[make(a, b) for a, b in zip(channels, channels[1:])])

    class Functional(torch.nn.Module):  # a user's module that calls the functional layer
        def __init__(self, c_in, c_out):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(c_out, c_in, 3, 3) * 0.3)

        def forward(self, x):
            return sl.conv2d(x, self.weight, padding=1)

    def loop(x, layers=[sl.ScipyConv2d(k % 3 + 1, k % 4 + 1) for k in range(LAYERS)]):
        for layer in layers:  # (a user's loop over layers)
            x = layer(x)
        return x.sin()

    nchw = [torch.randn(2, 2, 10, 10)]
    return {
        "Conv2d": (stack(lambda a, b: sl.Conv2d(a, b, 3, padding=1)), [nchw], {}),
        "blocks": (stack(Block), [nchw], {}),
        # (a user's frame that computes on parameters before the layer call is compiled
        # once per parameter shape, as Dynamo keeps parameter shapes static: its graph
        # ends at the break; docs/layers.md gives this way round it)
        "weight-standardised": (stack(lambda a, b: StandardisedConv2d(a, b, 3, padding=1)),
                                [nchw], {"force_parameter_static_shapes": False}),
        # (as weight-standardised: the user's frame passes the parameters on, so its
        # resume after the break is guarded on their shapes; native's F.conv2d has no break)
        "functional": (stack(Functional), [nchw], {"force_parameter_static_shapes": False}),
        "loop": (loop, [[torch.randn(40, 36)]], {}),
        "ScipyConv2d": (torch.nn.Sequential(*[sl.ScipyConv2d(k % 3 + 1, k % 4 + 1)
                                              for k in range(LAYERS)]),
                        [[torch.randn(40, 36)]], {}),
        "conv2d-input-shapes": (
            torch.nn.Sequential(sl.Conv2d(3, 4, 3), sl.Conv2d(4, 2, 3)),
            [[torch.randn(1, 3, s, s + 1)] for s in range(6, 6 + LAYERS)], {"dynamic": True}),
        "fft_abs-input-shapes": (lambda x: sl.fft_abs(x).sin(),
                                 [[torch.randn(2, s, s + 2)] for s in range(3, 3 + LAYERS)], {}),
        "scipy_conv2d-filter-shapes": (
            lambda x, w: sl.scipy_conv2d(x, w).cos(),
            [[torch.randn(12, 12), torch.randn(k % 4 + 1, k % 5 + 1)] for k in range(LAYERS)],
            {}),
    }


def _standardised_class():
    import scipy_layers as sl

    class Standardised(sl.Conv2d):  # convolves with a changed weight, as some models do
        def forward(self, x):
            weight = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
            return self._conv_forward(x, weight, self.bias)
    return Standardised


StandardisedConv2d = None


def main(names):
    global StandardisedConv2d
    import torch
    torch._dynamo.config.fail_on_recompile_limit_hit = True  # (a hard error, not a warning)
    StandardisedConv2d = _standardised_class()
    models = _models()
    for name in names:
        torch._dynamo.reset()
        if name == "parametrized":
            print(json.dumps(_parametrized()), flush=True)
            continue
        model, inputs, options = models[name]
        static = options.pop("force_parameter_static_shapes", True)
        torch._dynamo.config.force_parameter_static_shapes = static
        compiled = torch.compile(model, backend="eager", **options)
        try:
            for args in inputs:
                args = [arg.requires_grad_() for arg in args]
                got = compiled(*args)
                got_grads = torch.autograd.grad(got.sum(), args)
                want = model(*args)
                want_grads = torch.autograd.grad(want.sum(), args)
                torch.testing.assert_close(got, want, rtol=0, atol=0)
                torch.testing.assert_close(got_grads, want_grads, rtol=0, atol=0)
            result = {"case": name, "ok": True}
        except Exception as error:  # reported to the test, one case at a time
            result = {"case": name, "ok": False, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(result), flush=True)


def _parametrized() -> dict:
    """A parametrization of a layer module's weight (user code) is compiled, as for
    nn.Conv2d: the modules read their parameters in a frame Dynamo traces (a hostile
    pass found ScipyConv2d's run eagerly for a while)."""
    import torch
    import torch.nn.utils.parametrize as parametrize

    import scipy_layers as sl

    class Symmetric(torch.nn.Module):
        def forward(self, weight):
            return (weight + weight.flip(-1)).tanh()

    problems = []
    for module, name, x in ((sl.ScipyConv2d(3, 3), "filter", torch.randn(8, 8)),
                            (sl.Conv2d(2, 3, 3), "weight", torch.randn(1, 2, 6, 6))):
        parametrize.register_parametrization(module, name, Symmetric())
        graphs = []

        def record(graph_module, example_inputs):
            graphs.append({str(node.target) for node in graph_module.graph.nodes})
            return graph_module.forward

        torch._dynamo.reset()
        got = torch.compile(module, backend=record)(x)
        torch.testing.assert_close(got, module(x), rtol=0, atol=0)
        if not any("tanh" in target for graph in graphs for target in graph):
            problems.append(f"{type(module).__name__}'s parametrization ran eagerly: {graphs}")
    return {"case": "parametrized", "ok": not problems, "error": "; ".join(problems)}


NAMES = ["Conv2d", "blocks", "weight-standardised", "functional", "loop", "ScipyConv2d",
         "conv2d-input-shapes", "fft_abs-input-shapes", "scipy_conv2d-filter-shapes",
         "parametrized"]


@pytest.fixture(scope="module")
def results():
    return run_cases(__file__, NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_many_layer_shapes_compile_within_the_recompile_limit(results, name):
    assert results[name]["ok"], results[name]["error"][:2000]


if __name__ == "__main__":
    main(sys.argv[1:])


def test_a_torch_whose_strategy_api_differs_still_imports(monkeypatch):
    """The per-code strategy is torch's private API, set while scipy_layers imports: where
    another torch's version of it raises, the functions come back as they are (compiled
    as before: correct, recompiled), and nothing stops the import."""
    from scipy_layers import _torch_protocols as protocols

    def other_signature(*args):
        raise TypeError("set_code_exec_strategy(): incompatible function arguments")
    monkeypatch.setattr(protocols, "set_code_exec_strategy", other_signature)

    def layer(x):
        return x
    assert protocols.never_compiled(layer) is layer
    assert protocols.own_frame_never_compiled(layer) is layer
    assert protocols.graph_break_here(layer) is layer and layer._torchdynamo_disable
