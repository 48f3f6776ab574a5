"""asv.conf.json read as asv reads it, for tools/record_environment.py, with one line on
what is wrong where asv itself would answer with a traceback (a file that is not JSON, a
matrix that is not a mapping), with an error about another path (a missing folder) or
not at all (a JSON array)."""
from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """What is wrong with an asv config, in one line."""


def load(config: Path):
    """asv's Config (asv.config.Config) of the file ``config``."""
    import json5  # what asv parses its config with: // comments are allowed
    from asv import util
    from asv.config import Config
    if not config.is_file():
        raise ConfigError(f"asv config {config}: "
                          + ("a folder, not a file" if config.is_dir() else "no such file"))
    try:
        data = json5.loads(config.read_text(encoding="utf-8"))
    except ValueError as exc:  # json5's parse errors, and UnicodeDecodeError (a binary file)
        raise ConfigError(f"asv config {config} is not JSON: {exc}") from None
    except RecursionError:  # (json5 recurses per level of nesting)
        raise ConfigError(f"asv config {config} is not JSON: nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ConfigError(f"asv config {config} is not asv's format: not a JSON object")
    try:  # asv's own checks: its version, a repo, branches
        return Config.load(str(config))
    except (util.UserError, ValueError, TypeError) as exc:
        raise ConfigError(f"asv config {config} is not asv's format: {exc}") from None


def environments(config: Path) -> tuple:
    """(asv's Config of ``config``, the environments asv derives from it, as a list)."""
    from asv import environment, util
    conf = load(config)
    for folder in ("env_dir", "results_dir"):  # joined to the config's folder by the callers
        if not isinstance(getattr(conf, folder, None), str):
            raise ConfigError(f"asv config {config} is not asv's format: {folder} is not a string")
    try:
        envs = list(environment.get_environments(conf, None, verbose=False))
    except util.UserError as exc:  # e.g. an environment_type asv does not know
        raise ConfigError(f"asv config {config}: {exc}") from None
    except (TypeError, AttributeError, ValueError) as exc:  # e.g. "matrix": 5, "pythons": "3.11"
        raise ConfigError(f"asv config {config} is not asv's format (its matrix or "
                          f"pythons?): {exc}") from None
    if not envs:  # (asv itself would go on to a ProcessError traceback)
        raise ConfigError(no_environment(config, conf))
    return conf, envs


def no_environment(config: Path, conf) -> str:
    """Why asv can make none of the config's environments here, in one line: asv's own
    reasons (the warnings it logs, e.g. "No executable found for python 3.11"), and for
    a missing Python, why it is pinned and how to get it."""
    import logging
    from asv import environment
    reasons = []

    class Keep(logging.Handler):
        def emit(self, record):
            reasons.append(" ".join(record.getMessage().split()))

    keep = Keep(logging.WARNING)
    logger = logging.getLogger()  # (asv logs to the root logger)
    logger.addHandler(keep)
    try:
        list(environment.get_environments(conf, None, verbose=True))
    except Exception:  # (the reasons so far are what there is to say)
        pass
    finally:
        logger.removeHandler(keep)
    pythons = [str(python) for python in conf.pythons]
    message = (f"asv config {config}: asv can make no benchmark environment here "
               f"({'; '.join(dict.fromkeys(reasons)) or 'asv gave no reason'})")
    if any("No executable found for python" in reason for reason in reasons):
        names = " or ".join(f"python{python}" for python in pythons)
        message += (f": its \"pythons\" pins Python {', '.join(pythons)} for the benchmarks, "
                    f"the same on every machine so that their results compare; put {names} "
                    f"on PATH (e.g. apt-get install python{pythons[0]}, or pyenv), or build "
                    f".venv with it (rm -r .venv; make setup PYTHON=/path/to/{names})")
    return message
