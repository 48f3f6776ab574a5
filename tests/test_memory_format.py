"""The batched conv hands back its output and gradients in native F.conv2d's memory format
(channels_last where the input's or the weight's strides are channels_last-like), on
every sample and layout of the harness and on random strides. Native is the oracle."""
import random

import pytest
import torch
import torch.nn.functional as F
from torch._prims_common import suggest_memory_format

from scipy_layers import LAYERS, conv2d
from scipy_layers._memory_format import follows_channels_last
from scipy_layers.samples import CONV2D_NCHW_SAMPLES, LAYOUTS, make_case

IMPLEMENTATIONS = [name for name in LAYERS["conv2d_nchw"].compared_implementations()]
CASES = [pytest.param(impl, sample, id=f"{impl}-{sample.name}")
         for sample in CONV2D_NCHW_SAMPLES for impl in IMPLEMENTATIONS if sample.accepts(impl)]


def memory_order(tensor):
    """The strides of the dims longer than 1: equal for two dense tensors of one shape
    exactly when their elements lie in the same order."""
    return tuple(s for s, n in zip(tensor.stride(), tensor.shape) if n > 1)


def outputs_and_gradients(layer, args, kwargs):
    args = [None if a is None else a.detach().requires_grad_() for a in args]
    y = layer(*args, **kwargs)
    gy = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(1))
    wanted = [a for a in args if a is not None]
    return [y, *torch.autograd.grad(y, wanted, gy)]


def assert_native_layout(implementation, args, kwargs):
    layer = LAYERS["conv2d_nchw"].implementations[implementation].fn
    ours = outputs_and_gradients(layer, args, kwargs)
    native = outputs_and_gradients(F.conv2d, args, kwargs)
    for what, mine, theirs in zip(("output", "grad_input", "grad_weight", "grad_bias"),
                                  ours, native):
        assert mine.shape == theirs.shape
        assert memory_order(mine) == memory_order(theirs), (
            what, mine.stride(), theirs.stride(), [a.stride() for a in args if a is not None])


