"""_ufunc_rows.rows_in_place: numpy's ufunc buffer cut to one row inside the block and put
back after it (errors included, per thread), untouched for short or very long rows; and
im2col's col2im adds, which run inside it, give the same bits as without it."""
import threading

import numpy as np
import pytest
import torch

from scipy_layers import _im2col_bands, _ufunc_rows, _windows, conv2d
from tests._im2col_variants import im2col_variant

DEFAULT = np.getbufsize()


@pytest.mark.parametrize("row, inside", [
    (128, 128), (832, 832), (1030, 1024), (3132, 3120), (8191, 8176),  # rounded down to 16s
    (127, DEFAULT), (0, DEFAULT), (DEFAULT, DEFAULT), (50_000, DEFAULT),  # left alone
])
def test_buffer_is_one_row_inside_and_restored_after(row, inside):
    with _ufunc_rows.rows_in_place(row):
        assert np.getbufsize() == inside
    assert np.getbufsize() == DEFAULT


def test_a_callers_own_buffer_is_the_ceiling_and_comes_back():
    previous = np.setbufsize(2 ** 20)
    try:
        with _ufunc_rows.rows_in_place(50_010):
            assert np.getbufsize() == 50_000
        assert np.getbufsize() == 2 ** 20
        np.setbufsize(1024)
        with _ufunc_rows.rows_in_place(5000):  # longer than the caller's buffer: left alone
            assert np.getbufsize() == 1024
    finally:
        np.setbufsize(previous)


def test_a_row_length_that_is_not_an_integer_is_refused_before_any_change():
    with pytest.raises(TypeError):
        _ufunc_rows.rows_in_place(1000.0)
    assert np.getbufsize() == DEFAULT


def test_restored_after_an_error_and_other_settings_kept():
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            with _ufunc_rows.rows_in_place(1000):
                assert np.getbufsize() == 992
                np.float32(3e38) * np.float32(10)  # the error state still applies inside
        assert np.getbufsize() == DEFAULT
        assert np.geterr()["over"] == "raise"


def test_another_thread_keeps_its_own_buffer():
    seen = []
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait(5)
        seen.append(np.getbufsize())
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with _ufunc_rows.rows_in_place(1000):
        inside.set()
        done.wait(5)
    thread.join(5)
    assert seen == [DEFAULT]


