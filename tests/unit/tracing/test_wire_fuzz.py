"""Fuzzing the native span pass, which reads untrusted bytes, under AddressSanitizer and
UndefinedBehaviorSanitizer (gcc's), driven by mutated valid requests (tests/support/wire_fuzz.py).

A short run here (``AGENT_SRE_FUZZ_EXAMPLES``, 600 by default); longer on demand, e.g.
``AGENT_SRE_FUZZ_EXAMPLES=200000 .venv/bin/python -m pytest tests/unit/tracing/test_wire_fuzz.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "src" / "agent_sre" / "tracing" / "_wirepass.c"
EXAMPLES = int(os.environ.get("AGENT_SRE_FUZZ_EXAMPLES", "600"))

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc to build with")


def _runtime(name: str) -> str:
    found = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found):
        pytest.skip(f"gcc has no {name}")
    return found


def sanitized_build(where: Path, source: Path = SOURCE) -> Path:
    target = where / ("_wirepass" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-g",
            "-O1",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            f"-I{sysconfig.get_paths()['include']}",
            str(source),
            "-o",
            str(target),
        ],
        check=True,
    )
    return target


def run_fuzz(module: Path, examples: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["LD_PRELOAD"] = _runtime("libasan.so")
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    # every object from malloc, so a read past a bytes object's end is past an allocation
    env["PYTHONMALLOC"] = "malloc"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "support" / "wire_fuzz.py"),
            "--module",
            str(module),
            "--examples",
            str(examples),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )


def test_mutated_requests_under_asan_and_ubsan(tmp_path: Path) -> None:
    done = run_fuzz(sanitized_build(tmp_path), EXAMPLES)
    print(done.stdout.strip())  # how many inputs, how many protobuf accepted (pytest -s)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert "fuzzed" in done.stdout and "decodable" in done.stdout, done.stdout
    assert "ERROR: AddressSanitizer" not in done.stderr
    assert "runtime error" not in done.stderr, done.stderr[-6000:]


def test_the_sanitizers_catch_an_overflow(tmp_path: Path) -> None:
    """The harness is not blind: a build that reads past a field's end is caught."""
    source = SOURCE.read_text()
    broken = source.replace(
        "if (n > (uint64_t)(end - p)) return -1;", "if (n > (uint64_t)(end - p) + 64) return -1;"
    )
    assert broken != source
    (tmp_path / "src").mkdir()
    copy = tmp_path / "src" / "_wirepass.c"
    copy.write_text(broken)
    module = sanitized_build(tmp_path, copy)
    done = run_fuzz(module, 2000)
    assert done.returncode != 0
    assert "AddressSanitizer" in done.stderr, done.stderr[-3000:]