@pytest.mark.parametrize("weight_layout", ["same", "contiguous", "channels_last"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("implementation,sample", CASES)
def test_output_and_gradients_in_natives_memory_format(implementation, sample, dtype, layout,
                                                       weight_layout):
    leaves, prepare = make_case(sample, layout, dtype, seed=7, requires_grad=False)
    args = prepare(leaves)
    if weight_layout != "same" and args[1].dim() == 4:
        memory_format = (torch.channels_last if weight_layout == "channels_last"
                         else torch.contiguous_format)
        args[1] = args[1].contiguous(memory_format=memory_format)
    assert_native_layout(implementation, args, sample.kwargs)


def random_strided(rng, shape, dtype):
    """``shape`` seen through a random dim order, steps and offset of a larger buffer."""
    order = list(range(4))
    rng.shuffle(order)
    steps = [rng.choice([1, 1, 2]) for _ in range(4)]
    stored = [shape[d] * steps[d] for d in order]
    buffer = torch.randn(int(torch.tensor(stored).prod()) + 3, dtype=dtype)
    base = buffer[3:].view(stored).permute([order.index(d) for d in range(4)])
    return base[tuple(slice(None, None, step) for step in steps)]


def test_random_strides_and_ambiguous_sizes_follow_native():
    """Sizes of 1 make several stride orders describe one layout; ATen then falls back
    to NCHW by rules the port in _memory_format follows (N111, 1C1W, broadcast C)."""
    rng = random.Random(0)
    for _ in range(300):
        n, c_in, c_out = rng.choice([1, 2]), rng.choice([1, 2, 3]), rng.choice([1, 2])
        k_h, k_w = rng.choice([1, 2]), rng.choice([1, 2])
        h, w = rng.choice([k_h, 3]), rng.choice([k_w, 3])
        dtype = rng.choice([torch.float32, torch.float64])
        x = random_strided(rng, (n, c_in, h, w), dtype)
        weight = random_strided(rng, (c_out, c_in, k_h, k_w), dtype)
        if rng.random() < 0.2:  # a broadcast channel or batch dim
            x = x[:, :1].expand(n, c_in, h, w) if rng.random() < 0.5 else x[:1].expand(n, -1, -1, -1)
        assert_native_layout("scipy", [x, weight, None], {})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("x_shape,w_shape,kwargs", [
    ((2, 1, 5, 5), (4, 1, 1, 1), {}),               # a 1x1 conv of one channel: N111 weight
    ((2, 1, 1, 1), (3, 1, 1, 1), dict(padding=1)),  # N111 input and weight, padded
], ids=["n111-weight", "n111-input"])
def test_contiguous_n111_tensors_are_nchw_as_natives(x_shape, w_shape, kwargs, implementation,
                                                       dtype):
    """A contiguous (N, 1, 1, 1) tensor's strides fit both orders; ATen reads it as NCHW
    (the N111 rule), so a one-channel input with a (C_out, 1, 1, 1) weight, all contiguous,
    gives an NCHW output."""
    x, weight = torch.randn(x_shape, dtype=dtype), torch.randn(w_shape, dtype=dtype)
    assert not follows_channels_last(x, weight)
    assert_native_layout(implementation, [x, weight, None], kwargs)


def test_the_rule_matches_torchs_own_port_on_random_strides():
    rng = random.Random(1)
    storage = torch.empty(400)
    for _ in range(5000):
        shape = [rng.choice([0, 1, 2, 3]) for _ in range(4)]
        strides = [rng.choice([0, 1, 2, 3, 4, 6, 8, 9, 12, 24]) for _ in range(4)]
        tensor = storage.as_strided(shape, strides)
        expected = suggest_memory_format(tensor) == torch.channels_last
        contiguous_weight = torch.empty(2, 2, 2, 2)
        assert follows_channels_last(tensor, contiguous_weight) == expected, (shape, strides)
        assert follows_channels_last(contiguous_weight, tensor) == expected, (shape, strides)


def test_a_channels_last_model_stays_channels_last():
    """Inside a model converted to channels_last (its 1x1 weight then has channels_last
    strides that is_contiguous() cannot tell from NCHW ones), as native's own conv."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 1))
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 9, 9)  # an NCHW input: the weights alone decide
    for layer in model:
        ours = conv2d(x, layer.weight, layer.bias, padding=layer.padding)
        native = layer(x)
        assert ours.is_contiguous(memory_format=torch.channels_last)
        assert memory_order(ours) == memory_order(native)
        torch.testing.assert_close(ours, native)
        x = native


def test_torch_func_transforms_take_channels_last_tensors():
    """Under torch.func the gradients are batched tensors until NumpyStep unwraps them:
    the format is set on the plain ones (a channels_last copy of a batched tensor raises
    in functorch)."""
    from torch.func import grad, jacrev, vjp, vmap
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, generator=generator)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=generator)
    x_cl, w_cl = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
    for conv in (conv2d, F.conv2d):  # native last: the reference
        results = [
            vmap(grad(lambda xi: conv(xi[None], w, padding=1).pow(2).sum()))(x_cl),
            vmap(grad(lambda xi: conv(xi[None], w_cl, padding=1).pow(2).sum()))(x),
            jacrev(lambda xx: conv(xx, w, padding=1))(x_cl[:1, :, :4, :4]),
            jacrev(lambda ww: conv(x, ww, padding=1))(w_cl[:2]),
        ]
        y, pullback = vjp(lambda xx: conv(xx, w, padding=1), x_cl)
        cotangents = torch.randn(3, *y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(3))
        results.append(vmap(pullback)(cotangents)[0])
        if conv is conv2d:
            ours = results
    for mine, theirs in zip(ours, results):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


def test_the_gradients_format_follows_what_saved_tensor_hooks_hand_back():
    """Native decides its gradients' format in backward, from the saved tensors as the
    unpack hook returns them: a hook that makes them NCHW gives NCHW gradients."""
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    layouts = []
    for conv in (conv2d, F.conv2d):
        xx, ww = x.detach().requires_grad_(), w.detach().requires_grad_()
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t.contiguous()):
            y = conv(xx, ww)
        grads = torch.autograd.grad(y, (xx, ww), torch.ones_like(y))
        layouts.append([memory_order(t) for t in (y, *grads)])
    assert layouts[0] == layouts[1]


def test_a_channels_last_output_takes_in_place_changes_as_natives_does():
    """ReLU(inplace=True) after the conv, a common channels_last block: the output must
    not be a torch view (autograd refuses in-place changes of a Function's view output)."""
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    results = []
    for conv in (conv2d, F.conv2d):
        xx, ww = x.detach().requires_grad_(), w.detach().requires_grad_()
        y = torch.nn.functional.relu(conv(xx, ww, padding=1), inplace=True)
        results.append([y, *torch.autograd.grad(y.sum(), (xx, ww))])
    for mine, theirs in zip(*results):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
        assert memory_order(mine) == memory_order(theirs)


def test_a_channels_last_result_keeps_its_buffer_while_it_lives():
    """The channels_last copy lives in a pooled buffer (every array is pooled in the
    tests): a later call must not take it while the first result or gradient lives."""
    def call(seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(2, 3, 7, 6, dtype=torch.float64, generator=g)
        w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=g)
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
        y = conv2d(x, w)
        (grad_input,) = torch.autograd.grad(y, (x,), torch.ones_like(y))
        return y, grad_input
    first = call(0)
    kept = [t.clone() for t in first]
    for seed in range(1, 4):
        call(seed)
    for held, copy in zip(first, kept):
        assert torch.equal(held, copy)


def test_small_channels_last_results_below_the_pools_threshold_follow_native(monkeypatch):
    """The suite pools every array (conftest); at the real threshold a small channels_last
    result is a plain array's transpose, which must still be NCHW of native's strides."""
    from scipy_layers import _workspace
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", 1 << 18)
    x = torch.randn(2, 3, 8, 8).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    g = torch.randn(2, 4, 6, 6)
    y = conv2d(x, w)
    expected = F.conv2d(x, w)
    assert y.shape == expected.shape and y.stride() == expected.stride()
    torch.testing.assert_close(y, expected)
    got, want = torch.autograd.grad(y, x, g)[0], torch.autograd.grad(expected, x, g)[0]
    assert got.stride() == want.stride()
    torch.testing.assert_close(got, want)
