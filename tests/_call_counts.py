"""Count the calls a test makes to some of a module's functions (monkeypatched)."""


def count_calls(monkeypatch, module, names):
    """[calls of names[0], calls of names[1], ...], counted from now on; ``monkeypatch``
    puts the functions back after the test."""
    calls = [0] * len(names)

    def counted(index, fn):
        def wrapper(*args, **kwargs):
            calls[index] += 1
            return fn(*args, **kwargs)
        return wrapper
    for index, name in enumerate(names):
        monkeypatch.setattr(module, name, counted(index, getattr(module, name)))
    return calls
