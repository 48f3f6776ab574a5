"""Two backwards of one FFT-layer graph in two threads at once, in the order that once
broke them: thread A holds just as it forms its gradient spectrum from forward's
spectrum, while thread B runs a plain backward of the same graph to its end.

    results = two_backwards_at_once(y, leaf, g, create_graph_first, monkeypatch)
    # {"A": ..., "B": ...}: each must equal a backward made alone

(A create_graph backward must not read a spectrum a plain one is overwriting.)
"""
import threading

import torch


def hold_thread_a_in(module, name: str, monkeypatch):
    """Replace ``module.name`` so that the thread named "A" stops on entering it:
    (inside, resume) events, set when A is inside and to let it go on."""
    inside, resume = threading.Event(), threading.Event()
    original = getattr(module, name)

    def held(*args, **kwargs):
        if threading.current_thread().name == "A":
            inside.set()
            resume.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, held)
    return inside, resume


def two_backwards_at_once(y, leaf, g, create_graph_first: bool, monkeypatch) -> dict:
    from scipy_layers import fft as fft_module
    original = fft_module.gradient_spectrum
    a_inside, b_done = hold_thread_a_in(fft_module, "gradient_spectrum", monkeypatch)
    results = {}

    def thread_a():
        results["A"] = torch.autograd.grad(y, leaf, g, retain_graph=True,
                                           create_graph=create_graph_first)[0].detach()

    def thread_b():
        a_inside.wait(30)
        results["B"] = torch.autograd.grad(y, leaf, g, retain_graph=True)[0]
        b_done.set()

    threads = [threading.Thread(target=thread_a, name="A"),
               threading.Thread(target=thread_b, name="B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert a_inside.is_set() and b_done.is_set(), "the two backwards did not overlap"
    monkeypatch.setattr(fft_module, "gradient_spectrum", original)
    return results
