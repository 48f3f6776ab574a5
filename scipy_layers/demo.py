"""A short demo: every layer in the registry, its output, and its gradient checks.

Run with ``python -m scipy_layers.demo``.
"""
from __future__ import annotations

import torch
from torch.autograd import gradcheck

from .agreement import TOLERANCE, compare_with_native
from .registry import LAYERS


def main() -> None:
    torch.set_printoptions(precision=3, linewidth=100)
    for layer in LAYERS.values():
        kernel = (3, 3) if layer.takes_kernel else None
        print(f"== {layer.name}: {layer.description}")
        inputs = layer.make_inputs((6, 6), kernel, dtype=torch.float64)
        for name, impl in layer.implementations.items():
            output = impl.fn(*inputs)
            print(f"-- {name} ({impl.backend}){': ' + impl.note if impl.note else ''}")
            print(f"   output {tuple(output.shape)}, first row: {output[0].detach()}")
            if name == "native":
                continue
            checked = gradcheck(impl.fn, inputs, raise_exception=False)
            errors = compare_with_native(layer, name, inputs)
            worst = max(e.max_rel for e in errors.values())
            verdict = "agrees" if worst <= TOLERANCE[torch.float64] else "DISAGREES"
            print(f"   gradcheck (float64, every input): {'passed' if checked else 'FAILED'}; "
                  f"{verdict} with native (max relative error {worst:.1e})")
        print()


if __name__ == "__main__":
    main()
