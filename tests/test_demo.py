"""The demo (``python -m scipy_layers.demo``) covers every registered implementation."""
from scipy_layers import LAYERS, demo


def test_demo_checks_every_implementation(capsys):
    demo.main()
    out = capsys.readouterr().out
    for layer in LAYERS.values():
        assert f"== {layer.name}:" in out
        for name in layer.implementations:
            assert f"-- {name} (" in out
    # the tutorial's FFT is the only implementation whose gradient check fails
    assert out.count("gradcheck (float64, every input): FAILED") == 1
    assert "DISAGREES" in out.split("-- numpy-tutorial")[1].split("-- native")[0]
