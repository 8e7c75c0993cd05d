"""``burst-py``: build a Python work function into a burst worker component.

    burst-py build app.py -o app.wasm

wraps ``componentize-py`` with the ``burst:bcm/worker`` world shipped in
this package: it stages an entry module that imports ``app`` (whose
``@work`` function registers itself) and the SDK's export, and has
componentize-py bundle CPython, the SDK and the app's directory into one
component that ``burst run`` and ``burst deploy`` take unchanged.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["build", "main"]

#: The world every worker component targets (``wit/bcm.wit``).
WORLD = "worker"
#: Name of the staged entry module (must differ from the world's name and
#: from any module an app is likely to have).
ENTRY = "burst_entry"
WIT = Path(__file__).resolve().parent / "wit"
#: Longest a build may take (one takes ~10 s; a hung one must not hang CI).
BUILD_TIMEOUT_SECONDS = 600


class BuildError(Exception):
    """The app could not be built; the message says why."""


def _componentize_py() -> str:
    """The componentize-py of this interpreter's environment, or on PATH."""
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("componentize-py")
    if found is None:
        raise BuildError("componentize-py is not installed (pip install componentize-py, or this package, which depends on it)")
    return found


def _sdk_dir() -> Path:
    spec = importlib.util.find_spec("burst_sdk")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the burst_sdk package is not installed beside burst_py")
    return Path(next(iter(spec.submodule_search_locations)))


def build(app: Path, output: Path, paths: Sequence[Path] = ()) -> float:
    """Builds the work function of ``app`` (a ``.py`` file or a package
    directory) into the component ``output``; answers the seconds it took."""
    app = app.resolve()
    if app.is_dir() and (app / "__init__.py").exists():
        module = app.name
    elif app.is_file() and app.suffix == ".py":
        module = app.stem
    else:
        raise BuildError(f"{app} is neither a .py file nor a package directory")
    if not module.isidentifier() or module in (ENTRY, WORLD, "wit_world", "burst_sdk"):
        raise BuildError(f"{app.name}: the module name {module!r} cannot be imported as an app; rename it")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="burst-py-") as staging:
        staging = Path(staging)
        # Only the SDK is staged, not the environment it is installed in, so
        # the component holds CPython, the SDK and the app's own directory.
        shutil.copytree(_sdk_dir(), staging / "burst_sdk", ignore=shutil.ignore_patterns("__pycache__"))
        (staging / f"{ENTRY}.py").write_text(
            f"import {module}  # its @work function registers itself\n"
            "from burst_sdk.export import WitWorld, registered\n"
            "registered()  # an app without a @work function fails the build\n"
        )
        command = [_componentize_py(), "-d", str(WIT), "-w", WORLD, "componentize"]
        for directory in (staging, app.parent, *paths):
            command += ["-p", str(Path(directory).resolve())]
        command += [ENTRY, "-o", str(output.resolve())]
        # componentize-py adds the site-packages of an active virtualenv;
        # this one's is not the app's, so it is left out.
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        try:
            finished = subprocess.run(
                command, env=env, cwd=staging, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            raise BuildError(f"componentize-py did not finish {app} within {BUILD_TIMEOUT_SECONDS} s") from None
        if finished.returncode != 0:
            raise BuildError(f"componentize-py failed on {app}:\n{finished.stdout}{finished.stderr}".rstrip())
    return time.monotonic() - started


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(prog="burst-py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build a Python work function into a component")
    build_command.add_argument("app", type=Path, help="the .py file (or package directory) with the @work function")
    build_command.add_argument("-o", "--output", type=Path, help="the component to write (default: APP.wasm)")
    build_command.add_argument(
        "-p", "--path", type=Path, action="append", default=[], help="another directory of modules the app imports"
    )
    args = parser.parse_args(argv)
    output = args.output or args.app.with_suffix(".wasm")
    try:
        seconds = build(args.app, output, args.path)
    except BuildError as error:
        print(f"burst-py: {error}", file=sys.stderr)
        return 1
    size = output.stat().st_size
    print(f"built {output} ({size / 2**20:.1f} MiB) in {seconds:.1f} s")
    return 0
