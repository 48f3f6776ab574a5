"""im2col's window fill (scipy_layers._windows.fill_windows) against independent oracles:
torch's F.unfold for the strided ("narrow") layout, and the wide layout's definition
(window row (i, j) of an image is its flattened padded input from i dH Wp + j dW on)
taken with an index array; on every kernel shape, stride, dilation and input layout."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scipy_layers import _windows
from scipy_layers._nchw_args import ConvGeometry

KERNELS = [(1, 1), (3, 1), (1, 4), (3, 3), (5, 3), (2, 7)]


def _grid(shape, layout, dtype, seed=0):
    """A padded input (M, C, Hp, Wp) as numpy, in ``layout``: fresh, channels_last,
    transposed, step-sliced or expanded (a broadcast image dim)."""
    m, c, h, w = shape
    generator = torch.Generator().manual_seed(seed)
    def randn(*size):
        return torch.randn(*size, dtype=dtype, generator=generator)
    tensor = {"plain": lambda: randn(m, c, h, w),
              "channels_last": lambda: randn(m, c, h, w).to(memory_format=torch.channels_last),
              "transposed": lambda: randn(m, c, w, h).transpose(2, 3),
              "step_sliced": lambda: randn(m, c, 2 * h, w + 3)[:, :, ::2, 2:w + 2],
              "expanded": lambda: randn(1, c, h, w).expand(m, c, h, w)}[layout]()
    return tensor.numpy()


def _geometry(grid_hw, kernel, stride, dilation):
    reach = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    out_hw = tuple((size - r) // s + 1 for size, r, s in zip(grid_hw, reach, stride))
    return ConvGeometry(stride, (0, 0, 0, 0), dilation, 1, out_hw)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("stride, dilation", [((1, 1), (1, 1)), ((2, 1), (1, 1)),
                                              ((1, 3), (2, 1)), ((2, 2), (2, 3))])
@pytest.mark.parametrize("layout", ["plain", "channels_last", "transposed", "step_sliced",
                                    "expanded"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_narrow_windows_are_torchs_unfold(kernel, stride, dilation, layout, dtype):
    grid = _grid((3, 2, 13, 22), layout, dtype)
    geometry = _geometry(grid.shape[2:], kernel, stride, dilation)
    length = geometry.out_hw[0] * geometry.out_hw[1]
    cols = np.full((3, 1, 2 * kernel[0] * kernel[1], length), np.nan, grid.dtype)
    _windows.fill_windows(cols, None, grid, kernel, geometry, wide=False)
    expected = F.unfold(torch.from_numpy(np.ascontiguousarray(grid)), kernel,
                        dilation=dilation, stride=stride)
    assert np.array_equal(cols[:, 0], expected.numpy())


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dilation", [(1, 1), (2, 1), (1, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("flat_layout", ["contiguous", "gaps between channels"])
def test_wide_windows_are_stretches_of_the_flattened_image(kernel, dilation, dtype,
                                                           flat_layout):
    m, c, hp, wp = 2, 3, 11, 14
    reach_h, reach_w = (d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    out_h = hp - reach_h + 1
    length = out_h * wp  # whole padded rows
    tail = reach_w - 1  # (the zero tail the layer's padded input carries for the last rows)
    # (with gaps the one-copy view, which needs a C-contiguous input, cannot serve: the
    # per-tap copies must)
    gap = 0 if flat_layout == "contiguous" else 5
    flat = np.random.default_rng(1).standard_normal(
        (m, c, hp * wp + tail + gap)).astype(dtype)[:, :, :hp * wp + tail]
    grid = flat[:, :, :hp * wp].reshape(m, c, hp, wp)
    geometry = ConvGeometry((1, 1), (0, 0, 0, 0), dilation, 1, (out_h, wp - reach_w + 1))
    cols = np.full((m, 1, c * kernel[0] * kernel[1], length), np.nan, dtype)
    _windows.fill_windows(cols, flat, grid, kernel, geometry, wide=True)
    starts = np.array([[i * dilation[0] * wp + j * dilation[1] for j in range(kernel[1])]
                       for i in range(kernel[0])])
    index = starts[..., None] + np.arange(length)  # (kH, kW, L) positions in an image
    expected = np.take(flat, index, axis=2)  # (M, C, kH, kW, L)
    assert np.array_equal(cols.reshape(expected.shape), expected)


def test_windows_fill_a_view_with_gaps_and_nothing_beside_it():
    """As the layer fills them: the window rows of a matrix whose last row (the bias's
    row of ones) and other images must stay as they were."""
    grid = _grid((4, 2, 9, 10), "plain", torch.float64)
    geometry = _geometry(grid.shape[2:], (3, 3), (1, 1), (1, 1))
    length = geometry.out_hw[0] * geometry.out_hw[1]
    matrix = np.full((4, 1, 2 * 9 + 1, length), -7.0)
    _windows.fill_windows(matrix[1:3, :, :18], None, grid[1:3], (3, 3), geometry, wide=False)
    expected = F.unfold(torch.from_numpy(grid[1:3].copy()), (3, 3)).numpy()
    assert np.array_equal(matrix[1:3, 0, :18], expected)
    assert (matrix[[0, 3]] == -7).all() and (matrix[:, :, 18] == -7).all()


@pytest.mark.parametrize("out_hw", [(12, 20), (11, 21)])
def test_narrow_windows_refuse_to_read_past_the_grid(out_hw):
    """A geometry whose windows would run past the grid raises, instead of a view reading
    memory beyond it."""
    grid = _grid((2, 2, 13, 22), "plain", torch.float64)
    geometry = ConvGeometry((1, 1), (0, 0, 0, 0), (1, 1), 1, out_hw)
    cols = np.empty((2, 1, 2 * 9, out_hw[0] * out_hw[1]))
    with pytest.raises(AssertionError, match="run past the padded grid"):
        _windows.fill_windows(cols, None, grid, (3, 3), geometry, wide=False)


@pytest.mark.parametrize("variant", ["im2col", "im2col-bands-one-row", "im2col-bands-two-rows"])
def test_the_layer_on_every_layout_in_a_fresh_interpreter(variant):
    """The narrow view, and the wide bands' view (an offset into the flattened padded
    input, _im2col_bands: forced here on every stride-1 case, bands of one row to a few,
    the last band's stretches at the image's end), are made by hand: were their strides
    or bounds wrong on some layout of the input (the grid itself where nothing is
    padded), they could read outside the tensor and kill the process, so this runs in a
    subprocess: a crash fails this test, not the run. Large images, so that a stray read
    would leave the mapped memory."""
    code = textwrap.dedent(f"""
        import torch, torch.nn.functional as F, scipy_layers
        from tests._im2col_variants import im2col_variant
        torch.manual_seed(0)
        base = torch.randn(2, 4, 150, 130, dtype=torch.float64)
        views = {{"plain": base, "channels_last": base.to(memory_format=torch.channels_last),
                 "transposed": base.transpose(2, 3), "step_sliced": base[:, :, ::3, 1::2],
                 "expanded": base[:1, :, :1].expand(2, 4, 150, 130),
                 "narrowed": base[:, 1:3, 5:140, 7:120]}}
        for name, view in views.items():
            for kernel, stride, padding, dilation in [
                    ((3, 3), 1, 0, 1), ((5, 3), 2, 0, 1), ((2, 7), (1, 3), 0, (2, 1)),
                    ((7, 7), 1, 0, 3), ((5, 3), 1, 2, 1), ((2, 7), 1, (1, 3), (2, 1)),
                    ((7, 7), 1, 3, 3)]:
                x = view.detach().requires_grad_()
                w = torch.randn(3, x.shape[1], *kernel, dtype=x.dtype, requires_grad=True)
                with im2col_variant({variant!r}) as method:
                    ours = scipy_layers.conv2d(x, w, None, stride, padding, dilation,
                                               method=method)
                    g = torch.randn_like(ours)
                    grads = torch.autograd.grad(ours, (x, w), g)
                theirs = F.conv2d(x, w, None, stride, padding, dilation)
                pairs = [(ours, theirs), *zip(grads, torch.autograd.grad(theirs, (x, w), g))]
                for a, b in pairs:
                    assert (a - b).abs().max() <= 1e-10 * b.abs().max(), (name, kernel)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "ok" in done.stdout, (done.returncode,
                                                          done.stderr[-2000:])