@pytest.mark.parametrize("row_length", [128, 300, 1000, 5000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_add_gives_the_same_bits(row_length, dtype):
    rng = np.random.default_rng(row_length)
    base = rng.standard_normal((6, 5, row_length + 40)).astype(dtype)
    other = rng.standard_normal((6, 5, row_length + 9)).astype(dtype)
    expected = base.copy()
    expected[..., 7:7 + row_length] += other[..., 3:3 + row_length]
    got = base.copy()
    with _ufunc_rows.rows_in_place(row_length):
        got[..., 7:7 + row_length] += other[..., 3:3 + row_length]
    np.testing.assert_array_equal(got, expected)


# (input shape, C_out, kernel, padding, stride, the buffer col2im's adds run with): wide
# col2im (rows of Ho * Wp), narrow (rows of Wo: more output channels than window rows)
# with long and short rows, a stride (strided rows: left alone), kx1 and 1xk kernels.
CASES = [((8, 16, 32, 32), 32, (3, 3), 0, 1, 960), ((2, 3, 40, 150), 4, (3, 3), 0, 1, 5696),
         ((2, 3, 20, 150), 4, (7, 7), 2, 1, 2768), ((2, 3, 20, 40), 5, (7, 1), 1, 1, 672),
         ((1, 2, 30, 300), 3, (1, 9), (0, 4), 1, None), ((3, 4, 17, 260), 2, (15, 15), 0, 1, 768),
         ((2, 1, 10, 200), 16, (3, 3), 0, 1, 192), ((2, 1, 10, 40), 16, (3, 3), 1, 1, None),
         ((2, 3, 30, 300), 4, (3, 3), 1, 2, None)]


def _buffers_seen(monkeypatch):
    """The buffer size (None: numpy's own) of every rows_in_place the window adds enter
    from now on, in order."""
    seen = []

    class spy(_ufunc_rows.rows_in_place):
        def __init__(self, row_length):
            super().__init__(row_length)
            seen.append(self._size)

    monkeypatch.setattr(_windows, "rows_in_place", spy)
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, c_out, kernel, padding, stride, buffer", CASES)
def test_im2col_gradients_same_bits_with_and_without(shape, c_out, kernel, padding, stride,
                                                     buffer, dtype, monkeypatch):
    gen = torch.Generator().manual_seed(sum(shape) + c_out)
    x = torch.randn(shape, dtype=dtype, generator=gen, requires_grad=True)
    w = torch.randn((c_out, shape[1], *kernel), dtype=dtype, generator=gen, requires_grad=True)
    bias = torch.randn(c_out, dtype=dtype, generator=gen, requires_grad=True)

    def forward_backward():
        out = conv2d(x, w, bias, stride=stride, padding=padding, method="im2col")
        return (out, *torch.autograd.grad(out, (x, w, bias), gy))

    gy = torch.randn(torch.nn.functional.conv2d(x, w, bias, stride, padding).shape,
                     dtype=dtype, generator=gen)
    # whole-image col2im (bands add per band: test_band_gradients_same_bits_...)
    monkeypatch.setattr(_im2col_bands, "MIN_IMAGE_WINDOW_BYTES",
                        dict.fromkeys(_im2col_bands.MIN_IMAGE_WINDOW_BYTES, float("inf")))
    with_rows = forward_backward()

    seen = _buffers_seen(monkeypatch)
    again = forward_backward()
    # col2im's adds ran inside it, with this buffer, once per chunk of images
    assert seen and seen == [buffer] * len(seen)
    calls = len(seen)
    monkeypatch.setattr(_ufunc_rows, "MIN_ROW", 10 ** 9)  # never cut: numpy's own buffer
    monkeypatch.setattr(_ufunc_rows, "BIAS_MIN_ROW_BYTES", 10 ** 12)
    without = forward_backward()
    for a, b, c in zip(with_rows, again, without):
        assert torch.equal(a, c) and torch.equal(a, b)
    assert seen[calls:] == [None] * calls
    native = torch.nn.functional.conv2d(x, w, bias, stride=stride, padding=padding)
    reference = (native, *torch.autograd.grad(native, (x, w, bias), gy))
    for a, r in zip(with_rows, reference):
        torch.testing.assert_close(a, r, rtol=1e-4 if dtype == torch.float32 else 1e-10,
                                   atol=1e-3 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("height, buffers", [(40, [288] * 19), (41, [288] * 19 + [144])])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_band_gradients_same_bits_with_and_without(height, buffers, dtype, monkeypatch):
    # im2col in bands of two output rows (_im2col_bands): each band's adds run with the
    # buffer cut to the band's length (2 x 150 columns, the last band 150 on odd heights)
    gen = torch.Generator().manual_seed(height)
    x = torch.randn((2, 3, height, 150), dtype=dtype, generator=gen, requires_grad=True)
    w = torch.randn((4, 3, 3, 3), dtype=dtype, generator=gen, requires_grad=True)
    gy = torch.randn((2, 4, height - 2, 148), dtype=dtype, generator=gen)

    def forward_backward():
        with im2col_variant("im2col-bands-two-rows") as method:
            out = conv2d(x, w, method=method)
            return (out, *torch.autograd.grad(out, (x, w), gy))

    with_rows = forward_backward()
    seen = _buffers_seen(monkeypatch)
    assert all(torch.equal(a, b) for a, b in zip(with_rows, forward_backward()))
    assert seen == buffers * 2  # (two images)
    monkeypatch.setattr(_ufunc_rows, "MIN_ROW", 10 ** 9)  # never cut: numpy's own buffer
    assert all(torch.equal(a, b) for a, b in zip(with_rows, forward_backward()))
    assert seen[len(buffers) * 2:] == [None] * len(buffers) * 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 16, 30, 30), (2, 3, 12, 12), (1, 4, 50, 70), (0, 5, 9, 9),
                                   (3, 0, 4, 4), (2, 3, 0, 6), (3, 2, 1, 1)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "cropped"])
def test_add_bias_is_the_broadcast_add_bit_for_bit(shape, layout, dtype, monkeypatch):
    rng = np.random.default_rng(sum(shape))
    base = rng.standard_normal(shape).astype(dtype)
    base.flat[::7] = np.array([np.inf, -np.inf, np.nan, 1e30, -0.0, 1e-30, 0.0])[
        np.arange(base.flat[::7].size) % 7]
    if layout == "channels_last":
        base = np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    elif layout == "cropped":
        base = np.pad(base, ((0, 0), (0, 0), (1, 0), (0, 3)))[:, :, 1:, :shape[3]]
    bias = rng.standard_normal(shape[1]).astype(dtype)
    expected = base + bias[:, None, None]
    seen = []
    real = _ufunc_rows.rows_in_place

    class spy(real):
        def __init__(self, row_length, min_row=None):
            super().__init__(row_length, min_row)
            seen.append(self._size)

    monkeypatch.setattr(_ufunc_rows, "rows_in_place", spy)
    y = base.copy(order="K")
    _ufunc_rows.add_bias(y, bias)
    np.testing.assert_array_equal(y, expected)
    assert np.array_equal(np.signbit(y), np.signbit(expected))
    assert np.getbufsize() == DEFAULT
    row = shape[2] * shape[3]
    if not y.flags.c_contiguous:
        assert seen == []  # strided: left to numpy
    elif row * y.itemsize >= _ufunc_rows.BIAS_MIN_ROW_BYTES and row < DEFAULT:
        assert seen == [row // 16 * 16]
    else:
        assert seen == [None]