@pytest.mark.parametrize("options", [{"stride": (2 ** 61, 1)}, {"stride": (1, 2 ** 62)},
                                     {"dilation": (2 ** 61, 1)}])
def test_a_huge_step_on_an_axis_of_one_entry_is_never_taken(options):
    """An output row or kernel row of one entry never steps by its stride or dilation,
    however large (conv2d takes any): the view gives that axis stride 0 instead of a
    product that overflows."""
    from scipy_layers import conv2d
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    kernel = (1, 4) if "dilation" in options else (2, 2)
    w = torch.randn(1, 1, *kernel, dtype=torch.float64, requires_grad=True)
    ours, theirs = conv2d(x, w, method="im2col", **options), F.conv2d(x, w, **options)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(theirs)
    for a, b in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(theirs, (x, w), g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_narrow_view_is_read_only_whatever_the_grid():
    contiguous = _grid((2, 2, 9, 10), "plain", torch.float64)
    geometry = _geometry(contiguous.shape[2:], (3, 3), (1, 1), (1, 1))
    for grid in (contiguous, _grid((2, 2, 9, 10), "transposed", torch.float64)):
        assert not _windows._narrow_windows(grid, (3, 3), geometry).flags.writeable


def test_geometries_that_would_read_outside_the_grid_raise_in_a_fresh_interpreter():
    """Steps below 1 and numpy ints whose products wrap would pass a check of the last
    element alone; on a grid that is not C-contiguous nothing else would stop the view
    reading outside it (a hostile pass read other data, and crashed the process), so
    this runs in a subprocess."""
    code = textwrap.dedent("""
        import numpy as np
        from scipy_layers import _windows
        from scipy_layers._nchw_args import ConvGeometry
        big = np.arange(2 * 40 * 40, dtype=np.float64).reshape(1, 2, 40, 40)
        grids = [big[:, :, 10:20, 10:20], np.asfortranarray(np.ones((1, 2, 10, 10)))]
        huge, one = np.int64(2 ** 62 + 1000), np.int64(1)
        geometries = [ConvGeometry((-3, 1), (0,) * 4, (1, 1), 1, (4, 3)),
                      ConvGeometry((1, 1), (0,) * 4, (1, -2), 1, (4, 3)),
                      ConvGeometry((-10 ** 9, 1), (0,) * 4, (1, 1), 1, (4, 3)),
                      ConvGeometry((huge, one), (0,) * 4, (one, one), 1,
                                   (np.int64(3), np.int64(3))),
                      ConvGeometry((1, 1), (0,) * 4, (1, 1), 1, (0, 3))]
        for grid in grids:
            for geometry in geometries:
                out_h, out_w = (int(size) for size in geometry.out_hw)
                cols = np.full((1, 1, 8, out_h * out_w), np.nan)
                try:
                    _windows.fill_windows(cols, None, grid, (2, 2), geometry, wide=False)
                except AssertionError:
                    continue
                raise SystemExit(f"no error for {geometry}")
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, (done.returncode,
                                                          done.stdout, done.stderr[-2000:])


def test_wide_windows_refuse_to_run_past_the_tail():
    """The wide view's last row must end within the flattened image and its tail."""
    flat = np.zeros((2, 3, 11 * 14 + 1))  # a tail of 1 where a 3-wide kernel needs 2
    grid = flat[:, :, :11 * 14].reshape(2, 3, 11, 14)
    geometry = ConvGeometry((1, 1), (0, 0, 0, 0), (1, 1), 1, (9, 12))
    cols = np.empty((2, 1, 27, 9 * 14))
    with pytest.raises(AssertionError, match="run past the flattened padded image"):
        _windows.fill_windows(cols, flat, grid, (3, 3), geometry, wide=True)


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("n, bytes_per_image, taps", [
    (0, 1000, 9), (1, 10, 1), (7, 1000, 1), (300, 100_000, 1), (300, 100_000, 400),
    (5, _windows.MAX_CHUNK_BYTES * 3, 1), (40, _windows.CHUNK_BYTES // 3, 49)])
def test_image_chunks_cover_the_batch_within_their_bounds(n, bytes_per_image, taps, bounded):
    """Consecutive near-equal chunks covering the batch once, each within CHUNK_BYTES, or
    larger for copies of MIN_TAP_BYTES; past MAX_CHUNK_BYTES the whole batch, or, bounded
    (one chunk's windows held: memory must not grow with the batch), at most
    MAX_CHUNK_BYTES (at least one image)."""
    chunks = _windows.image_chunks(n, bytes_per_image, taps, bounded)
    assert [c.start for c in chunks] == [0, *(c.stop for c in chunks)][:len(chunks)]
    assert (chunks[-1].stop if chunks else 0) == n and all(c.step is None for c in chunks)
    sizes = [c.stop - c.start for c in chunks]
    assert all(size > 0 for size in sizes) and (not sizes or max(sizes) - min(sizes) <= 1)
    assert _windows.largest(chunks) == max(sizes, default=0)
    most = max(1, _windows.CHUNK_BYTES // bytes_per_image,
               -(-_windows.MIN_TAP_BYTES * taps // bytes_per_image))
    if most * bytes_per_image <= _windows.MAX_CHUNK_BYTES:
        assert max(sizes, default=0) <= most
    elif bounded:
        assert max(sizes) == 1 or max(sizes) * bytes_per_image <= _windows.MAX_CHUNK_BYTES
    else:
        assert sizes == [n]
